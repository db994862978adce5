"""The Python driver (hwgen.driver) over the Linux mmap backend, on a fake mmap.

The "device" is two temp files mapped with mmap: the register page and the DRAM window. A real
engine is not there, so the test plays it: STATUS already reads DONE, the counters hold known
values, and the output region holds a known tensor. The driver must write the registers at the
map's offsets (DESC_ADDR, MEM_BASE, IRQ_ENABLE, CONTROL.START), the input packed at the layer's
input address, and read back and unpack the output; a wrong BUILD_ID or an error is refused.
(The same driver runs the real engine in cocotb: tests/test_sim_axi.py.)
"""

from __future__ import annotations

import asyncio
import json
import mmap

import numpy as np
import pytest

from hwgen import checkpoint
from hwgen.driver import Driver, MmapBackend
from hwgen.engine import EngineParams, pack_activations, registers as regs
from hwgen.errors import HwgenError
from hwgen.generate import generate
from hwgen.intmath import qrange

from test_sim_axi import CKPT


@pytest.fixture(scope="module")
def axi_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits-axi-files")
    generate(checkpoint.load(CKPT), out, interface="axi")
    return out


def fake_device(tmp_path, mem_size):
    maps = []
    for name, size in (("regs", 1 << regs.ADDR_BITS), ("mem", mem_size)):
        path = tmp_path / name
        path.write_bytes(bytes(size))
        f = open(path, "r+b")
        maps.append(mmap.mmap(f.fileno(), size))
        f.close()
    return maps


def poke(m, name, value):
    m[regs.offset(name):regs.offset(name) + 4] = value.to_bytes(4, "little")


def peek(m, name):
    return int.from_bytes(m[regs.offset(name):regs.offset(name) + 4], "little")


def test_driver_runs_a_layer_over_mmap(axi_dir, tmp_path):
    manifest = json.loads((axi_dir / "manifest.json").read_text())
    regmap = json.loads((axi_dir / "registers.json").read_text())
    reg_map, mem_map = fake_device(tmp_path, manifest["dram"]["size"])
    poke(reg_map, "BUILD_ID", regmap["build_id"])
    for name, value in regmap["config"].items():
        poke(reg_map, name, value)
    poke(reg_map, "STATUS", regs.bit("STATUS", "DONE"))
    for i, name in enumerate(regs.COUNTERS):
        poke(reg_map, name, 1000 + i)
    lay = manifest["layers"][1]
    layout = EngineParams(bus_bits=manifest["params"]["bus_bits"], act_bits=manifest["params"]["act_bits"])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, size=lay["output"]["shape"])
    packed_y = pack_activations(y, layout)
    mem_map[lay["output"]["addr"]:lay["output"]["addr"] + len(packed_y)] = packed_y
    x = rng.integers(0, 256, size=lay["input"]["shape"])

    drv = Driver.open(axi_dir, MmapBackend(reg_map, mem_map, mem_base=0x8000_0000))

    async def session():
        await drv.check()
        await drv.load_image()
        return await drv.run_layer(lay["name"], x)

    got = asyncio.run(session())
    np.testing.assert_array_equal(got, y)
    image = (axi_dir / "dram_image.bin").read_bytes()
    assert mem_map[:len(image)] == image
    packed_x = pack_activations(x, layout)
    assert mem_map[lay["input"]["addr"]:lay["input"]["addr"] + len(packed_x)] == packed_x
    assert peek(reg_map, "DESC_ADDR") == lay["descriptor_addr"]
    assert peek(reg_map, "MEM_BASE") == 0x8000_0000
    assert peek(reg_map, "CONTROL") == regs.bit("CONTROL", "START")
    assert drv.counters == {name: 1000 + i for i, name in enumerate(regs.COUNTERS)}


def test_driver_refuses_another_build_and_reports_errors(axi_dir, tmp_path):
    manifest = json.loads((axi_dir / "manifest.json").read_text())
    reg_map, mem_map = fake_device(tmp_path, manifest["dram"]["size"])
    drv = Driver.open(axi_dir, MmapBackend(reg_map, mem_map))
    poke(reg_map, "BUILD_ID", 0xDEADBEEF)
    with pytest.raises(HwgenError, match="BUILD_ID"):
        asyncio.run(drv.check())
    poke(reg_map, "STATUS", regs.bit("STATUS", "DONE") | regs.bit("STATUS", "ERROR"))
    poke(reg_map, "ERROR_CAUSE", regs.bit("ERROR_CAUSE", "WRITE_RESP"))
    with pytest.raises(HwgenError, match="WRITE_RESP"):
        asyncio.run(drv.run(0, use_irq=False))
    with pytest.raises(HwgenError, match="shape"):
        asyncio.run(drv.run_layer("conv1", np.zeros((2, 2, 2), dtype=np.int64)))


def test_driver_needs_an_axi_folder(tmp_path):
    generate(checkpoint.load(CKPT), tmp_path / "stream")
    with pytest.raises(HwgenError, match="--interface axi"):
        Driver.open(tmp_path / "stream", MmapBackend(bytearray(4096), bytearray(64)))


def test_generated_run_layer_script_over_a_memory_file(axi_dir, tmp_path):
    """DIR/driver/run_layer.py with --regs-addr/--mem-addr mapped from a plain file instead of /dev/mem."""
    import subprocess
    import sys

    manifest = json.loads((axi_dir / "manifest.json").read_text())
    regmap = json.loads((axi_dir / "registers.json").read_text())
    page = mmap.ALLOCATIONGRANULARITY
    mem_addr = page
    phys = bytearray(mem_addr + -(-manifest["dram"]["size"] // page) * page)
    reg_view = memoryview(phys)[:1 << regs.ADDR_BITS]
    poke(reg_view, "BUILD_ID", regmap["build_id"])
    for name, value in regmap["config"].items():
        poke(reg_view, name, value)
    poke(reg_view, "STATUS", regs.bit("STATUS", "DONE"))
    poke(reg_view, "BYTES_READ", 416)
    lay = manifest["layers"][0]
    layout = EngineParams(bus_bits=manifest["params"]["bus_bits"], act_bits=manifest["params"]["act_bits"])
    y = np.random.default_rng(1).integers(0, 256, size=lay["output"]["shape"])
    packed = pack_activations(y, layout)
    start = mem_addr + lay["output"]["addr"]
    phys[start:start + len(packed)] = packed
    del reg_view
    (tmp_path / "phys").write_bytes(bytes(phys))
    np.save(tmp_path / "x.npy", np.zeros(lay["input"]["shape"], dtype=np.int64))
    proc = subprocess.run([sys.executable, str(axi_dir / "driver" / "run_layer.py"), "--layer", lay["name"],
                           "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"),
                           "--regs-addr", "0", "--mem-addr", hex(mem_addr), "--mem-device", str(tmp_path / "phys")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "BYTES_READ=416" in proc.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y)
    image = (axi_dir / "dram_image.bin").read_bytes()
    assert (tmp_path / "phys").read_bytes()[mem_addr:mem_addr + len(image)] == image
    bad = subprocess.run([sys.executable, str(axi_dir / "driver" / "run_layer.py"), "--layer", "nope",
                          "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "z.npy"), "--regs-addr", "0",
                          "--mem-addr", hex(mem_addr), "--mem-device", str(tmp_path / "phys")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "nope" in bad.stderr


def test_driver_runs_a_whole_network_from_one_start_over_mmap(axi_dir, tmp_path):
    """A residual network's folder: the network image, the input at its tensor, DESC_ADDR 0 and
    DESC_COUNT = the chain's length in one start, the output read from the graph output's tensor.
    The digits folder runs its classifier in hardware too: the driver returns the logits from
    their 32-bit fields, and refuses an image of the wrong shape or range in one line."""
    from hwgen.layercases import residual_graph

    out = tmp_path / "res"
    generate(residual_graph(1, 3, 8, 8, 8), out, interface="axi")
    manifest = json.loads((out / "manifest.json").read_text())
    regmap = json.loads((out / "registers.json").read_text())
    net = manifest["network"]
    reg_map, mem_map = fake_device(tmp_path, net["size"])
    poke(reg_map, "BUILD_ID", regmap["build_id"])
    poke(reg_map, "STATUS", regs.bit("STATUS", "DONE"))
    layout = EngineParams(bus_bits=manifest["params"]["bus_bits"], act_bits=manifest["params"]["act_bits"])
    rng = np.random.default_rng(2)
    t_out, t_in = net["tensors"][net["output"]], net["tensors"][net["input"]]
    y = rng.integers(0, 256, size=t_out["shape"])
    x = rng.integers(*qrange(8, t_in["signed"]), size=t_in["shape"])
    drv = Driver.open(out, MmapBackend(reg_map, mem_map))

    async def session():
        await drv.load_image(network=True)
        packed_y = pack_activations(y, layout)
        mem_map[t_out["addr"]:t_out["addr"] + len(packed_y)] = packed_y  # the "engine" wrote it
        return await drv.run_network(x, use_irq=False)

    np.testing.assert_array_equal(asyncio.run(session()), y)
    image = (out / "network_image.bin").read_bytes()
    assert mem_map[:len(image)] == image
    packed_x = pack_activations(x, layout)
    assert mem_map[t_in["addr"]:t_in["addr"] + len(packed_x)] == packed_x
    assert (peek(reg_map, "DESC_ADDR"), peek(reg_map, "DESC_COUNT")) == (0, net["count"]) and net["count"] == 6
    net = json.loads((axi_dir / "manifest.json").read_text())["network"]
    assert net["chain"][-1] == "classifier" and net["host_layers"] == []
    (tmp_path / "digits").mkdir()
    reg_map, mem_map = fake_device(tmp_path / "digits", net["size"])
    poke(reg_map, "STATUS", regs.bit("STATUS", "DONE"))
    digits = Driver.open(axi_dir, MmapBackend(reg_map, mem_map))
    logits = rng.integers(-(1 << 31), 1 << 31, size=10)
    t_out = net["tensors"]["classifier"]
    beats = b"".join(int(v).to_bytes(4, "little", signed=True) + bytes(4) for v in logits)  # 64-bit beats

    async def digits_session(image):
        await digits.load_image(network=True)
        mem_map[t_out["addr"]:t_out["addr"] + len(beats)] = beats
        return await digits.run_network(image, use_irq=False)

    np.testing.assert_array_equal(asyncio.run(digits_session(np.zeros((1, 8, 8), np.int64))), logits)
    for bad, message in ((np.zeros((8, 8), np.int64), r"input of shape \[1, 8, 8\], got \[8, 8\]"),
                         (np.full((1, 8, 8), 200), r"integers in \[-128, 127\], got int64 values in \[200, 200\]"),
                         (np.zeros((1, 8, 8)), r"integers in \[-128, 127\], got float64")):
        with pytest.raises(HwgenError, match=message):
            asyncio.run(digits_session(bad))
