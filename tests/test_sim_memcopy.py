"""The testbench on a real bus master: the DMA copy engine of sim/memcopy.py, built with Verilator.

Proves the DRAM model (data, stalls, latency, byte and burst counts), the contract checks and the
runner plumbing of hwgen.simrunner independently of the convolution engine; and that the fast
mode's HDL memory (hwgen_fastmem.v around the same DMA) serves it cycle for cycle as the agent
does and reports the same contract violations in the same words.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from sim_helpers import session_cache

from hwgen import simrunner, simulate, templates
from hwgen.errors import HwgenError
from sim.dram import STREAM_PORTS, BusTiming
from sim.memcopy import memcopy_verilog, req_layout_bits

BUS_BITS = 64
BUS_BYTES = BUS_BITS // 8
MAX_BURST = 4
DESC, SRC, DST = 0x0, 0x1000, 0x8000
DRAM_SIZE = 1 << 16
REGIONS = [dict(name="descriptors", base=DESC, size=0x100), dict(name="inputs", base=SRC, size=0x4000),
           dict(name="outputs", base=DST, size=0x4000)]


@pytest.fixture(scope="module")
def dma(tmp_path_factory):
    return simrunner.build(memcopy_verilog(BUS_BITS, MAX_BURST), "memcopy", cache_dir=session_cache(tmp_path_factory))


def copy_job(tmp_path, copies, timing: BusTiming, src=SRC, timeout=100_000):
    """`copies` is a list of beat counts; each run copies fresh random data from src to dst."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(timing.seed)
    runs, expected = [], []
    for i, beats in enumerate(copies):
        desc = tmp_path / f"desc{i}.bin"
        desc.write_bytes(struct.pack("<III", src, DST, beats))
        data = rng.integers(0, 256, beats * BUS_BYTES, dtype=np.uint8).tobytes()
        (tmp_path / f"in{i}.bin").write_bytes(data)
        expected.append(data)
        runs.append(dict(name=f"copy{i}", desc_addr=DESC + 16 * i, timeout=timeout,
                         loads=[dict(addr=DESC + 16 * i, file=str(desc)), dict(addr=SRC, file=str(tmp_path / f"in{i}.bin"))],
                         dumps=[dict(addr=DST, size=len(data), file=str(tmp_path / f"out{i}.bin"))]))
    job = simrunner.make_job(bus_bits=BUS_BITS, dram_size=DRAM_SIZE, ports=STREAM_PORTS, req_layout=req_layout_bits(),
                            timing=timing.as_dict(), regions=REGIONS, runs=runs)
    return job, expected


def run(dma, tmp_path, copies, timing, **kw):
    job, expected = copy_job(tmp_path, copies, timing, **kw)
    results = simrunner.run_job(dma, job, tmp_path / "work")
    return results, expected


def expected_traffic(beats: int) -> dict:
    bursts = -(-beats // MAX_BURST)
    return {"descriptors": {"read_bytes": 16, "write_bytes": 0, "read_bursts": 1, "write_bursts": 0},
            "inputs": {"read_bytes": beats * BUS_BYTES, "write_bytes": 0, "read_bursts": bursts, "write_bursts": 0},
            "outputs": {"read_bytes": 0, "write_bytes": beats * BUS_BYTES, "read_bursts": 0, "write_bursts": bursts}}


def test_ideal_copy_is_exact_and_counted(dma, tmp_path):
    copies = [1, 4, 5, 37]
    results, expected = run(dma, tmp_path, copies, BusTiming.profile("ideal", 0))
    for i, (beats, rec) in enumerate(zip(copies, results["runs"])):
        assert rec["error"] is None
        assert (tmp_path / f"out{i}.bin").read_bytes() == expected[i]
        assert rec["traffic"] == expected_traffic(beats)  # counters reset between runs
        assert rec["cycles"] > 2 * beats


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_timing_changes_cycles_not_data_or_bytes(dma, tmp_path, seed):
    copies = [3, 29]
    ideal, _ = run(dma, tmp_path / "ideal", copies, BusTiming(seed=seed))
    hostile, expected = run(dma, tmp_path / "hostile", copies, BusTiming.profile("hostile", seed))
    for i, beats in enumerate(copies):
        assert (tmp_path / "hostile" / f"out{i}.bin").read_bytes() == expected[i], f"seed {seed}"
        assert hostile["runs"][i]["traffic"] == expected_traffic(beats), f"seed {seed}"
        assert hostile["runs"][i]["cycles"] > ideal["runs"][i]["cycles"], f"seed {seed}"


def test_same_seed_same_cycles(dma, tmp_path):
    a, _ = run(dma, tmp_path / "a", [17], BusTiming.profile("hostile", 5))
    b, _ = run(dma, tmp_path / "b", [17], BusTiming.profile("hostile", 5))
    c, _ = run(dma, tmp_path / "c", [17], BusTiming.profile("hostile", 6))
    assert a["runs"][0]["cycles"] == b["runs"][0]["cycles"]
    assert a["runs"][0]["cycles"] != c["runs"][0]["cycles"]


def test_misaligned_request_is_reported(dma, tmp_path):
    results, _ = run(dma, tmp_path, [2], BusTiming(), src=SRC + 4)
    assert "not aligned" in results["runs"][0]["error"]


def test_stream_rule_violation_is_reported(tmp_path_factory, tmp_path):
    rogue = simrunner.build(memcopy_verilog(BUS_BITS, MAX_BURST, unstable_wr=True), "memcopy",
                            cache_dir=session_cache(tmp_path_factory))
    job, _ = copy_job(tmp_path, [8], BusTiming.profile("hostile", 4))
    results = simrunner.run_job(rogue, job, tmp_path / "work")
    assert results["runs"][0]["error"] == "wr payload changed before it was accepted"


def test_timeout_is_reported(dma, tmp_path):
    results, _ = run(dma, tmp_path, [64], BusTiming(), timeout=50)
    assert results["runs"][0]["error"] == "timeout: no done after 50 cycles"
    assert results["runs"][0]["cycles"] == 50


def test_unknown_simulator_is_a_user_error():
    with pytest.raises(HwgenError, match="unknown simulator"):
        simrunner.build("module x; endmodule", "x", sim="modelsim")


def test_broken_verilog_fails_with_one_line(tmp_path):
    with pytest.raises(HwgenError, match="verilator build of 'broken' failed") as e:
        simrunner.build("module broken(input clk); wire x = ; endmodule", "broken", cache_dir=tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not simrunner.available("icarus"), reason="iverilog not installed")
def test_icarus_agrees_with_verilator_cycle_for_cycle(dma, tmp_path):
    copies = [6, 13]
    timing = BusTiming.profile("hostile", 11)
    ver, expected = run(dma, tmp_path / "v", copies, timing)
    ica = simrunner.build(memcopy_verilog(BUS_BITS, MAX_BURST), "memcopy", sim="icarus", cache_dir=tmp_path / "cache")
    job, _ = copy_job(tmp_path / "i", copies, timing)
    res = simrunner.run_job(ica, job, tmp_path / "i" / "work")
    for i in range(len(copies)):
        assert (tmp_path / "i" / f"out{i}.bin").read_bytes() == expected[i]
        assert res["runs"][i]["cycles"] == ver["runs"][i]["cycles"]
        assert res["runs"][i]["traffic"] == ver["runs"][i]["traffic"]


def test_vcd_waves_are_written(tmp_path):
    traced = simrunner.build(memcopy_verilog(BUS_BITS, MAX_BURST), "memcopy", waves="vcd", cache_dir=tmp_path / "cache")
    job, _ = copy_job(tmp_path, [3], BusTiming())
    vcd = tmp_path / "copy.vcd"
    simrunner.run_job(traced, job, tmp_path / "work", waves_file=vcd)
    text = vcd.read_text()
    assert "$enddefinitions" in text and "req__valid" in text


@pytest.mark.skipif(not simrunner.available("icarus"), reason="iverilog not installed")
def test_icarus_fst_waves_are_written(tmp_path):
    traced = simrunner.build(memcopy_verilog(BUS_BITS, MAX_BURST), "memcopy", sim="icarus", waves="fst",
                            cache_dir=tmp_path / "cache")
    job, _ = copy_job(tmp_path, [3], BusTiming())
    fst = tmp_path / "copy.fst"
    simrunner.run_job(traced, job, tmp_path / "work", waves_file=fst)
    assert fst.read_bytes()[:1] == b"\x00"  # FST block type 0: the header block
    with pytest.raises(HwgenError, match="does not match"):
        simrunner.run_job(traced, job, tmp_path / "work2", waves_file=tmp_path / "copy.vcd")


def fast_build(tmp_path_factory, unstable_wr: bool = False):
    """The DMA behind the stream shell inside the fast mode's HDL memory; (build, region counters)."""
    from hwgen.sim_target import fast_verilog

    shell = templates.fill("hwgen_top.v", TOP="hwgen_top", ENGINE="memcopy", BUS_BITS=BUS_BITS)
    sources, regions = fast_verilog({"memcopy.v": memcopy_verilog(BUS_BITS, MAX_BURST, unstable_wr=unstable_wr),
                                     "hwgen_top.v": shell}, "hwgen_top", BUS_BITS, DRAM_SIZE, len(REGIONS))
    return simulate.build_fast(sources, cache_dir=session_cache(tmp_path_factory)), regions


@pytest.fixture(scope="module")
def fast_dma(tmp_path_factory):
    return fast_build(tmp_path_factory)


def run_fast(fast, tmp_path, copies, timing, **kw):
    build, regions = fast
    job, expected = copy_job(tmp_path, copies, timing, **kw)
    return simrunner.run_job(build, dict(job, **simulate.fast_job(regions)), tmp_path / "work"), expected


@pytest.mark.parametrize("timing", [BusTiming.profile("ideal", 0), BusTiming.profile("hostile", 3)],
                         ids=["ideal", "hostile"])
def test_fast_memory_serves_the_dma_as_the_agent_does(dma, fast_dma, tmp_path, timing):
    copies = [1, 4, 5, 37]
    ref, _ = run(dma, tmp_path / "ref", copies, timing)
    fast, expected = run_fast(fast_dma, tmp_path / "fast", copies, timing)
    for i, (a, b) in enumerate(zip(ref["runs"], fast["runs"], strict=True)):
        assert (tmp_path / "fast" / f"out{i}.bin").read_bytes() == expected[i]
        assert b == a and b["error"] is None  # name, cycles and traffic per region


@pytest.mark.parametrize("beats, kw", [(2, {"src": SRC + 4}), (64, {"timeout": 50})], ids=["misaligned", "timeout"])
def test_fast_memory_reports_violations_in_the_agents_words(dma, fast_dma, tmp_path, beats, kw):
    ref, _ = run(dma, tmp_path / "ref", [beats], BusTiming(), **kw)
    fast, _ = run_fast(fast_dma, tmp_path / "fast", [beats], BusTiming(), **kw)
    assert ref["runs"][0]["error"] and fast["runs"][0]["error"] == ref["runs"][0]["error"]
    assert fast["runs"][0]["cycles"] == ref["runs"][0]["cycles"]


def test_fast_memory_catches_an_unstable_write_payload(tmp_path_factory, tmp_path):
    fast, _ = run_fast(fast_build(tmp_path_factory, unstable_wr=True), tmp_path, [8], BusTiming.profile("hostile", 4))
    assert fast["runs"][0]["error"] == "wr payload changed before it was accepted"
