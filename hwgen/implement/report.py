"""The readable report of `hwgen implement` (implement.txt), from the implement.json data alone."""

from __future__ import annotations

ENDPOINT_GROUPS = 12  # groups of failing endpoints the text shows


def _engine(e: dict) -> str:
    return (f"{e['m_lanes']}x{e['x_lanes']} MACs, {e['bus_bits']}-bit bus, W{e['weight_bits']} A{e['act_bits']}"
            + (", registered ECP5 DSP cells" if e.get("dsp") == "ecp5" else ""))


def fpga_text(r: dict) -> list[str]:
    lines = [f"hwgen implement: {r['target']} ({r['device']}), seed {r['seed']}, target {r['freq_mhz']:g} MHz",
             f"engine: {_engine(r['engine'])}, behind the pin-light wrapper ({r['flow']['wrapper_ff']} of the "
             f"flip-flops below are the wrapper's)", "",
             f"{'clock':<12}{'target MHz':>12}{'Fmax MHz':>10}  status"]
    for c in r["clocks"]:
        status = "met" if c["met"] else f"MISSED (period {1000 / c['fmax_mhz']:.2f} ns > {1000 / c['target_mhz']:.2f} ns)"
        lines.append(f"{c['clock']:<12}{c['target_mhz']:>12g}{c['fmax_mhz']:>10.2f}  {status}")
    lines += ["", f"{'resource':<10}{'used':>8}{'available':>11}{'use':>8}  (nextpnr bel)"]
    for group, u in r["resources"].items():
        share = f"{u['used'] / u['available']:.1%}" if u["available"] else "-"
        lines.append(f"{group:<10}{u['used']:>8}{u['available']:>11}{share:>8}  {u['bel']}")
    lines += ["", "critical paths (nextpnr: the worst path of each clock pair)"]
    for i, p in enumerate(r["critical_paths"], 1):
        lines.append(f"{i}. {p['from_clock'] or 'input'} -> {p['to_clock'] or 'output'}: {p['delay_ns']:.2f} ns "
                     f"(logic {p['logic_ns']:.2f}, routing {p['routing_ns']:.2f}, {p['cells']} cells)")
        lines.append(f"   from {p['start']}")
        lines.append(f"   to   {p['end']}")
        lines.append("   through " + " -> ".join(f"{t['block']} ({t['delay_ns']:.2f})" for t in p["through"]))
    ends = r.get("endpoints")
    if ends and ends["failing"]:
        lines += ["", f"endpoints missing the {ends['period_ns']:.2f} ns period: {ends['failing']} of {ends['endpoints']}"
                  f", total negative slack {ends['tns_ns']:.1f} ns (the {ENDPOINT_GROUPS} blocks and signals with the most; implement.json has all)",
                  f"{'failing':>8}{'worst ns':>10}  block.signal"]
        for g in ends["groups"][:ENDPOINT_GROUPS]:
            lines.append(f"{g['failing']:>8}{g['worst_slack_ns']:>10.2f}  {g['block']}{'.' + g['signal'] if g['signal'] else ''}")
    if "bitstream" in r:
        lines += ["", f"bitstream: {r['bitstream']}"]
    return lines


def asic_text(r: dict) -> list[str]:
    lines = [f"hwgen implement: asic ({r['device']})", f"engine: {_engine(r['engine'])}", "",
             f"logic        {r['kge']:.2f} kGE (NAND2 equivalents = CMOS transistors / 4)",
             f"transistors  {r['transistors']}",
             f"flip-flops   {r['flip_flops']}",
             f"logic depth  {r['logic_levels']} gate levels (longest path between flip-flops, ports and SRAMs)",
             f"memory       {r['memory_bits']} bits in {len(r['srams'])} SRAM macros (not in the gate count): "
             + ", ".join(f"{k} {s['depth']}x{s['width']}" for k, s in r["srams"].items()),
             "gates        " + ", ".join(f"{k} {v}" for k, v in r["gates"].items())]
    if "liberty" in r:
        lib = r["liberty"]
        lines += ["", f"Liberty {lib['file']}: cell area {lib['area']:g}",
                  "cells        " + ", ".join(f"{k} {v}" for k, v in lib["cells"].items())]
    return lines


def text(r: dict) -> str:
    return "\n".join(fpga_text(r) if "clocks" in r else asic_text(r)) + "\n"
