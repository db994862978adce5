"""Weights packed at W bits in DRAM (W = 2, 4): the layout, and whole layers bit-exact in amaranth.sim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hwgen.layercases import conv_graph, pattern_library_graph
from test_gateware_engine import run_case
from test_generate import lint

from hwgen import engine
from hwgen.engine import schedule
from hwgen.generate import generate


def _plan_params(graph, **knobs):
    plan = engine.plan_node(graph, graph.node("conv"), m_lanes=knobs.get("m_lanes", 4))
    return plan, engine.fit_params([plan], **knobs)


@pytest.mark.parametrize("bits, pack", [(8, 1), (6, 1), (4, 2), (2, 4)])
def test_pack_rule(bits, pack):
    _, params = _plan_params(conv_graph(1, cin=4, cout=4, h=4, w=4, scheme="PS4_P4", weight_bits=bits))
    assert params.weight_pack == pack
    assert params.widths()["weight_dram_bits"] == 8 // pack


def test_library_engines_keep_byte_weights():
    _, params = _plan_params(pattern_library_graph(2, cin=8, cout=8, h=4, w=4, weight_bits=4))
    assert params.library and params.weight_pack == 1


@pytest.mark.parametrize("bits", [4, 2])
@pytest.mark.parametrize("scheme", ["PS4_P4", None])
def test_packed_stream_holds_the_byte_stream(bits, scheme):
    """Unpacking the W-bit fields gives back the byte layout's low W bits, group by group."""
    plan, params = _plan_params(conv_graph(3, cin=7, cout=6, h=4, w=4, scheme=scheme, weight_bits=bits))
    wide = dataclasses.replace(params, weight_bits=8)  # same plan, bytes in DRAM
    assert wide.weight_pack == 1
    packed, plain = engine.pack_weights(plan, params), engine.pack_weights(plan, wide)
    pack, bb = params.weight_pack, params.beat_bytes
    gp, gb = engine.weight_group_beats(plan, params) * bb, engine.weight_group_beats(plan, wide) * bb
    assert gp == engine.ceil_div(gb, pack * bb) * bb < gb
    groups = engine.groups(plan, params)
    assert len(packed) == groups * gp and len(plain) == groups * gb
    raw = np.frombuffer(packed, dtype=np.uint8).astype(np.int64)
    fields = (raw[:, None] >> (bits * np.arange(pack))) & ((1 << bits) - 1)
    fields = fields.reshape(groups, -1)[:, :gb]
    want = np.frombuffer(plain, dtype=np.uint8).astype(np.int64).reshape(groups, -1) & ((1 << bits) - 1)
    np.testing.assert_array_equal(fields, want)


CASES = {
    # name: (conv_graph kwargs, knobs kwargs); the engine kwargs cover an unpacked beat narrower
    # than, equal to and wider than the weight buffer's lane word
    "ps4p4_w4": (dict(cin=6, cout=8, h=5, w=7, scheme="PS4_P4", weight_bits=4), {}),
    "ps4p4_w2_stride2": (dict(cin=5, cout=6, h=7, w=9, scheme="PS4_P4", weight_bits=2, stride=2), {}),
    "dense_w4_lanes16": (dict(cin=3, cout=17, h=4, w=5, weight_bits=4, act_bits=6),
                         dict(m_lanes=16, x_lanes=2, bus_bits=32)),
    "dense_w2_signed": (dict(cin=2, cout=5, h=5, w=6, weight_bits=2, in_signed=True), dict(bus_bits=32)),
    "ps4p4_w2_lanes8": (dict(cin=4, cout=9, h=4, w=4, scheme="PS4_P4", weight_bits=2), dict(m_lanes=8, x_lanes=2, bus_bits=16)),
    "psd1p16_w4_residue": (dict(cin=8, cout=32, h=4, w=4, scheme="PSD1_P16", weight_bits=4), {}),
    "pointwise_w4": (dict(cin=7, cout=9, h=6, w=6, kernel=1, weight_bits=4), dict(bus_bits=128)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_packed_layer_bit_exact_with_schedule_bytes(name):
    kwargs, knobs = CASES[name]
    graph = conv_graph(sum(map(ord, name)) % 997, **kwargs)
    plan, params, _ = run_case(graph, 11, stall=0.3, **knobs)  # bit-exact under stalls
    assert params.weight_pack == 8 // kwargs["weight_bits"]
    plan, params, traffic = run_case(graph, 12, stall=0.0, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes
    assert traffic.write_bytes == model.write_bytes
    assert model.bytes["weights"] == len(engine.pack_weights(plan, params))
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles


@pytest.mark.parametrize("bits", [4, 2])
def test_packed_engine_lints(tmp_path, bits):
    """Weights and activations both packed (W = A = 4: two per byte, 2: four per byte)."""
    manifest = generate(conv_graph(4, cin=8, cout=8, h=4, w=4, scheme="PS4_P4", weight_bits=bits, act_bits=bits),
                        tmp_path)
    assert manifest["params"]["weight_pack"] == 8 // bits
    assert manifest["dram"]["activation_elements_per_byte"] == 8 // bits
    proc = lint(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_outputs_wider_than_inputs_set_the_activation_field():
    """4-bit inputs, 8-bit outputs: the engine's A (and so its DRAM field) holds the outputs too."""
    graph = conv_graph(5, cin=3, cout=5, h=4, w=6, scheme="PS4_P4")
    graph.input.quant.act_bits = 4
    plan, params, _ = run_case(graph, 5)
    assert plan.act_bits == 4 and params.act_bits == 8 and params.act_pack == 1
