"""Whole networks from one start through the AXI top, in cocotb on Verilator.

Generated with `--interface axi` (the network-op unit in the top, `network_image.bin`), run by the
generated Python driver (`Driver.run` with DESC_COUNT = the chain's length: one start, one irq
per image) on cocotbext-axi's AxiRam pausing every channel at random: every node's output map
equals the reference's, no AXI protocol violation (the monitor's checks), the performance
counters equal the bench's cycles and bytes, and the bytes equal those of the same nodes run one
by one.
- the shipped digits network up to its last pool (conv, conv, max pool, conv, conv, max pool: 6
  descriptors): its engine and AXI top are the Verilog of the whole digits network, so the build
  is the one tests/test_sim_axi.py makes (one build per session, shared through the cache);
- (slow: a Verilator build of its own) conv -> conv -> add(+ReLU) -> 2x2 max pool -> 2x2
  average pool -> global average pool.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen import checkpoint, engine, reference, sim_target, simulate
from hwgen.engine.descriptor import DESCRIPTOR_BYTES
from hwgen.errors import HwgenError
from hwgen.ir import Graph
from hwgen.layercases import random_input, residual_graph
from tests.test_sim_axi import CKPT


def check_chain(graph, netops: tuple[str, ...], tmp_path, cache, seed: int):
    """Generate `graph` for the AXI top, run it from one start on two images, check everything."""
    target = sim_target.from_graph(graph, tmp_path / "gen", interface="axi")
    net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
    inputs = np.stack([random_input(graph, s) for s in (seed, seed + 1)])
    host = simulate.run_chain(target, inputs, seed=seed, timing="hostile", workdir=tmp_path / "sim", cache_dir=cache)
    assert host["aborted"] is None, host["aborted"]
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    t = net["tensors"]
    # every input row of these pools is in a window (even heights): each op moves its maps once
    netop_bytes = sum(DESCRIPTOR_BYTES + t[n]["bytes"] + sum(t[i]["bytes"] for i in graph.node(n).inputs)
                      for n in netops)
    chain_bytes = sum(sum(s.bytes.values()) for s in b.schedules) + netop_bytes
    for i, img in enumerate(host["images"]):
        run = img["run"]
        assert run["error"] is None, run["error"]  # protocol violations and counter differences land here
        assert all(v["mismatches"] == 0 for v in img["nodes"].values()), img["nodes"]
        np.testing.assert_array_equal(np.asarray(img["output"]), reference.run(graph, inputs[i:i + 1])[0])
        c = run["counters"]
        assert c["BUSY_CYCLES"] == run["cycles"] and c["STALL_READ"] > 0
        assert c["BYTES_READ"] + c["BYTES_WRITTEN"] == chain_bytes
        assert sum(r["read_bytes"] + r["write_bytes"] for r in run["traffic"].values()) == chain_bytes
    return net


def test_digits_features_from_one_start_through_axi(tmp_path, cache):
    graph = checkpoint.load(CKPT)
    last = [n.name for n in graph.nodes].index("pool2")
    features = Graph(graph.name, graph.nodes[:last + 1], "pool2").infer_shapes()
    net = check_chain(features, ("pool1", "pool2"), tmp_path, cache, seed=3)
    assert net["chain"] == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"]


@pytest.mark.slow
def test_residual_network_from_one_start_through_axi(tmp_path, cache):
    net = check_chain(residual_graph(1, 3, 8, 8, 8), ("add", "mp", "ap", "gap"), tmp_path, cache, seed=5)
    assert net["chain"] == ["c1", "c2", "add", "mp", "ap", "gap"]


def test_digits_network_image_names_what_stays_on_the_host(tmp_path):
    from hwgen.generate import generate

    manifest = generate(checkpoint.load(CKPT), tmp_path / "gen", interface="axi")
    assert manifest["network"] == {"error": "node 'flatten' (flatten) does not run in hardware: a network run "
                                            "from one start takes conv2d, add, 2x2 pools and global average "
                                            "pooling only"}
    assert manifest["interface"]["netops_chunk"] == 16  # the top carries the unit for its pools
    with pytest.raises(HwgenError, match="cannot run the whole network from one start"):
        simulate.run_chain(sim_target.load_generated(tmp_path / "gen"), np.zeros((1, 1, 8, 8), np.int64),
                           workdir=tmp_path / "sim")
