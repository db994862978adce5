"""Synthesis, place-and-route and bitstream packing of a generated engine on an FPGA.

The engine goes behind the pin-light wrapper (`rtl_templates/hwgen_pinlight.v`: four pins, every
engine port registered and kept live), Yosys `synth_ecp5` / `synth_ice40` maps it, nextpnr places
and routes it with a fixed seed and writes its JSON report, from which `summarize` takes the Fmax
per clock, the utilization against the device and the critical paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

from .. import templates, tools
from ..errors import HwgenError
from ..gateware.synth import NO_REREAD, group_cells
from .targets import Target

WRAPPER_MODULE = "hwgen_pinlight"
NETLIST = "netlist.json"
# beside the netlist: its cell counts, the command that made it and the key of what it was made from
SYNTHESIS = "synthesis.json"
SYNTHESIS_FILES = (NETLIST, SYNTHESIS, "yosys.log", "stat.json", f"{WRAPPER_MODULE}.v")
SOURCES = ("sram", "engine", "top")  # the manifest's files the FPGA synthesis reads
# Engine ports through the wrapper (hwgen_top): desc_addr 32, start, req_ready, rd_valid, wr_ready, rd_data
# in; busy, done, req_valid, req_write, rd_ready, wr_valid, req_addr 32, req_len 16, mac_active, wr_data out.
IN_FIXED_BITS, OUT_FIXED_BITS = 36, 55


def wrapper_ff(bus_bits: int) -> int:
    """Flip-flops the wrapper adds: the reset register, the input shift chain, output and signature registers."""
    return 1 + (IN_FIXED_BITS + bus_bits) + 2 * (OUT_FIXED_BITS + bus_bits)


def wrapper_verilog(top_module: str, bus_bits: int) -> str:
    return templates.fill(
        f"{WRAPPER_MODULE}.v", WRAPPER=WRAPPER_MODULE, TOP=top_module, IN_BITS=IN_FIXED_BITS + bus_bits,
        OUT_BITS=OUT_FIXED_BITS + bus_bits, WRAPPER_FF=wrapper_ff(bus_bits))


def clock_name(net: str) -> str:
    """nextpnr's global clock net ('$glbnet$clk$TRELLIS_IO_IN') as the design's clock ('clk')."""
    m = re.match(r"^\$glbnet\$(.+?)(\$[A-Z0-9_]+)?$", net)
    return m.group(1) if m else net


def block(cell: str) -> str:
    """The hierarchy a nextpnr cell belongs to: the leading lower-case components of its dotted name.

    Amaranth names are lower case; Yosys and the techmappers append `$...`, `_TRELLIS_FF_Q`, `_LUT4_Z`
    and memory bit indices, which are cut off.
    """
    parts = []
    for part in cell.split("."):
        if not re.fullmatch(r"[a-z0-9_]+", part):
            break
        parts.append(part)
    while parts and parts[-1].isdigit():
        parts.pop()
    return ".".join(parts) or cell.split("$", 1)[0] or cell


def summarize_path(path: dict) -> dict:
    steps = path["path"]
    logic = [s for s in steps if s["type"] == "logic"]
    through: list[list] = []
    for s in steps:
        b = block(s["to"]["cell"])
        if through and through[-1][0] == b:
            through[-1][1] += s["delay"]
        else:
            through.append([b, s["delay"]])
    first, last = steps[0]["from"], steps[-1]["to"]
    return {
        "from_clock": clock_name(path["from"].split(" ", 1)[-1]) if path["from"] else "",
        "to_clock": clock_name(path["to"].split(" ", 1)[-1]) if path["to"] else "",
        "delay_ns": round(sum(s["delay"] for s in steps), 3),
        "logic_ns": round(sum(s["delay"] for s in logic), 3),
        "routing_ns": round(sum(s["delay"] for s in steps if s["type"] == "routing"), 3),
        "cells": len(logic),
        "start": f"{first['cell']}.{first['port']}",
        "end": f"{last['cell']}.{last['port']}",
        "through": [{"block": b, "delay_ns": round(d, 3)} for b, d in through],
    }


def signal(cell: str) -> str:
    """The signal a nextpnr cell was mapped from: the component after its block, without the techmap's
    suffix (`rounding_tie_to_even_TRELLIS_FF_Q_DI_LUT4_Z` -> `rounding_tie_to_even`); '' for Yosys's `$` names."""
    rest = cell[len(block(cell)):].lstrip(".")
    name = re.split(r"_(?:TRELLIS|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|DP16KD|SB_|ICESTORM)|\$", rest, maxsplit=1)[0]
    return name if re.fullmatch(r"[a-z0-9_]+", name) else ""


def arrival(endpoint: dict) -> float:
    """An endpoint's arrival time in nextpnr's report: the latest of its [min, max] pair (or one number)."""
    delay = endpoint["delay"]
    return max(delay) if isinstance(delay, list) else float(delay)


def endpoint_slack(report: dict, freq_mhz: float) -> dict:
    """Where the endpoints that miss the target are, from nextpnr's `--detailed-timing-report`.

    Every register-to-register timing endpoint (a flip-flop, DSP or block-RAM input) with its arrival
    time after the clock edge; its slack is the target period minus that arrival (nextpnr-ecp5's
    flip-flop setup time is 0, the DSP and block-RAM inputs' setup is left out). Grouped by the block
    and signal of the endpoint's cell, the groups with the most failing endpoints first. `tns_ns`, the
    total negative slack (the failing endpoints' slacks summed), shows how much is left to cut when a
    change moves the worst path without moving Fmax.
    """
    period = 1000.0 / freq_mhz
    groups: dict = {}
    total = 0
    tns = 0.0
    for net in report.get("detailed_net_timings", []):
        launch = net.get("event", "")
        for ep in net["endpoints"]:
            if not launch.startswith("posedge") or ep.get("event") != launch:
                continue  # the wrapper's pins (async) and any cross-clock pair
            total += 1
            slack = period - arrival(ep)
            if slack >= 0:
                continue
            tns += slack
            key = (block(ep["cell"]), signal(ep["cell"]))
            g = groups.setdefault(key, {"block": key[0], "signal": key[1], "failing": 0, "worst_slack_ns": 0.0,
                                        "worst": ""})
            g["failing"] += 1
            if slack < g["worst_slack_ns"]:
                g["worst_slack_ns"], g["worst"] = round(slack, 3), f"{ep['cell']}.{ep['port']}"
    ranked = sorted(groups.values(), key=lambda g: (-g["failing"], g["worst_slack_ns"], g["block"], g["signal"]))
    return {"period_ns": round(period, 3), "endpoints": total, "failing": sum(g["failing"] for g in ranked),
            "tns_ns": round(tns, 3), "groups": ranked}


def summarize(report: dict, target: Target, freq_mhz: float, yosys_cells: dict) -> dict:
    """The implement.json body for one nextpnr report: clocks, resources, critical paths."""
    clocks = []
    for net, f in sorted(report.get("fmax", {}).items()):
        achieved = round(float(f["achieved"]), 2)
        clocks.append({"clock": clock_name(net), "net": net, "fmax_mhz": achieved,
                       "target_mhz": float(f.get("constraint", freq_mhz)), "met": achieved >= freq_mhz})
    if not clocks:
        raise HwgenError("nextpnr reported no clock: the design has no clocked logic left")
    util = {bel: {"used": int(u["used"]), "available": int(u["available"])}
            for bel, u in sorted(report.get("utilization", {}).items()) if u["used"]}
    avail = {bel: int(u["available"]) for bel, u in report.get("utilization", {}).items()}
    groups = group_cells(yosys_cells)
    resources = {}
    for group, bel in target.family.resources.items():
        # dedicated bels are counted by nextpnr after packing; an iCE40 flip-flop shares its logic cell
        used = groups[group] if group == "FF" and bel == target.family.resources["LUT"] else util.get(bel, {}).get("used", 0)
        resources[group] = {"used": used, "available": avail.get(bel, 0), "bel": bel}
    paths = sorted((summarize_path(p) for p in report.get("critical_paths", []) if p.get("path")),
                   key=lambda p: -p["delay_ns"])
    return {
        "fmax_mhz": min(c["fmax_mhz"] for c in clocks),
        "met": all(c["met"] for c in clocks),
        "clocks": clocks,
        "resources": resources,
        "utilization": util,
        "critical_paths": paths,
        **({"endpoints": endpoint_slack(report, freq_mhz)} if "detailed_net_timings" in report else {}),
    }


def synthesize(src: Path, work: Path, manifest: dict, target: Target) -> tuple[dict, str]:
    """Yosys on the engine behind the wrapper, in `work`: writes netlist.json; returns the cell counts and
    the synthesis command that produced them."""
    fam = target.family
    yosys = tools.command("yosys", f"hwgen implement --target {target.name}")
    files = manifest["files"]
    sources = [files[key] for key in SOURCES]
    for name in sources:
        shutil.copy(src / name, work / name)
    (work / f"{WRAPPER_MODULE}.v").write_text(wrapper_verilog(manifest["modules"]["top"], manifest["params"]["bus_bits"]),
                                              encoding="utf-8")
    synth, fallback = (cmd.format(top=WRAPPER_MODULE, netlist=NETLIST) for cmd in (fam.synth, fam.fallback))
    for attempt in (synth, fallback):
        script = "; ".join(["read_verilog -sv " + " ".join(sources + [f"{WRAPPER_MODULE}.v"]), NO_REREAD, attempt,
                            "tee -q -o stat.json stat -json"])
        try:
            tools.yosys_run(yosys, ["-p", script], work)
            break
        except HwgenError as e:
            if "Assert" not in str(e) or attempt != synth or not fallback:
                raise
    stat = json.loads((work / "stat.json").read_text())
    design = stat.get("design") or next(iter(stat["modules"].values()))
    cells = {k: int(v) for k, v in sorted(design.get("num_cells_by_type", {}).items()) if not k.startswith("$scope")}
    return cells, attempt.replace(f" -json {NETLIST}", "")


def copy_present(names, src: Path, dst: Path) -> None:
    """Copy those of the files `names` that are in `src` into `dst`."""
    for name in names:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)


def synthesis_key(src: Path, manifest: dict, target: Target, yosys_version: str) -> str:
    """What a synthesis is made from: the Yosys build, the family's scripts, the wrapper and the engine's
    sources (not the device or the seed, which only place-and-route sees)."""
    fam = target.family
    h = hashlib.sha256()
    for part in (yosys_version, fam.synth, fam.fallback, NO_REREAD,
                 wrapper_verilog(manifest["modules"]["top"], manifest["params"]["bus_bits"])):
        h.update(part.encode() + b"\0")
    for key in SOURCES:
        h.update(manifest["files"][key].encode() + b"\0" + (src / manifest["files"][key]).read_bytes() + b"\0")
    return h.hexdigest()


def synthesis(src: Path, work: Path, manifest: dict, target: Target, yosys_version: str, cache: Path,
              progress) -> tuple[dict, str]:
    """`synthesize`, or the netlist a run before left in `cache` if it was made from the same sources,
    scripts and Yosys: synthesis is deterministic, so a sweep over seeds or devices of one family
    synthesizes once. Leaves the netlist and `SYNTHESIS_FILES` in `work`."""
    key = synthesis_key(src, manifest, target, yosys_version)
    try:
        known = json.loads((cache / SYNTHESIS).read_text(encoding="utf-8"))
        if known["key"] == key and (cache / NETLIST).is_file():
            copy_present(SYNTHESIS_FILES, cache, work)
            progress(f"reusing the synthesis in {cache} (same sources, scripts and Yosys)")
            return known["cells"], known["synthesis"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no synthesis before, or not one this run can use
    progress(f"synthesizing ({target.family.synth.split(' -')[0]})")
    cells, command = synthesize(src, work, manifest, target)
    (work / SYNTHESIS).write_text(json.dumps({"key": key, "cells": cells, "synthesis": command}, indent=1) + "\n",
                                  encoding="utf-8")
    return cells, command


def implement(src: Path, work: Path, manifest: dict, target: Target, *, freq_mhz: float, seed: int,
              bitstream: bool, cache: Path, progress) -> tuple[dict, dict]:
    """Run the flow in `work` (reusing a synthesis in `cache`); returns (deterministic result, wall
    seconds per step)."""
    fam = target.family
    purpose = f"hwgen implement --target {target.name}"
    yosys = tools.command("yosys", purpose)
    pnr = tools.command(fam.pnr, purpose, f"yowasp-{fam.pnr}")
    pack = tools.command(fam.pack, "--bitstream", f"yowasp-{fam.pnr}") if bitstream else None
    yosys_version = tools.version(yosys, "-V")
    wall = {}
    t0 = time.monotonic()
    cells, synth_cmd = synthesis(src, work, manifest, target, yosys_version, cache, progress)
    wall["synthesis"] = round(time.monotonic() - t0, 1)
    out = f"{WRAPPER_MODULE}.{'config' if fam.pack == 'ecppack' else 'asc'}"
    pnr_args = [*target.pnr_args, *fam.pnr_options, "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--timing-allow-fail"]
    if fam.pnr == "nextpnr-ice40":
        pnr_args.append("--pcf-allow-unconstrained")
    t0 = time.monotonic()
    progress(f"placing and routing ({fam.pnr} {' '.join(pnr_args)}), minutes")
    tools.run(pnr + ["--json", NETLIST, *[a.format(out=out) for a in fam.pnr_netlist],
                    "--report", "nextpnr-report.json", "--detailed-timing-report", *pnr_args], work, fam.pnr, "nextpnr.log")
    wall["place_and_route"] = round(time.monotonic() - t0, 1)
    report = json.loads((work / "nextpnr-report.json").read_text())
    result = {
        "flow": {
            "wrapper": WRAPPER_MODULE, "wrapper_ff": wrapper_ff(manifest["params"]["bus_bits"]),
            "synthesis": synth_cmd, "place_and_route": [fam.pnr, *pnr_args],
            "tools": {"yosys": yosys_version, fam.pnr: tools.version(pnr)},
        },
        **summarize(report, target, freq_mhz, cells),
        "cells": cells,
    }
    if bitstream:
        bit = f"{WRAPPER_MODULE}.{fam.bitstream_ext}"
        t0 = time.monotonic()
        progress(f"packing the bitstream ({fam.pack})")
        tools.run(pack + [a.format(out=out, bit=bit) for a in fam.pack_args], work, fam.pack, "pack.log")
        wall["pack"] = round(time.monotonic() - t0, 1)
        result["bitstream"] = bit
    return result, wall
