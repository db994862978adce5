"""Whole networks from one start through the AXI top, in cocotb on Verilator.

Generated with `--interface axi` (the network-op unit in the top, `network_image.bin`), run by the
generated Python driver (`Driver.run` with DESC_COUNT = the chain's length: one start, one irq
per image) on cocotbext-axi's AxiRam pausing every channel at random: every node's output map
equals the reference's, no AXI protocol violation (the monitor's checks), the performance
counters equal the bench's cycles and bytes, and the bytes equal those of the same nodes run one
by one.
- the whole shipped digits network on 2 images, `make demo` runs 4 (conv, conv, max pool, conv,
  conv, max pool, the classifier on the flattened map: 7 descriptors; the logits equal the
  reference's): the build is the one tests/test_sim_axi.py makes (one per session, shared through
  the cache);
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

from hwgen import checkpoint, engine, sim_target, simrunner, simulate
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.layercases import random_input, residual_graph
from tests.test_sim_axi import CKPT


def check_chain(graph, tmp_path, cache, monkeypatch, seed: int, images: int = 2, mode: str = "reference"):
    """Generate `graph` for the AXI top and run it from one start per image on `images` images with
    `hwgen simulate --chain` (exit 0 only if everything below holds); check its JSON report (`mode`
    "fast": the same chain behind the stream bus in the HDL DRAM model, no counters)."""
    monkeypatch.setenv(simrunner.CACHE_ENV, str(cache))
    target = sim_target.from_graph(graph, tmp_path / "gen", interface="axi")
    net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
    inputs = np.stack([random_input(graph, s) for s in range(seed, seed + images)])
    np.save(tmp_path / "x.npy", inputs)
    code = main(["simulate", str(target.gen_dir), "--chain", "--input", str(tmp_path / "x.npy"),
                 "--seed", str(seed), "--mode", mode, "--json", str(tmp_path / "chain.json")])
    report = json.loads((tmp_path / "chain.json").read_text())
    assert report["aborted"] is None, report["aborted"]
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    # the prediction: the convs' schedules and each network op's bytes (netop.moved_bytes), node by node
    assert [net["bytes"][p.name] for p in b.plans] == [sum(s.bytes.values()) for s in b.schedules]
    assert net["bytes_total"] == sum(net["bytes"].values()) and net["host_layers"] == []
    assert len(report["images"]) == images
    for img in report["images"]:
        assert img["error"] is None, img["error"]  # protocol violations and counter differences land here
        assert set(img["node_mismatches"]) == set(net["chain"]) and not any(img["node_mismatches"].values())
        assert img["output_equal"] and img["monitor_bytes"] == net["bytes_total"]
        if mode == "reference":
            c = img["counters"]
            assert c["BUSY_CYCLES"] == img["cycles"] and c["STALL_READ"] > 0
            assert c["BYTES_READ"] + c["BYTES_WRITTEN"] == img["monitor_bytes"]
            assert c["MAC_ACTIVE"] == net["mac_active"] == sum(s.mac_active for s in b.schedules)
        else:
            assert img["counters"] is None
    assert report["engine_top1"] == report["reference_top1"]
    assert report["passed"] and code == 0
    return net


def test_digits_network_from_one_start_through_axi(tmp_path, cache, monkeypatch):
    """The whole digits network, classifier included: the host writes the image and reads the logits."""
    graph = checkpoint.load(CKPT)
    net = check_chain(graph, tmp_path, cache, monkeypatch, seed=3, images=2)
    assert net["chain"] == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "classifier"]
    assert net["tensors"]["classifier"]["logits"] and net["tensors"]["flatten"] == net["tensors"]["pool2"]


@pytest.mark.slow
@pytest.mark.parametrize("basic_block", [False, True])
def test_residual_network_from_one_start_through_axi(tmp_path, cache, monkeypatch, basic_block):
    """(`basic_block`: the add as a ResNet basic block's, signed conv branch + unsigned shortcut)"""
    net = check_chain(residual_graph(1, 3, 8, 8, 8, basic_block=basic_block), tmp_path, cache, monkeypatch, seed=5)
    assert net["chain"] == ["c1", "c2", "add", "mp", "ap", "gap"]


@pytest.mark.slow
def test_basic_block_network_from_one_start_in_the_fast_mode(tmp_path, cache, monkeypatch):
    """The add as a ResNet basic block's (signed conv branch + unsigned shortcut), 3 images."""
    net = check_chain(residual_graph(2, 3, 8, 8, 8, basic_block=True), tmp_path, cache, monkeypatch, seed=7,
                      images=3, mode="fast")
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
    report = simulate.simulate_chain(tmp_path / "gen", images=1, workdir=tmp_path / "sim", cache_dir=cache,
                                     mode="fast")
    assert report.aborted is None, report.aborted
    (img,) = report.images
    assert img.error is None and not any(img.node_mismatches.values()), img.node_mismatches
    assert img.output_equal and img.monitor_bytes == net["bytes_total"] and report.passed


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


@pytest.mark.parametrize("flags, message", [
    (["--layers", "conv1"], "--chain runs the whole network from one start: --layers does not apply"),
    (["--waves", "w.fst"], "--waves does not apply"),
])
def test_chain_with_a_flag_that_does_not_apply_is_one_line_and_exit_2(tmp_path, capsys, flags, message):
    assert main(["simulate", str(tmp_path / "no-such-folder"), "--chain", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1

