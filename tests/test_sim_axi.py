"""The AXI engine top (`hwgen generate --interface axi`) in cocotb with cocotbext-axi.

One Verilator build of the shipped digits checkpoint's AXI engine: the whole network bit-exact
with AxiRam pausing every channel at random, DRAM bytes per tensor equal to the prediction, the
performance counters (read over AXI4-Lite by the Python driver) equal to the bench's cycles and
bytes, no protocol violation; the CLI on the folder; Icarus on one layer. The protocol monitor is
also checked alone on hand-made traces of violations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwgen import checkpoint, sim_target, simrunner, simulate
from hwgen.cli import main
from hwgen.engine import registers as regs
from sim.dram import Dram

CKPT = Path(__file__).resolve().parents[1] / "models" / "digits_ps4p4_w8a8.hwq"


@pytest.fixture(scope="module")
def digits_axi(tmp_path_factory):
    return sim_target.from_graph(checkpoint.load(CKPT), tmp_path_factory.mktemp("digits-axi"), interface="axi")


def run(target, tmp_path, cache, images, **kw):
    inputs, labels = simulate.sample_inputs(target.graph, images, 0)
    return simulate.run_network(target, inputs, labels, workdir=tmp_path / "sim", cache_dir=cache, **kw)


def test_digits_network_through_axi_is_bit_exact_under_random_pauses(digits_axi, tmp_path, cache):
    report = run(digits_axi, tmp_path, cache, images=2, seed=3, timing="hostile")
    assert report.error is None, report.error
    layers = json.loads((digits_axi.gen_dir / "manifest.json").read_text())["layers"]
    active = {lay["name"]: lay["schedule"]["mac_active"] for lay in layers}
    for lr in report.layers:
        # an error would carry any protocol violation or counter that differs from the bench's count
        assert lr.error is None and lr.images == 2 and lr.mismatches == 0, (lr.name, lr.error, lr.notes)
        assert lr.bytes_match, (lr.name, lr.tensor_bytes_measured, lr.tensor_bytes_predicted)
        c = lr.counters
        assert c["BUSY_CYCLES"] == lr.cycles
        assert c["BYTES_READ"] + c["BYTES_WRITTEN"] == lr.dram_bytes_predicted
        assert c["STALL_READ"] > 0 and c["STALL_WRITE"] > 0  # the pauses were felt
        assert c["MAC_ACTIVE"] == active[lr.name]  # the schedule model's tap steps, whatever the pauses
    assert report.logits_match and report.passed


def test_cli_on_an_axi_folder_with_ideal_memory(digits_axi, tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))
    out_json = tmp_path / "sim.json"
    assert main(["simulate", str(digits_axi.gen_dir), "--images", "1", "--timing", "ideal", "--no-progress",
                 "--json", str(out_json)]) == 0
    assert "bit-exact" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    for lay in report["layers"]:
        assert lay["counters"]["BUSY_CYCLES"] == lay["cycles"] and lay["bytes_match"]
        assert lay["counters"]["STALL_WRITE"] <= 2  # ideal memory: only the last write response


def test_a_layer_without_irq_in_time_is_a_hang(digits_axi, tmp_path, cache, monkeypatch):
    monkeypatch.setattr(simulate, "TIMEOUT_MIN", 200)
    monkeypatch.setattr(simulate, "TIMEOUT_FACTOR", 0)
    report = run(digits_axi, tmp_path, cache, images=1, timing="ideal")
    assert not report.passed and "timeout: no irq after 200 cycles" in report.layers[0].error


@pytest.mark.skipif(not simrunner.available("icarus"), reason="iverilog not installed")
def test_icarus_runs_one_layer_through_axi(digits_axi, tmp_path, cache):
    report = run(digits_axi, tmp_path, cache, images=1, sim="icarus", layers=["conv1"], seed=1)
    assert report.passed, [(lr.name, lr.error, lr.notes) for lr in report.layers]


# -- the protocol monitor alone, on traces ---------------------------------------------------------------

def monitor():
    """A monitor over hand-driven values (`drive`), stepped one cycle at a time."""
    from sim.axi_bench import AxiMonitor

    sig = dict.fromkeys(AxiMonitor.signals(), 0)
    return AxiMonitor(Dram(1 << 16, 8), {n: (lambda n=n: format(sig[n], "b")) for n in sig}), sig


def drive(sig, **values):
    sig.update(values)


def test_monitor_accepts_a_clean_burst_and_counts_it():
    mon, sig = monitor()
    drive(sig, awvalid=1, awready=1, awaddr=4096 - 16, awlen=1, awsize=3, awburst=1)
    mon.step()
    drive(sig, awvalid=0, wvalid=1, wready=1, wstrb=0xFF, wlast=0)
    mon.step()
    drive(sig, wlast=1)
    mon.step()
    assert mon.violation is None
    assert mon.dram.traffic_dict()["other"]["write_bytes"] == 16


def test_monitor_asks_for_the_next_cycle_exactly_while_something_is_open():
    """`step()` is True (check the next cycle too) while a valid is high, a payload is held, a burst
    or its write response is open, or a start is armed; False on an idle bus, whose cycles `watch`
    skips until a valid, the AXI-Lite AW valid or irq rises."""
    mon, sig = monitor()
    assert mon.step() is False  # nothing on the bus
    drive(sig, arvalid=1, arready=0, araddr=0, arlen=1, arsize=3, arburst=1)
    assert mon.step() is True  # AR held, not accepted
    drive(sig, arready=1)
    assert mon.step() is True  # accepted: a burst of 2 beats is open
    drive(sig, arvalid=0, arready=0)
    assert mon.step() is True  # its beats are still to come
    drive(sig, rvalid=1, rready=1, rlast=0)
    assert mon.step() is True
    drive(sig, rlast=1)
    assert mon.step() is True  # R valid
    drive(sig, rvalid=0, rlast=0)
    assert mon.step() is False and not mon.reads and mon.violation is None
    assert mon.dram.traffic_dict()["other"]["read_bytes"] == 16
    drive(sig, awvalid=1, awready=1, awaddr=64, awlen=0, awsize=3, awburst=1)
    mon.step()
    drive(sig, awvalid=0, awready=0, wvalid=1, wready=1, wstrb=0xFF, wlast=1)
    mon.step()
    drive(sig, wvalid=0)
    assert mon.step() is True  # the write response is open
    drive(sig, bvalid=1, bready=1)
    mon.step()
    drive(sig, bvalid=0, bready=0)
    assert mon.step() is False and mon.violation is None


@pytest.mark.parametrize("what, steps", [
    ("4 KiB", [dict(arvalid=1, arready=1, araddr=4096 - 8, arlen=1, arsize=3, arburst=1)]),
    ("not INCR", [dict(arvalid=1, arready=1, araddr=0, arlen=0, arsize=3, arburst=0)]),
    ("changed", [dict(arvalid=1, arready=0, araddr=0, arlen=3, arsize=3, arburst=1), dict(araddr=8)]),
    ("dropped", [dict(awvalid=1, awready=0, awaddr=0, awlen=0, awsize=3, awburst=1), dict(awvalid=0)]),
    ("before its AW", [dict(wvalid=1, wready=1, wstrb=0xFF, wlast=1)]),
    ("WLAST", [dict(awvalid=1, awready=1, awaddr=0, awlen=1, awsize=3, awburst=1),
               dict(awvalid=0, wvalid=1, wready=1, wstrb=0xFF, wlast=1)]),
    ("WSTRB", [dict(awvalid=1, awready=1, awaddr=0, awlen=0, awsize=3, awburst=1),
               dict(awvalid=0, wvalid=1, wready=1, wstrb=0x0F, wlast=1)]),
])
def test_monitor_catches_violations(what, steps):
    mon, sig = monitor()
    for step in steps:
        drive(sig, **step)
        mon.step()
    assert mon.violation is not None and what in mon.violation, mon.violation


def test_monitor_refuses_unaligned_bursts():
    from sim.dram import DramError

    mon, sig = monitor()
    drive(sig, arvalid=1, arready=1, araddr=4, arlen=0, arsize=3, arburst=1)
    with pytest.raises(DramError, match="aligned"):
        mon.step()


def test_register_offsets_are_distinct_and_word_aligned():
    offsets = [r.offset for r in regs.REGISTERS]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 and o < 1 << regs.ADDR_BITS for o in offsets)


def test_cli_takes_your_images_and_expected_outputs(digits_axi, tmp_path, cache, monkeypatch, capsys):
    """--input X.npy (float images, quantized with the input scale) and --expect Y.npy: equal gives
    exit 0, one changed logit exit 1, an image of the wrong shape or range one line and exit 2."""
    import numpy as np

    from hwgen import datasets, reference
    from hwgen.quantize import quantize_input

    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))
    x = datasets.load_digits_split()[2][:1]
    np.save(tmp_path / "x.npy", x)
    y = reference.run(digits_axi.graph, quantize_input(digits_axi.graph, x))
    np.save(tmp_path / "y.npy", y)
    y_bad = y.copy()
    y_bad[0, 3] += 1
    np.save(tmp_path / "y_bad.npy", y_bad)
    base = ["simulate", str(digits_axi.gen_dir), "--layers", "conv1", "--timing", "ideal", "--no-progress",
            "--input", str(tmp_path / "x.npy")]
    assert main(base + ["--expect", str(tmp_path / "y.npy")]) == 0
    assert "expected outputs (--expect): equal" in capsys.readouterr().out
    assert main(base + ["--expect", str(tmp_path / "y_bad.npy")]) == 1
    assert "1 DIFFER" in capsys.readouterr().out
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 8, 8), dtype=np.float32))
    np.save(tmp_path / "range.npy", np.full((1, 1, 8, 8), 999, dtype=np.int64))
    for bad, message in (("wrong.npy", "expected shape"), ("range.npy", "outside the")):
        assert main(base[:-1] + [str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


# -- the randomized campaign through the AXI top (`hwgen verify --interface axi`) -----------------------

def test_verify_through_axi_keys_replays_and_refuses_the_fast_mode(tmp_path, capsys):
    from hwgen.sweep.verify import case_key, replay_command

    assert replay_command(5, Path("d"), "hostile", interface="axi") == \
        "hwgen verify --random 1 --seed 5 --interface axi --out d"
    assert case_key(5, "hostile", interface="axi") != case_key(5, "hostile")
    assert main(["verify", "--random", "1", "--interface", "axi", "--mode", "fast", "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert "the fast mode has no AXI top" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_random_campaign_through_axi_is_bit_exact_without_violations(tmp_path, cache):
    """`hwgen verify --random 2 --interface axi`: random engines and chains, each run layer by layer
    and from one start on cocotbext-axi under random pauses; 0 mismatches, 0 violations, counters
    equal (any of them would fail the case)."""
    from hwgen.sweep import store
    from hwgen.sweep.verify import run_campaign

    s = run_campaign(2, tmp_path / "v", seed=11, workers=2, cache_dir=cache, progress=False, interface="axi")
    assert s["failed"] == [], [(r["seed"], r["error"]) for r in s["failed"]]
    rows = store.load(tmp_path / "v")
    assert len(rows) == 2 and all(r["mismatches"] == 0 and r["sim_cycles"] > 0 for r in rows)
