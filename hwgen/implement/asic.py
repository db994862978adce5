"""An ASIC-side estimate of a generated engine without a PDK: generic Yosys synthesis.

The engine (module hwgen_engine) is flattened and synthesized with its SRAM instances kept as
black boxes (they become memory macros on a chip; their bits are counted from the manifest), its
logic mapped by ABC to Yosys's internal gates (AND, NAND, OR, NOR, XOR, XNOR, ANDNOT, ORNOT,
MUX, NOT), its flip-flops legalized to plain D flip-flops (enables and synchronous resets become
gates). From that netlist:
  - transistors: Yosys `stat -tech cmos`, the static CMOS transistor count of each gate;
  - NAND2 equivalents (GE): transistors / 4, a NAND2 being four transistors, so GE counts the
    flip-flops and complex gates by their transistor cost too;
  - logic levels: Yosys `ltp -noff`, the longest chain of gates between flip-flops or ports.
With a Liberty file the same netlist is mapped to that library (`dfflibmap`, `abc -liberty`) and
`stat -liberty` gives its cell area in the library's units.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from .. import tools
from ..errors import HwgenError

TRANSISTORS_PER_GE = 4  # a static CMOS NAND2


def script(engine_file: str, sram_file: str, top: str, liberty: str | None) -> str:
    gates = "t:$_*"  # the mapped gates and flip-flops, not the SRAM black boxes
    lines = [
        f"read_verilog -sv -lib {sram_file}",
        f"read_verilog -sv {engine_file}",
        f"hierarchy -top {top}",
        f"synth -flatten -top {top}",
        "dfflegalize -cell $_DFF_P_ 01",
        "opt_clean",
        f"tee -q -o cmos.json stat -json -tech cmos {gates}",
        # the SRAM macros go: their pins become the ends of paths (ltp ignores a cell selection)
        f"delete c:* {gates} %d",
        "tee -q -o ltp.txt ltp -noff",
    ]
    if liberty:
        lines += [
            f"dfflibmap -liberty {liberty}",
            f"abc -liberty {liberty}",
            "opt_clean",
            f"tee -q -o liberty.json stat -json -liberty {liberty}",
        ]
    return "\n".join(lines) + "\n"


def _design(stat_file: Path) -> dict:
    stat = json.loads(stat_file.read_text())
    return stat.get("design") or next(iter(stat["modules"].values()))


def parse_ltp(text: str) -> int:
    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if not m:
        raise HwgenError("Yosys ltp printed no longest path")
    return int(m.group(1))


def parse_transistors(design: dict) -> int:
    value = design.get("estimated_num_transistors")
    if value is None or not str(value).isdigit():
        raise HwgenError(f"Yosys could not count transistors (got {value!r}): a gate outside the CMOS set")
    return int(value)


def implement(src: Path, work: Path, manifest: dict, *, liberty: Path | None, progress) -> tuple[dict, dict]:
    """Run the estimate in `work`; returns (deterministic result, wall seconds)."""
    yosys = tools.command("yosys", "hwgen implement --target asic")
    files = manifest["files"]
    for name in (files["sram"], files["engine"]):
        shutil.copy(src / name, work / name)
    lib_name = None
    if liberty is not None:
        if not liberty.is_file():
            raise HwgenError(f"--liberty {liberty}: no such file")
        lib_name = "user.lib"
        shutil.copy(liberty, work / lib_name)
    (work / "asic.ys").write_text(script(files["engine"], files["sram"], manifest["modules"]["engine"], lib_name),
                                  encoding="utf-8")
    t0 = time.monotonic()
    progress("synthesizing to generic gates (Yosys synth -flatten)"
             + (" and to the Liberty cells" if liberty else ""))
    tools.yosys_run(yosys, ["-s", "asic.ys"], work)
    wall = {"synthesis": round(time.monotonic() - t0, 1)}
    cmos = _design(work / "cmos.json")
    gates = {k.strip("$"): int(v) for k, v in sorted(cmos.get("num_cells_by_type", {}).items())}
    transistors = parse_transistors(cmos)
    srams = manifest["srams"]
    result = {
        "flow": {"synthesis": "synth -flatten; dfflegalize -cell $_DFF_P_ 01",
                 "tools": {"yosys": tools.version(yosys, "-V")}},
        "kge": round(transistors / TRANSISTORS_PER_GE / 1000, 2),
        "transistors": transistors,
        "flip_flops": sum(v for k, v in gates.items() if k.startswith("_DFF")),
        "gates": gates,
        "logic_levels": parse_ltp((work / "ltp.txt").read_text()),
        "memory_bits": sum(s["width"] * s["depth"] for s in srams.values()),
        "srams": srams,
    }
    if liberty is not None:
        lib = _design(work / "liberty.json")
        result["liberty"] = {
            "file": str(liberty),
            "area": round(float(lib.get("area", 0.0)), 3),
            "cells": {k: int(v) for k, v in sorted(lib.get("num_cells_by_type", {}).items())
                      if not k.startswith("$scope")},
        }
    return result, wall
