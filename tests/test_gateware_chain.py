"""Descriptor chains (hwgen.gateware.chain) in amaranth.sim: a whole small network from one start.

conv -> conv -> add(+ReLU) -> 2x2 max pool -> 2x2 average pool -> global average pool (the add
also in a ResNet basic block's form: signed conv branch + unsigned shortcut), the chain image of
hwgen.engine.network, on `ChainShell(Engine, NetOps)` (`Chain` behind the engine's own ports, as
the fast simulation mode runs it) under random stalls on every stream:
every intermediate map in DRAM equals the reference's, and the chain moves exactly the bytes of
its nodes run one by one (the conv schedules' bytes, and each network op's descriptor, inputs and
output), so answering the engine's descriptor read from the chain's copy costs nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwgen import engine, reference
from hwgen.engine.network import NetopUnit, netop_unit, network_image
from hwgen.errors import HwgenError
from hwgen.gateware.chain import ChainShell
from hwgen.gateware.engine import Engine
from hwgen.gateware.netops import NetOps
from hwgen.gateware.sim_memory import run_layer
from hwgen.layercases import conv_graph, random_input, residual_graph


@pytest.mark.parametrize("seed, act_bits, stall, basic_block", [(1, 8, 0.3, False), (2, 4, 0.5, True)])
def test_chain_runs_a_residual_network_from_one_start(seed, act_bits, stall, basic_block):
    check_residual_chain(residual_graph(seed, 3, 6, 8, 12, act_bits=act_bits, basic_block=basic_block), seed, stall)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 23))
def test_chain_soak(seed):
    """make soak: 20 random residual networks (channels, sizes in multiples of 4, A, stalls)."""
    rng = np.random.default_rng(seed)
    graph = residual_graph(seed, int(rng.integers(1, 5)), int(rng.integers(1, 9)), 4 * int(rng.integers(1, 4)),
                           4 * int(rng.integers(1, 6)), act_bits=int(rng.choice([2, 4, 8])))
    check_residual_chain(graph, seed, float(rng.uniform(0, 0.6)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(23, 33))
def test_chain_soak_basic_block(seed):
    """make soak: 10 random residual networks with the add in a ResNet basic block's form."""
    rng = np.random.default_rng(seed)
    graph = residual_graph(seed, int(rng.integers(1, 5)), int(rng.integers(1, 9)), 4 * int(rng.integers(1, 4)),
                           4 * int(rng.integers(1, 6)), act_bits=int(rng.choice([2, 4, 8])), basic_block=True)
    check_residual_chain(graph, seed, float(rng.uniform(0, 0.6)))


def check_residual_chain(graph, seed: int, stall: float) -> None:
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    p = b.params
    unit = netop_unit(graph, p, least=3)
    assert unit.ops == ("add", "maxpool2", "avgpool2", "gap")
    img = network_image(b, unit)
    assert img.chain == ["c1", "c2", "add", "mp", "ap", "gap"] and img.tensors["relu"] == img.tensors["add"]
    x = random_input(graph, seed)
    image = bytearray(img.size)
    image[:len(img.data)] = img.data
    blob = engine.pack_activations(x, p)
    t_in = img.tensors["x"]
    image[t_in.addr:t_in.addr + len(blob)] = blob
    shell = ChainShell(Engine(p), p.bus_bits, NetOps(p, unit.chunk, unit.ops), img.count)
    traffic = run_layer(shell, image, 0, stall=stall, seed=seed)
    want = reference.run_all(graph, x[None])
    for name in img.chain:
        t = img.tensors[name]
        got = engine.unpack_activations(bytes(image[t.addr:t.addr + t.bytes]), t.shape, t.signed, p)
        np.testing.assert_array_equal(got, want[name][0].reshape(t.shape), err_msg=name)
    netop_bytes = sum(64 + img.tensors[n].bytes + sum(img.tensors[i].bytes for i in graph.node(n).inputs)
                      for n in ("add", "ap", "gap"))
    mp = img.tensors["mp"]
    netop_bytes += 64 + mp.bytes + img.tensors["relu"].bytes  # even heights: every input row is in a window
    assert traffic.read_bytes + traffic.write_bytes == sum(sum(s.bytes.values()) for s in b.schedules) + netop_bytes


def test_network_image_refuses_what_the_hardware_cannot_run():
    graph = conv_graph(0, 2, 4, 4, 4)
    from hwgen.ir import Graph, Node, QuantInfo

    cat = Node("cat", "concat", ("conv", "conv"))
    cat.quant = QuantInfo(8, 1.0, False)
    g = Graph("g", graph.nodes + [cat], "cat").infer_shapes()
    b = engine.build(g, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    with pytest.raises(HwgenError, match=r"node 'cat' \(concat\) does not run in hardware"):
        network_image(b, None)


def test_network_image_refuses_an_op_the_unit_was_built_without():
    graph = residual_graph(1, 3, 6, 8, 12)
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    with pytest.raises(HwgenError, match=r"^node 'add': this build's network-op unit has no add \(it was generated "
                                         r"with maxpool2, gap\)$"):
        network_image(b, NetopUnit(("maxpool2", "gap"), 16))
