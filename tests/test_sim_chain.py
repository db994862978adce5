"""Whole networks from one start through the AXI top, in cocotb on Verilator.

Generated with `--interface axi` (the network-op unit in the top, `network_image.bin`), run by the
generated Python driver (`Driver.run` with DESC_COUNT = the chain's length: one start, one irq
per image) on cocotbext-axi's AxiRam pausing every channel at random: every node's output map
equals the reference's, no AXI protocol violation (the monitor's checks), the performance
counters equal the bench's cycles and bytes, and the bytes equal those of the same nodes run one
by one.
- the whole shipped digits network on 4 images (conv, conv, max pool, conv, conv, max pool, the
  classifier on the flattened map: 7 descriptors; the logits equal the reference's): the build is
  the one tests/test_sim_axi.py makes (one build per session, shared through the cache);
- (slow: a Verilator build of its own) conv -> conv -> add(+ReLU) -> 2x2 max pool -> 2x2
  average pool -> global average pool;
- (slow) in the fast simulation mode (the same engine and network-op unit walking the same chain
  behind the stream bus, `simulate.run_chain(mode="fast")`, no AXI): that network with the add in a
  ResNet basic block's form, and a whole ResNet-18 CIFAR image.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen import checkpoint, engine, reference, sim_target, simulate
from hwgen.errors import HwgenError
from hwgen.layercases import random_input, residual_graph
from tests.test_sim_axi import CKPT


def check_chain(graph, tmp_path, cache, seed: int, images: int = 2, mode: str = "reference"):
    """Generate `graph` for the AXI top, run it from one start on `images` images, check everything
    (`mode` "fast": the same chain behind the stream bus in the HDL DRAM model, no counters)."""
    target = sim_target.from_graph(graph, tmp_path / "gen", interface="axi")
    net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
    inputs = np.stack([random_input(graph, s) for s in range(seed, seed + images)])
    host = simulate.run_chain(target, inputs, seed=seed, timing="hostile", workdir=tmp_path / "sim", cache_dir=cache,
                              mode=mode)
    assert host["aborted"] is None, host["aborted"]
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    # the prediction: the convs' schedules and each network op's bytes (netop.moved_bytes), node by node
    assert [net["bytes"][p.name] for p in b.plans] == [sum(s.bytes.values()) for s in b.schedules]
    assert net["bytes_total"] == sum(net["bytes"].values()) and net["host_layers"] == []
    for i, img in enumerate(host["images"]):
        run = img["run"]
        assert run["error"] is None, run["error"]  # protocol violations and counter differences land here
        assert all(v["mismatches"] == 0 for v in img["nodes"].values()), img["nodes"]
        np.testing.assert_array_equal(np.asarray(img["output"]), reference.run(graph, inputs[i:i + 1])[0])
        assert sum(r["read_bytes"] + r["write_bytes"] for r in run["traffic"].values()) == net["bytes_total"]
        if mode == "reference":
            c = run["counters"]
            assert c["BUSY_CYCLES"] == run["cycles"] and c["STALL_READ"] > 0
            assert c["BYTES_READ"] + c["BYTES_WRITTEN"] == net["bytes_total"]
            assert c["MAC_ACTIVE"] == net["mac_active"] == sum(s.mac_active for s in b.schedules)
    return net


def test_digits_network_from_one_start_through_axi(tmp_path, cache):
    """The whole digits network, classifier included: the host writes the image and reads the logits."""
    graph = checkpoint.load(CKPT)
    net = check_chain(graph, tmp_path, cache, seed=3, images=4)
    assert net["chain"] == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "classifier"]
    assert net["tensors"]["classifier"]["logits"] and net["tensors"]["flatten"] == net["tensors"]["pool2"]


@pytest.mark.slow
@pytest.mark.parametrize("basic_block", [False, True])
def test_residual_network_from_one_start_through_axi(tmp_path, cache, basic_block):
    """(`basic_block`: the add as a ResNet basic block's, signed conv branch + unsigned shortcut)"""
    net = check_chain(residual_graph(1, 3, 8, 8, 8, basic_block=basic_block), tmp_path, cache, seed=5)
    assert net["chain"] == ["c1", "c2", "add", "mp", "ap", "gap"]


@pytest.mark.slow
def test_basic_block_network_from_one_start_in_the_fast_mode(tmp_path, cache):
    """The add as a ResNet basic block's (signed conv branch + unsigned shortcut), 3 images."""
    net = check_chain(residual_graph(2, 3, 8, 8, 8, basic_block=True), tmp_path, cache, seed=7, images=3, mode="fast")
    assert net["chain"] == ["c1", "c2", "add", "mp", "ap", "gap"]


@pytest.mark.slow
def test_resnet18_cifar_from_one_start_in_the_fast_mode(tmp_path, cache):
    """ResNet-18 CIFAR PS4_P4 W8A8 (random weights), 0 host layers: one start walks 30 descriptors
    (20 convs, 8 residual adds, the global average pool, the classifier); every node's map and the
    logits equal the reference's, the DRAM bytes the prediction. ~16 M cycles, a few minutes."""
    from hwgen.generate import generate
    from models.synthetic import quantized_zoo

    graph = quantized_zoo("resnet18-cifar", scheme="PS4_P4")
    generate(graph, tmp_path / "gen", glb_kib=16, weight_kib=32, interface="axi")
    target = sim_target.load_generated(tmp_path / "gen")
    net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
    assert net["count"] == 30 and net["host_layers"] == []
    assert [graph.node(n).op for n in net["chain"][-3:]] == ["add", "avgpool2d", "linear"]
    x, _ = simulate.sample_inputs(graph, 1, 0)
    host = simulate.run_chain(target, x, timing="hostile", workdir=tmp_path / "sim", cache_dir=cache,
                              timeout=64_000_000, mode="fast")
    assert host["aborted"] is None, host["aborted"]
    (img,) = host["images"]
    assert img["run"]["error"] is None and all(v["mismatches"] == 0 for v in img["nodes"].values()), img["nodes"]
    np.testing.assert_array_equal(np.asarray(img["output"]), reference.run(graph, x)[0])
    assert sum(r["read_bytes"] + r["write_bytes"] for r in img["run"]["traffic"].values()) == net["bytes_total"]


def test_a_network_op_the_hardware_cannot_run_is_one_line_and_exit_2(tmp_path, capsys):
    """A ceil-mode max pool in the digits network: the generated folder names it in `network.error`,
    and running that network from one start is refused in one line (exit 2 from the CLI)."""
    from hwgen.generate import generate

    graph = checkpoint.load(CKPT)
    graph.node("pool2").attrs["ceil_mode"] = True  # same shapes on its 4x4 input
    manifest = generate(graph, tmp_path / "gen", interface="axi")
    assert manifest["network"] == {"error": "node 'pool2': the network-op unit pools 2x2 windows at stride 2 "
                                            "without padding, not kernel (2, 2) stride (2, 2) padding (0, 0) "
                                            "in ceil mode"}
    assert manifest["interface"]["netops"] == ["maxpool2", "linear"]  # what the network's other nodes use
    with pytest.raises(HwgenError, match="cannot run the whole network from one start: node 'pool2'"):
        simulate.run_chain(sim_target.load_generated(tmp_path / "gen"), np.zeros((1, 1, 8, 8), np.int64),
                           workdir=tmp_path / "sim")
