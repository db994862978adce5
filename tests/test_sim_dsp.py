"""ECP5 DSP cells (`hwgen generate --dsp ecp5`, `hwgen.gateware.dsp`) in cocotb/Verilator.

`amaranth.sim` cannot run an Instance, so the cells run on their model (rtl_templates/hwgen_mult18x18d.v):
`Multiplier`s of every signedness pair and of the shapes the engine uses, against Python's multiply at
the corners and on random operands, two cycles after their operands; and whole engines built with the
cells, bit-exact against hwgen.reference under hostile DRAM timing (the digits network; a prefetched
layer; a residue-grouped one), the digits network in exactly the cycles of the fabric build.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from hwgen.layercases import conv_graph
from sim_helpers import check_single_layer

from hwgen import checkpoint, sim_target, simrunner, simulate, templates
from hwgen.gateware import dsp
from sim.mult_tb import JOB_ENV

CKPT = Path(__file__).resolve().parents[1] / "models" / "digits_ps4p4_w8a8.hwq"

# every signedness pair at the cell's full 18 bits, and the products the engine builds: the MAC array's
# (W8 weight x signed A8 pixel), the requantizer's low slice and top slice (of a 24-bit accumulator) times M
SHAPES = [(signed(18), signed(18)), (signed(18), unsigned(18)), (unsigned(18), signed(18)),
          (unsigned(18), unsigned(18)), (signed(8), signed(9)), (unsigned(17), unsigned(15)), (signed(7), unsigned(15))]
RANDOM_CYCLES = 400


class Pairs(wiring.Component):
    """One `Multiplier` per pair of `shapes`: inputs `a{i}`, `b{i}`, output `p{i}`."""

    def __init__(self, shapes):
        self.shapes = shapes
        ports = {}
        for i, (a, b) in enumerate(shapes):
            ports.update({f"a{i}": In(a), f"b{i}": In(b), f"p{i}": Out((Signal(a) * Signal(b)).shape())})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for i in range(len(self.shapes)):
            m.d.comb += getattr(self, f"p{i}").eq(dsp.product(m, getattr(self, f"a{i}"), getattr(self, f"b{i}"), f"mult{i}"))
        return m


def corners(shape) -> list[int]:
    lo, hi = (-(1 << shape.width - 1), (1 << shape.width - 1) - 1) if shape.signed else (0, (1 << shape.width) - 1)
    return sorted({lo, hi, 0, 1, lo + 1, hi - 1} | ({-1} if shape.signed else set()))


def operands(a_shape, b_shape, rng) -> list[tuple[int, int]]:
    """Every pair of corners, then random operands."""
    pairs = [(a, b) for a in corners(a_shape) for b in corners(b_shape)]
    for _ in range(RANDOM_CYCLES):
        pairs.append(tuple(rng.randrange(-(1 << s.width - 1), 1 << s.width - 1) if s.signed else rng.randrange(1 << s.width)
                           for s in (a_shape, b_shape)))
    return pairs


def value(raw: int, shape) -> int:
    return raw - (1 << shape.width) if shape.signed and raw >> (shape.width - 1) & 1 else raw


def test_multiplier_model_matches_python_two_cycles_later(tmp_path, cache):
    from cocotb_tools.runner import get_runner

    top = Pairs(SHAPES)
    sources = {"mult_top.v": verilog.convert(top, name="mult_top", emit_src=False), dsp.MODEL: templates.text(dsp.MODEL)}
    build = simrunner.build(sources, "mult_top", cache_dir=cache)
    rng = random.Random(10)
    streams = [operands(a, b, rng) for a, b in SHAPES]
    cycles = max(len(s) for s in streams) + dsp.LATENCY
    for s in streams:  # every pair runs as long as the longest, on zeros
        s += [(0, 0)] * (cycles - len(s))
    raw = [[(a & (1 << sa.width) - 1, b & (1 << sb.width) - 1) for a, b in s] for s, (sa, sb) in zip(streams, SHAPES)]
    job = tmp_path / "job.json"
    results = tmp_path / "results.json"
    job.write_text(json.dumps({"operands": raw, "results": str(results)}))
    get_runner("verilator").test(test_module="sim.mult_tb", hdl_toplevel="mult_top", hdl_toplevel_lang="verilog",
                                 build_dir=build.build_dir,
                                 test_dir=tmp_path, extra_env={JOB_ENV: str(job)}, timescale=("1ns", "1ps"))
    outputs = json.loads(results.read_text())
    for i, ((sa, sb), stream) in enumerate(zip(SHAPES, streams)):
        p_shape = getattr(top, f"p{i}").shape()
        got = [value(p, p_shape) for p in outputs[i][dsp.LATENCY:]]
        want = [a * b for a, b in stream[:len(got)]]
        bad = [(stream[k], got[k], want[k]) for k in range(len(got)) if got[k] != want[k]]
        assert not bad, f"{sa} x {sb}: {len(bad)} wrong products, first (operands, got, want) {bad[0]}"


@pytest.fixture(scope="module")
def digits_ecp5(tmp_path_factory):
    return sim_target.from_graph(checkpoint.load(CKPT), tmp_path_factory.mktemp("digits-ecp5"), dsp="ecp5")


def test_ecp5_digits_network_is_bit_exact_under_hostile_dram(digits_ecp5, tmp_path, cache):
    assert dsp.MODEL in digits_ecp5.sources
    inputs, labels = simulate.sample_inputs(digits_ecp5.graph, 2, 3)
    report = simulate.run_network(digits_ecp5, inputs, labels, seed=3, timing="hostile", workdir=tmp_path / "sim",
                                  cache_dir=cache)
    assert report.error is None
    assert [lr.name for lr in report.layers] == ["conv1", "conv2", "conv3", "conv4"]
    for lr in report.layers:
        assert lr.images == 2 and lr.mismatches == 0 and lr.bytes_match, f"{lr.name}: {lr.notes}"
    assert report.logits_match and report.passed


def test_ecp5_digits_network_takes_the_fabric_builds_cycles(digits_ecp5, tmp_path, tmp_path_factory, cache):
    """The cells' registers are the two cuts they replace: the same latency, so the same cycles."""
    fabric = sim_target.from_graph(checkpoint.load(CKPT), tmp_path_factory.mktemp("digits-fabric"))
    inputs, labels = simulate.sample_inputs(fabric.graph, 1, 0)
    cycles = [[lr.cycles for lr in simulate.run_network(target, inputs, labels, timing="ideal", cache_dir=cache,
                                                         workdir=tmp_path / name).layers]
              for name, target in (("fabric", fabric), ("ecp5", digits_ecp5))]
    assert cycles[0] == cycles[1] and all(cycles[0])


@pytest.mark.parametrize("graph, knobs, feature", [
    # test_gateware_prefetch.py's prefetched case: two lane groups, the second's weights read behind the first's run
    (dict(seed=3, cin=8, cout=12, h=2, w=5, scheme="PS4_P4"), {}, lambda lay: lay["tiling"]["prefetch"]),
    # test_gateware_residue.py's PSD1_P16 case: residue-grouped lanes, a four-deep window FIFO
    (dict(seed=7, cin=16, cout=32, h=3, w=3, scheme="PSD1_P16"), dict(m_lanes=2, x_lanes=2),
     lambda lay: lay["grouping"] == "residue"),
], ids=["prefetch", "residue"])
def test_ecp5_layer_is_bit_exact_under_hostile_dram(graph, knobs, feature, tmp_path, cache):
    target = sim_target.from_graph(conv_graph(**graph), tmp_path / "engine", dsp="ecp5", **knobs)
    manifest = json.loads((target.gen_dir / "manifest.json").read_text())
    assert manifest["params"]["dsp"] == "ecp5" and feature(manifest["layers"][0])
    check_single_layer(target, tmp_path, cache, "hostile", 11, 0.0)
