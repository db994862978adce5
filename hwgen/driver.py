"""The Python driver of the AXI engine (`hwgen generate --interface axi`), over any register+memory backend.

`Driver.open(gen_dir, backend)` reads the folder's manifest.json and registers.json; then

    await drv.check()                     # BUILD_ID and configuration registers match the folder
    await drv.load_image()                # descriptors, weights, tables into memory
    y = await drv.run_layer("conv1", x)   # write the input, start, wait, read the output
    await drv.load_image(network=True)    # a folder with network_image.bin (manifest `network`):
    y = await drv.run_network(x)          # the whole network from one start (a descriptor chain)
    drv.counters                          # the performance counters of the last run

A backend moves 32-bit registers and memory bytes; the driver is `async` so that one code path
serves both backends:
- `CocotbBackend` (sim/axi_bench.py builds it): AXI4-Lite through cocotbext-axi's AxiLiteMaster,
  memory through the simulated DRAM, the `irq` pin;
- `MmapBackend`: Linux, the register page and the DRAM window mapped from UIO (`/dev/uioN`, map 0
  registers) or `/dev/mem` at physical addresses, polling STATUS (or blocking on the UIO
  interrupt). Run it with `asyncio.run(...)`.
Engine addresses are offsets into the DRAM window; the driver writes the window's bus address to
MEM_BASE so the engine's bursts land there.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np

from .engine import registers as regs
from .errors import HwgenError


class Backend:
    """Register and memory access. `wait_irq` returns False when it cannot wait (the driver polls)."""

    mem_base = 0  # bus address of engine address 0 (written to MEM_BASE)

    async def read_reg(self, offset: int) -> int:
        raise NotImplementedError

    async def write_reg(self, offset: int, value: int) -> None:
        raise NotImplementedError

    async def read_mem(self, addr: int, nbytes: int) -> bytes:
        raise NotImplementedError

    async def write_mem(self, addr: int, data: bytes) -> None:
        raise NotImplementedError

    async def wait_irq(self, timeout: float) -> bool:
        return False

    async def pause(self) -> None:
        """Between two polls of STATUS."""
        await asyncio.sleep(0)


class MmapBackend(Backend):
    """Registers and memory as two mappings (mmap objects, or any writable buffer of those sizes).

    Registers are accessed as aligned 32-bit words (a memoryview cast to 'I'), as AXI4-Lite needs.
    """

    def __init__(self, regs_map, mem_map, *, mem_base: int = 0, uio_fd: int | None = None, poll_s: float = 1e-4):
        self._regs = memoryview(regs_map).cast("B").cast("I")
        self._mem = memoryview(mem_map).cast("B")
        self.mem_base, self._uio_fd, self._poll_s = mem_base, uio_fd, poll_s

    @classmethod
    def dev_mem(cls, regs_addr: int, mem_addr: int, mem_size: int, path: str = "/dev/mem") -> "MmapBackend":
        """Physical addresses through /dev/mem (root): the register page and the DRAM window."""
        fd = os.open(path, os.O_RDWR | os.O_SYNC)
        regs_map = mmap.mmap(fd, 1 << regs.ADDR_BITS, offset=regs_addr)
        mem_map = mmap.mmap(fd, mem_size, offset=mem_addr)
        return cls(regs_map, mem_map, mem_base=mem_addr)

    @classmethod
    def uio(cls, device: str, mem_addr: int, mem_size: int, mem_path: str = "/dev/mem") -> "MmapBackend":
        """A UIO device (registers as its map 0, interrupts by read()) and the DRAM window from mem_path."""
        fd = os.open(device, os.O_RDWR | os.O_SYNC)
        regs_map = mmap.mmap(fd, 1 << regs.ADDR_BITS, offset=0)
        mfd = os.open(mem_path, os.O_RDWR | os.O_SYNC)
        return cls(regs_map, mmap.mmap(mfd, mem_size, offset=mem_addr), mem_base=mem_addr, uio_fd=fd)

    async def read_reg(self, offset):
        return int(self._regs[offset // 4])

    async def write_reg(self, offset, value):
        self._regs[offset // 4] = value & 0xFFFFFFFF

    async def read_mem(self, addr, nbytes):
        return bytes(self._mem[addr:addr + nbytes])

    async def write_mem(self, addr, data):
        self._mem[addr:addr + len(data)] = data

    async def wait_irq(self, timeout):
        if self._uio_fd is None:
            return False
        os.write(self._uio_fd, struct.pack("<I", 1))  # unmask
        os.read(self._uio_fd, 4)  # blocks until the interrupt
        return True

    async def pause(self):
        await asyncio.sleep(self._poll_s)


class Driver:
    """Runs layers of one generated engine (its manifest and register map) through `backend`."""

    def __init__(self, manifest: dict, regmap: dict, image: bytes, backend: Backend, network_image: bytes = b""):
        if manifest.get("interface", {}).get("kind") != "axi":
            raise HwgenError("this folder's engine has no AXI interface (generate it with --interface axi)")
        self.manifest, self.regmap, self.image, self.backend = manifest, regmap, image, backend
        self.network_image = network_image
        self.layers = {lay["name"]: lay for lay in manifest["layers"]}
        self.counters: dict[str, int] = {}

    @classmethod
    def open(cls, gen_dir, backend: Backend) -> "Driver":
        gen_dir = Path(gen_dir)
        try:
            manifest = json.loads((gen_dir / "manifest.json").read_text())
            regmap = json.loads((gen_dir / manifest["files"]["registers"]).read_text())
            image = (gen_dir / manifest["files"]["image"]).read_bytes()
            net = manifest["files"].get("network_image")
            network_image = (gen_dir / net).read_bytes() if net else b""
        except (OSError, ValueError, KeyError) as e:
            raise HwgenError(f"'{gen_dir}' is not a folder of `hwgen generate --interface axi` ({e})") from None
        return cls(manifest, regmap, image, backend, network_image)

    async def check(self) -> None:
        """The hardware is the build this folder describes: BUILD_ID and configuration registers."""
        got = await self.backend.read_reg(regs.offset("BUILD_ID"))
        if got != self.regmap["build_id"]:
            raise HwgenError(f"BUILD_ID is {got:#010x}, this folder's build is {self.regmap['build_id']:#010x}")
        for name, want in self.regmap["config"].items():
            got = await self.backend.read_reg(regs.offset(name))
            if got != want:
                raise HwgenError(f"configuration register {name} reads {got}, this folder's build has {want}")

    async def load_image(self, network: bool = False) -> None:
        """The per-layer DRAM image, or (`network`) the whole network's chain image."""
        if network:
            self._network()
            if not self.network_image:
                raise HwgenError("this engine cannot run the whole network from one start: no network image was read")
        await self.backend.write_mem(0, self.network_image if network else self.image)

    def _network(self) -> dict:
        net = self.manifest.get("network")
        if not net or "error" in net:
            why = net["error"] if net and "error" in net else "it was generated without a network image"
            raise HwgenError(f"this engine cannot run the whole network from one start: {why}")
        return net

    async def run(self, desc_addr: int, *, count: int = 1, timeout: float = 10.0, use_irq: bool = True) -> dict:
        """Start the `count` descriptors from `desc_addr` (a chain), wait for DONE; returns the counters."""
        b = self.backend
        await b.write_reg(regs.offset("MEM_BASE"), b.mem_base)
        await b.write_reg(regs.offset("DESC_ADDR"), desc_addr)
        await b.write_reg(regs.offset("DESC_COUNT"), count)
        await b.write_reg(regs.offset("IRQ_STATUS"), 0xFFFFFFFF)
        await b.write_reg(regs.offset("IRQ_ENABLE"), (1 << regs.IRQ_DONE) if use_irq else 0)
        await b.write_reg(regs.offset("CONTROL"), regs.bit("CONTROL", "START"))
        waited = use_irq and await b.wait_irq(timeout)
        while True:
            status = await b.read_reg(regs.offset("STATUS"))
            if status & regs.bit("STATUS", "DONE"):
                break
            if waited:
                raise HwgenError(f"irq without DONE (STATUS {status:#x})")
            await b.pause()
        await b.write_reg(regs.offset("IRQ_STATUS"), 0xFFFFFFFF)
        self.counters = {name: await b.read_reg(regs.offset(name)) for name in regs.COUNTERS}
        if status & regs.bit("STATUS", "ERROR"):
            cause = await b.read_reg(regs.offset("ERROR_CAUSE"))
            what = [f for f in regs.BY_NAME["ERROR_CAUSE"].fields if cause & regs.bit("ERROR_CAUSE", f)]
            raise HwgenError(f"the engine reported an error: {', '.join(what) or hex(cause)}")
        return self.counters

    async def run_layer(self, name: str, x: np.ndarray, **kw) -> np.ndarray:
        """One layer on an integer input `x` (C, H, W): write it, run, read the output back."""
        from .engine import activation_bytes, pack_activations, unpack_activations

        if name not in self.layers:
            raise HwgenError(f"no engine layer named '{name}' (layers: {', '.join(self.layers)})")
        lay = self.layers[name]
        x = np.asarray(x)
        if list(x.shape) != lay["input"]["shape"]:
            raise HwgenError(f"layer '{name}' takes an input of shape {lay['input']['shape']}, got {list(x.shape)}")
        layout = self._layout()
        await self.backend.write_mem(int(lay["input"]["addr"]), pack_activations(x, layout))
        await self.run(int(lay["descriptor_addr"]), **kw)
        shape = tuple(lay["output"]["shape"])
        raw = await self.backend.read_mem(int(lay["output"]["addr"]), activation_bytes(shape, layout))
        return unpack_activations(raw, shape, bool(lay["output"]["signed"]), layout)


    async def run_network(self, x: np.ndarray, **kw) -> np.ndarray:
        """The whole network on an integer input `x` (C, H, W) from one start (after
        `load_image(network=True)`): write it, run the chain, read the network's output (its
        logits when the classifier runs in hardware)."""
        net = await self.write_input(x)
        await self.run(int(net["desc_addr"]), count=int(net["count"]), **kw)
        return await self.read_tensor(net["output"])

    async def write_input(self, x: np.ndarray) -> dict:
        """Write the network's integer input `x` (C, H, W) to its tensor, after checking its shape and
        range (one line otherwise); returns the manifest's `network`."""
        from .engine import pack_activations
        from .intmath import qrange

        net = self._network()
        tin = net["tensors"][net["input"]]
        x = np.asarray(x)
        if list(x.shape) != tin["shape"]:
            raise HwgenError(f"the network takes an input of shape {tin['shape']}, got {list(x.shape)}")
        lo, hi = qrange(int(self.manifest["params"]["act_bits"]), bool(tin["signed"]))
        if x.dtype.kind not in "iu" or x.size and (int(x.min()) < lo or int(x.max()) > hi):
            raise HwgenError(f"the network's input must be integers in [{lo}, {hi}], got {x.dtype} values"
                             + (f" in [{x.min()}, {x.max()}]" if x.size else ""))
        await self.backend.write_mem(int(tin["addr"]), pack_activations(x, self._layout()))
        return net

    async def read_tensor(self, name: str) -> np.ndarray:
        """A tensor of the network image (any node's output) as it is in memory: an activation map,
        or the classifier's logits (int64, from their 32-bit fields)."""
        from .engine.network import unpack_tensor

        t = self._network()["tensors"][name]
        raw = await self.backend.read_mem(int(t["addr"]), int(t["bytes"]))
        return unpack_tensor(t, raw, self._layout())

    def _layout(self):
        from .engine import EngineParams

        params = self.manifest["params"]
        # the layout functions read the beat size and the activation width (fields per byte) only
        return EngineParams(bus_bits=int(params["bus_bits"]), act_bits=int(params["act_bits"]))


def main(argv: list[str] | None = None, gen_dir=None) -> int:
    """`python DIR/driver/run_layer.py`: one layer, or the whole network from one start, on the
    hardware through /dev/mem or UIO."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Run one layer of this hwgen engine, or the whole network from one "
                                             "start, on the hardware (mmap backend).")
    ap.add_argument("--dir", default=gen_dir, required=gen_dir is None, help="the `hwgen generate --interface axi` folder")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--layer", help="engine layer name (see registers.json)")
    what.add_argument("--network", action="store_true",
                      help="the whole network from one start (network_image.bin, manifest 'network')")
    ap.add_argument("--input", required=True, help="integer input (C, H, W) as .npy")
    ap.add_argument("--out", required=True, help="where to write the output .npy")
    ap.add_argument("--mem-addr", type=lambda v: int(v, 0), required=True, help="physical address of the DRAM window")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--uio", metavar="DEV", help="UIO device whose map 0 is the register page (interrupt-driven)")
    where.add_argument("--regs-addr", type=lambda v: int(v, 0), help="physical address of the registers (/dev/mem)")
    ap.add_argument("--mem-device", default="/dev/mem", help="the file the physical addresses are mapped from")
    ap.add_argument("--no-load", action="store_true", help="the DRAM image is already in place")
    args = ap.parse_args(argv)
    try:
        manifest = json.loads((Path(args.dir) / "manifest.json").read_text())
        net = manifest.get("network") or {"error": "no network image"}
        if args.network and "error" in net:
            raise HwgenError(f"this engine cannot run the whole network from one start: {net['error']}")
        size = int(net["size"] if args.network else manifest["dram"]["size"])
        if args.uio:
            backend = MmapBackend.uio(args.uio, args.mem_addr, size, args.mem_device)
        else:
            backend = MmapBackend.dev_mem(args.regs_addr, args.mem_addr, size, args.mem_device)
        drv = Driver.open(args.dir, backend)
        x = np.load(args.input, allow_pickle=False)

        async def session():
            await drv.check()
            if not args.no_load:
                await drv.load_image(network=args.network)
            if args.network:
                return await drv.run_network(x, use_irq=bool(args.uio))
            return await drv.run_layer(args.layer, x, use_irq=bool(args.uio))

        np.save(args.out, asyncio.run(session()), allow_pickle=False)
    except (HwgenError, OSError, ValueError, KeyError) as e:
        print(f"run_layer: error: {e}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in drv.counters.items()))
    return 0
