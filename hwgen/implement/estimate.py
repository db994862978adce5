"""A timing estimate before placement: the arrival time at every register input of a Yosys ECP5
netlist (`synth_ecp5`'s JSON, `DIR/implement/netlist.json`), from cell delays and a routing delay per
net that grows with its fan-out.

Why: one nextpnr run of the digits engine takes 5-20 minutes, and one seed's Fmax moves by 6-24 MHz
with placement, more than most single register cuts gain; a cut that shortens many paths can lose to
the seed noise while the worst path moves elsewhere. This estimate takes seconds after synthesis, is
deterministic, and on the 4x4 digits engine correlates r = 0.915 with nextpnr's routed arrival times at
its ~20,000 endpoints (two placement seeds of one netlist: r = 0.949), so it ranks where paths are long
and which registers they start from. It is not an Fmax, and it does not rank two builds (placement
moves more between netlists than the logic does: docs/implement.md): the delays are magnitudes for an
ECP5 speed 6, fitted to that one engine's routed report (`compare` gives r for any netlist and its report).

Timing graph: flip-flop Q, block-RAM DO (unregistered output mode) and undriven bits start paths;
LUT4, PFUMX, L6MUX21, CCU2C, MULT18X18D (without registers) and the distributed RAM's read port pass
them on; flip-flop DI / CE / LSR, block-RAM inputs and the distributed RAM's write inputs end them.
A carry chain's COUT -> CIN net is dedicated routing (no routing delay).
"""

from __future__ import annotations

import collections
import math

from . import fpga

# delays in ns (ECP5 speed 6 magnitudes; the routing pair fitted to nextpnr's report of the digits engine)
FF_CLK_TO_Q = 0.55
BRAM_CLK_TO_DO = 4.0  # DP16KD without its output register
LUT = 0.40
WIDE_MUX = 0.25  # PFUMX / L6MUX21: a LUT5 / LUT6 inside the slice
CARRY_ENTRY = 0.45  # CCU2C A..D -> COUT
CARRY_THROUGH = 0.06  # CIN -> COUT
CARRY_SUM = 0.25  # CIN -> S
MULTIPLY = 4.0  # MULT18X18D without its registers
LUTRAM_READ = 0.6  # TRELLIS_DPR16X4 RAD -> DO
ROUTE_BASE = 0.70
ROUTE_PER_FANOUT_DOUBLING = 0.05

ENDS = {"TRELLIS_FF": ("DI", "CE", "LSR"), "TRELLIS_DPR16X4": ("DI", "WAD", "WRE")}
STARTS = {"TRELLIS_FF": FF_CLK_TO_Q, "DP16KD": BRAM_CLK_TO_DO}


def _arcs(cell: dict) -> list[tuple[str, str, float]]:
    """(input port, output port, delay) of a combinational cell."""
    kind, ports = cell["type"], cell["port_directions"]
    if kind == "LUT4":
        return [(i, "Z", LUT) for i in "ABCD"]
    if kind == "PFUMX":
        return [(i, "Z", WIDE_MUX) for i in ("ALUT", "BLUT", "C0")]
    if kind == "L6MUX21":
        return [(i, "Z", WIDE_MUX) for i in ("D0", "D1", "SD")]
    if kind == "CCU2C":
        return ([(i + k, "COUT", CARRY_ENTRY) for k in "01" for i in "ABCD"]
                + [(i + k, "S" + k, LUT) for k in "01" for i in "ABCD"]
                + [("CIN", "COUT", CARRY_THROUGH), ("CIN", "S0", CARRY_SUM), ("CIN", "S1", CARRY_SUM)])
    if kind == "MULT18X18D":
        ins = [p for p, d in ports.items() if d == "input" and p[0] in "AB" and p[1:].isdigit()]
        return [(i, o, MULTIPLY) for i in ins for o, d in ports.items() if d == "output"]
    if kind == "TRELLIS_DPR16X4":
        return [("RAD", "DO", LUTRAM_READ)]
    return []


def arrivals(module: dict, *, paths: bool = False) -> list[tuple]:
    """(cell, port, arrival ns, source cell) of every path end in a flattened netlist module: the latest
    arrival at the port and the register (or block RAM) its latest path starts from (None: a constant or
    a top-level input). With `paths`, a fifth item: the latest path's cells from its source on, each with
    the arrival at its output."""
    cells = module["cells"]
    driver, fanout = {}, collections.Counter()
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            out = cell["port_directions"].get(port) == "output"
            for bit in bits:
                if isinstance(bit, int):  # strings are constants
                    if out:
                        driver[bit] = (name, port)
                    else:
                        fanout[bit] += 1
    carry = {bit for bit, (_, port) in driver.items() if port == "COUT"}

    def route(bit: int) -> float:
        if bit in carry:
            return 0.0
        return ROUTE_BASE + ROUTE_PER_FANOUT_DOUBLING * math.log2(max(1, fanout[bit]))

    arcs_by_output: dict = {}
    known: dict = {}  # bit -> (arrival at the driver's output, source, the input bit it came through)

    def at(bit: int) -> tuple[float, str | None, int | None]:
        # iterative depth-first walk: the engine's cones are thousands of cells deep in total; a
        # combinational loop (`visiting`) is cut where the walk meets it again
        stack = [bit]
        visiting = set()
        while stack:
            b = stack[-1]
            if b in known:
                stack.pop()
                continue
            if b not in driver:
                known[b] = (0.0, None, None)
                stack.pop()
                continue
            name, port = driver[b]
            cell = cells[name]
            if cell["type"] in STARTS:
                known[b] = (STARTS[cell["type"]], name, None)
                stack.pop()
                continue
            key = (name, port)
            if key not in arcs_by_output:
                arcs_by_output[key] = [(ib, delay) for ip, op, delay in _arcs(cell) if op == port
                                       for ib in cell["connections"].get(ip, ()) if isinstance(ib, int)]
            pending = [ib for ib, _ in arcs_by_output[key] if ib not in known and ib not in visiting]
            if pending and b not in visiting:
                visiting.add(b)
                stack.extend(pending)
                continue
            best = (0.0, None, None)
            for ib, delay in arcs_by_output[key]:
                arrived, source, _ = known.get(ib, (0.0, None, None))  # not known: the loop's cut
                t = arrived + route(ib) + delay
                if t > best[0]:
                    best = (t, source, ib)
            known[b] = best
            stack.pop()
        return known[bit]

    def path(bit: int) -> list[tuple[str, float]]:
        cells_on = []
        while bit is not None and bit in driver and bit in known and len(cells_on) <= len(known):
            cells_on.append((driver[bit][0], round(known[bit][0], 3)))
            bit = known[bit][2]
        return cells_on[::-1]

    ends = []
    for name, cell in cells.items():
        kind = cell["type"]
        if kind == "DP16KD":
            ports = [p for p, d in cell["port_directions"].items() if d == "input" and not p.startswith("CLK")]
        else:
            ports = ENDS.get(kind, ())
        for port in ports:
            for bit in cell["connections"].get(port, ()):
                if isinstance(bit, int):
                    t, source, _ = at(bit)
                    end = (name, port, t + route(bit), source)
                    ends.append(end + (path(bit),) if paths else end)
    return ends


def estimate(module: dict, freq_mhz: float, *, block, signal, top: int = 20) -> dict:
    """The estimate's summary at `freq_mhz`: endpoints, how many miss the period, their total negative
    slack, the worst arrival and its path (the cells from its source register on, with the arrival at
    each output), and the `top` registers the most missing paths start from (named by `block` and
    `signal`, hwgen.implement.fpga's, as the nextpnr endpoint groups are)."""
    period = 1000.0 / freq_mhz
    ends = arrivals(module, paths=True)
    sources: dict = {}
    tns = 0.0
    failing = 0
    for _, _, t, source, _ in ends:
        if t <= period:
            continue
        failing += 1
        tns += period - t
        key = (block(source), signal(source)) if source else ("", "")
        s = sources.setdefault(key, {"block": key[0], "signal": key[1], "failing": 0, "worst_ns": 0.0})
        s["failing"] += 1
        s["worst_ns"] = max(s["worst_ns"], round(t, 3))
    ranked = sorted(sources.values(), key=lambda s: (-s["failing"], -s["worst_ns"], s["block"], s["signal"]))
    worst = max(ends, key=lambda e: e[2], default=None)
    return {"period_ns": round(period, 3), "endpoints": len(ends), "failing": failing, "tns_ns": round(tns, 3),
            "worst_ns": round(worst[2], 3) if worst else 0.0, "sources": ranked[:top],
            "worst_path": {"end": f"{worst[0]}.{worst[1]}", "cells": [{"cell": c, "arrival_ns": t} for c, t in worst[4]]}
            if worst else None}


def compare(module: dict, report: dict) -> dict:
    """The estimate against nextpnr's routed arrivals (`--detailed-timing-report`) of the same netlist:
    endpoints matched and the correlation r of their arrival times."""
    est: dict = {}
    for name, port, t, _ in arrivals(module):
        est[name, port] = max(est.get((name, port), 0.0), t)
    pairs = []
    for net in report.get("detailed_net_timings", []):
        for ep in net["endpoints"]:
            # nextpnr names a flip-flop's direct data input M, the LUT-fed one DI
            key = (ep["cell"], "DI" if ep["port"] == "M" else ep["port"])
            if key in est and ep.get("event", "").startswith("posedge"):
                pairs.append((est[key], fpga.arrival(ep)))
    n = len(pairs)
    if n < 2:
        return {"matched": n, "r": None}
    mx, my = sum(x for x, _ in pairs) / n, sum(y for _, y in pairs) / n
    cov = sum((x - mx) * (y - my) for x, y in pairs)
    vx, vy = sum((x - mx) ** 2 for x, _ in pairs), sum((y - my) ** 2 for _, y in pairs)
    return {"matched": n, "r": round(cov / math.sqrt(vx * vy), 3) if vx and vy else None,
            "mean_estimate_ns": round(mx, 3), "mean_routed_ns": round(my, 3)}
