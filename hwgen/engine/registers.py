"""The AXI4-Lite register map of the AXI engine top (`hwgen generate --interface axi`), defined once.

The gateware (`hwgen.gateware.axi_top`) decodes these offsets and fields, `hwgen generate` emits
them as `registers.json`, `driver/hwgen_regs.h` and `driver/hwgen_regs.py`, and the Python driver
(`hwgen.driver`) reads and writes through them. Every register is 32 bits; offsets are bytes.

Access: `rw` read/write, `ro` read-only, `wo` write-only (reads 0), `w1c` read, write 1 to clear.
Counters count while the engine is busy and are cleared by a start; they wrap at 2**32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import HwgenError
from . import netop

DATA_BITS = 32  # AXI4-Lite data width
ADDR_BITS = 12  # AXI4-Lite address width: the map fits one 4 KiB page
IRQ_DONE, IRQ_ERROR = 0, 1  # bits of IRQ_ENABLE / IRQ_STATUS
ERROR_READ, ERROR_WRITE = 0, 1  # bits of ERROR_CAUSE: an RRESP / BRESP other than OKAY
ERROR_DESCRIPTOR = 2  # bit of ERROR_CAUSE: a descriptor of no known kind (its magic) ended the chain
ERROR_NETOP = 3  # bit of ERROR_CAUSE: a network op the network-op unit was built without ended the chain
MEM_BASE_ALIGN = 4096  # MEM_BASE's low 12 bits read as 0, so bursts still never cross 4 KiB


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str
    doc: str
    fields: dict = field(default_factory=dict)  # name -> (lsb, width); empty: the whole word


REGISTERS = (
    Register("CONTROL", 0x00, "wo", "write START = 1 to run the DESC_COUNT descriptors from DESC_ADDR "
             "(ignored while busy); clears DONE, ERROR, ERROR_CAUSE and the counters", {"START": (0, 1)}),
    Register("STATUS", 0x04, "ro", "BUSY from start until the last write response; DONE and ERROR stay set "
             "until the next start", {"BUSY": (0, 1), "DONE": (1, 1), "ERROR": (2, 1)}),
    Register("ERROR_CAUSE", 0x08, "ro", "why ERROR is set: a read or write response other than OKAY, a "
             "descriptor of no known kind, or a network op this build's unit lacks (NETOPS; the chain stops there)",
             {"READ_RESP": (ERROR_READ, 1), "WRITE_RESP": (ERROR_WRITE, 1), "DESCRIPTOR": (ERROR_DESCRIPTOR, 1),
              "NETOP": (ERROR_NETOP, 1)}),
    Register("DESC_ADDR", 0x0C, "rw", "engine address of the first descriptor the next start runs"),
    Register("MEM_BASE", 0x10, "rw", "added to every engine address on m_axi (where the DRAM image lies in "
             "the system's address map); 4 KiB aligned, the low 12 bits read 0"),
    Register("IRQ_ENABLE", 0x14, "rw", "irq is high while (IRQ_STATUS & IRQ_ENABLE) != 0",
             {"DONE": (IRQ_DONE, 1), "ERROR": (IRQ_ERROR, 1)}),
    Register("IRQ_STATUS", 0x18, "w1c", "DONE: a run finished; ERROR: a response error; write 1 to clear",
             {"DONE": (IRQ_DONE, 1), "ERROR": (IRQ_ERROR, 1)}),
    Register("BUILD_ID", 0x1C, "ro", "identifies the generated build (the manifest's build_id)"),
    Register("M_LANES", 0x20, "ro", "output channels computed in parallel"),
    Register("X_LANES", 0x24, "ro", "output pixels computed in parallel"),
    Register("BUS_BITS", 0x28, "ro", "m_axi data width"),
    Register("WEIGHT_BITS", 0x2C, "ro", "weight bits W"),
    Register("ACT_BITS", 0x30, "ro", "activation bits A"),
    Register("ACC_BITS", 0x34, "ro", "accumulator bits"),
    Register("DESC_COUNT", 0x38, "rw", "descriptors the next start runs, back to back (64 bytes apart) from "
             "DESC_ADDR; 0 runs one, as 1 does", {"COUNT": (0, 16)}),
    Register("NETOPS", 0x3C, "ro", "the network ops this build's network-op unit runs, bit = op code "
             "(0: no unit); a descriptor of another op stops the chain with ERROR_CAUSE.NETOP",
             {name.upper(): (code, 1) for name, code in netop.OPS.items()}),
    Register("BUSY_CYCLES", 0x40, "ro", "cycles with BUSY high"),
    Register("BYTES_READ", 0x44, "ro", "bytes read on m_axi (R beats x BUS_BITS/8)"),
    Register("BYTES_WRITTEN", 0x48, "ro", "bytes written on m_axi (W beats x BUS_BITS/8)"),
    Register("STALL_READ", 0x4C, "ro", "busy cycles the engine waits for read data: beats it requested are "
             "outstanding and RVALID is low"),
    Register("STALL_WRITE", 0x50, "ro", "busy cycles of write backpressure: a write beat or write address not "
             "accepted, or the engine finished and write responses are outstanding"),
    Register("MAC_ACTIVE", 0x54, "ro", "busy cycles in which the MAC array issues a tap step (every lane's "
             "weight times its M_LANES x X_LANES pixels; the schedule model's `mac_active`)"),
)
BY_NAME = {r.name: r for r in REGISTERS}
CONFIG = ("M_LANES", "X_LANES", "BUS_BITS", "WEIGHT_BITS", "ACT_BITS", "ACC_BITS")  # from the manifest's params
COUNTERS = ("BUSY_CYCLES", "BYTES_READ", "BYTES_WRITTEN", "STALL_READ", "STALL_WRITE", "MAC_ACTIVE")


def offset(name: str) -> int:
    return BY_NAME[name].offset


def bit(register: str, name: str) -> int:
    """The mask of a one-bit field."""
    lsb, width = BY_NAME[register].fields[name]
    return ((1 << width) - 1) << lsb


def config_values(params: dict, netops=()) -> dict[str, int]:
    """The configuration registers' values from the manifest's `params` (m_lanes, ... acc_bits) and
    `netops`, the ops of the network-op unit (`NetopUnit.ops`, the manifest's `interface.netops`)."""
    return {**{name: int(params[name.lower()]) for name in CONFIG}, "NETOPS": netop.ops_mask(netops)}


def check_axi(bus_bits: int, id_bits: int) -> None:
    """The AXI top's parameters; the engine's own are checked by EngineParams.validate."""
    if not isinstance(bus_bits, int) or bus_bits not in (32, 64, 128, 256, 512):
        raise HwgenError(f"--interface axi needs --bus-bits of 32, 64, 128, 256 or 512, got {bus_bits!r}")
    if not isinstance(id_bits, int) or not 1 <= id_bits <= 16:
        raise HwgenError(f"--axi-id-bits must be from 1 to 16, got {id_bits!r}")


def as_json(build_id: int, config: dict, layers: list[dict], network: dict | None = None) -> dict:
    """registers.json: the map, the build's ID and configuration, the memory layout per layer and
    the whole-network chain (the manifest's `network`)."""
    return {
        "data_bits": DATA_BITS, "addr_bits": ADDR_BITS, "build_id": build_id,
        "config": dict(config),
        "registers": [{"name": r.name, "offset": r.offset, "access": r.access, "doc": r.doc,
                       "fields": {k: {"lsb": v[0], "bits": v[1]} for k, v in r.fields.items()}} for r in REGISTERS],
        "layers": layers,
        "network": network,
    }


def _network_rows(network: dict | None) -> list[tuple[str, int]]:
    """(constant, value) of the whole-network chain: where it starts, its length, its input and output."""
    if not network or "error" in network:
        return []
    t_in, t_out = network["tensors"][network["input"]], network["tensors"][network["output"]]
    return [("DESC_ADDR", network["desc_addr"]), ("DESC_COUNT", network["count"]),
            ("IMAGE_BYTES", network["image_bytes"]), ("SIZE", network["size"]), ("IN_ADDR", t_in["addr"]),
            ("IN_BYTES", t_in["bytes"]), ("OUT_ADDR", t_out["addr"]), ("OUT_BYTES", t_out["bytes"])]


def _layout_rows(layers: list[dict]) -> list[tuple[str, str, int]]:
    """(layer, constant, value) of each layer's memory layout: descriptor, input and output regions."""
    rows = []
    for lay in layers:
        for key, value in (("DESC_ADDR", lay["descriptor_addr"]), ("IN_ADDR", lay["input"]["addr"]),
                           ("IN_BYTES", lay["input"]["bytes"]), ("OUT_ADDR", lay["output"]["addr"]),
                           ("OUT_BYTES", lay["output"]["bytes"])):
            rows.append((lay["name"], key, int(value)))
    return rows


RUN_LAYER_SCRIPT = '''"""Run one layer of this engine on the hardware: python run_layer.py --help (needs hwgen installed)."""
import sys
from pathlib import Path

from hwgen.driver import main

sys.exit(main(gen_dir=Path(__file__).resolve().parent.parent))
'''


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def c_header(build_id: int, config: dict, layers: list[dict], dram: dict, network: dict | None = None) -> str:
    lines = ["/* hwgen_regs.h: register map and memory layout of the generated engine (hwgen generate).",
             " * Registers are 32-bit, offsets in bytes from the AXI4-Lite base; see docs/engine.md. */",
             "#ifndef HWGEN_REGS_H", "#define HWGEN_REGS_H", "",
             f"#define HWGEN_BUILD_ID 0x{build_id:08X}u"]
    lines += [f"#define HWGEN_CFG_{k} {v}u" for k, v in config.items()]
    lines += [f"#define HWGEN_DRAM_SIZE {int(dram['size'])}u", f"#define HWGEN_DRAM_IMAGE_BYTES {int(dram['image_bytes'])}u", ""]
    for r in REGISTERS:
        lines.append(f"#define HWGEN_REG_{r.name} 0x{r.offset:03X}u /* {r.access}: {r.doc} */")
        for f, (lsb, width) in r.fields.items():
            lines.append(f"#define HWGEN_{r.name}_{f} (0x{(1 << width) - 1:X}u << {lsb})")
    lines.append("")
    lines += [f"#define HWGEN_LAYER_{_ident(lay)}_{key} 0x{value:08X}u" for lay, key, value in _layout_rows(layers)]
    rows = _network_rows(network)
    if rows:
        lines += ["", "/* the whole network from one start: network_image.bin at engine address 0 */"]
        lines += [f"#define HWGEN_NETWORK_{key} 0x{int(value):08X}u" for key, value in rows]
    lines += ["", "#endif /* HWGEN_REGS_H */", ""]
    return "\n".join(lines)


def python_module(build_id: int, config: dict, layers: list[dict], dram: dict, network: dict | None = None) -> str:
    lines = ['"""hwgen_regs: register map and memory layout of the generated engine (hwgen generate)."""', "",
             f"BUILD_ID = 0x{build_id:08X}",
             f"CONFIG = {json.dumps(config)}",
             f"DRAM_SIZE = {int(dram['size'])}", f"DRAM_IMAGE_BYTES = {int(dram['image_bytes'])}", ""]
    for r in REGISTERS:
        lines.append(f"REG_{r.name} = 0x{r.offset:03X}  # {r.access}: {r.doc}")
        for f, (lsb, width) in r.fields.items():
            lines.append(f"{r.name}_{f} = 0x{((1 << width) - 1) << lsb:X}")
    lines += ["", "LAYERS = {"]
    by_layer: dict = {}
    for lay, key, value in _layout_rows(layers):
        by_layer.setdefault(lay, {})[key.lower()] = value
    lines += [f"    {lay!r}: {json.dumps(v)}," for lay, v in by_layer.items()]
    rows = {k.lower(): int(v) for k, v in _network_rows(network)}
    lines += ["}", "", f"NETWORK = {json.dumps(rows) if rows else None}  # the whole network from one start", ""]
    return "\n".join(lines)
