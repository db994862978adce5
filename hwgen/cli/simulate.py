"""Verify a generated engine in cocotb against the bit-exact integer reference.

Builds the Verilog that `hwgen generate` wrote to DIR (Verilator by default), runs N input images
through the network layer by layer on the simulated engine (the host runs pooling and the
classifier in the integer reference) with a hostile simulated DRAM, and prints per engine layer:
PASS/FAIL (every output element equal to the reference's), cycles, MAC utilization (effectual MACs
/ (lanes x cycles)), DRAM bytes measured vs predicted by the engine's schedule model, and cycles
predicted; then whether the logits equal the reference's. Exit status 1 if anything differs,
including DRAM bytes measured vs predicted. A folder generated with --interface axi runs on
cocotbext-axi (AxiRam with random pauses, AxiLiteMaster, the Python driver, a protocol monitor).
--input X.npy runs your own images (float, quantized with the input scale, or integers); --expect
Y.npy also compares the engine's outputs with yours. --mode fast runs the same DRAM model as HDL
inside Verilator, clocked by a C++ main loop without cocotb (sim/fast_bench.py): the same outputs,
DRAM bytes and cycles (the same stalls for the same seed), many times faster; the default
reference mode keeps the full cocotb testbench. --chain runs a folder generated with --interface
axi as the hardware runs it: the whole network from one start per image (the descriptor chain and
the network-op unit, no host layer), with per image the logits and every node's map against the
reference, the bytes moved against the prediction, and the AXI-Lite counters (BUSY_CYCLES against
the bench's count, bytes against the protocol monitor's, MAC_ACTIVE against the schedule model's);
with --mode fast the same engine and network-op unit walk the chain behind the stream bus in the
HDL memory model (no AXI top, so no counters), many times faster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import HwgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR", help="folder written by `hwgen generate`")
    p.add_argument("--images", type=int, default=4, metavar="N", help="input images to run (default 4)")
    p.add_argument("--layers", default=None, metavar="NAMES",
                   help="comma-separated engine layers to run on the engine (default: all; others run on the host)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the DRAM stalls and random inputs")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator (default verilator)")
    p.add_argument("--timing", choices=("hostile", "ideal"), default="hostile",
                   help="DRAM behaviour: random stalls and latency (default), or always ready")
    p.add_argument("--mode", choices=("reference", "fast"), default="reference",
                   help="DRAM model: the cocotb testbench's (default), or fast: the same model as HDL inside "
                        "Verilator, same outputs, bytes and cycles (stream top, Verilator only)")
    p.add_argument("--waves", type=Path, default=None, metavar="FILE.fst",
                   help="write a waveform trace (.fst, or .vcd with Verilator)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="CKPT",
                   help="the quantized checkpoint DIR was generated from (default: DIR/model.hwq)")
    p.add_argument("--input", type=Path, default=None, metavar="X.npy",
                   help="your own images instead of --images: (N, C, H, W) or one (C, H, W); floats are quantized "
                        "with the checkpoint's input scale, integers taken as they are")
    p.add_argument("--expect", type=Path, default=None, metavar="Y.npy",
                   help="integer outputs the engine's must equal too (exit 1 otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--chain", action="store_true",
                   help="the whole network from one start per image (a folder generated with --interface axi)")


def _fmt_int(v) -> str:
    return "-" if v is None else f"{v:,}"


def _bound_ratio(measured: int, bound) -> str:
    return f"{measured / bound:.3f}" if bound else "-"


def format_table(report) -> str:
    rows = [("layer", "result", "cycles", "util", "DRAM B meas", "DRAM B pred", "bytes", "x bound", "cycles pred",
             "cyc err")]
    for lr in report.layers:
        # The schedule model assumes an ideal memory: its error means something only against one.
        comparable = report.timing == "ideal" and lr.cycles_predicted and lr.cycles
        cyc_err = f"{(lr.cycles_predicted - lr.cycles) / lr.cycles:+.1%}" if comparable else "-"
        match = {None: "-", True: "equal", False: "DIFFER"}[lr.bytes_match]
        result = "PASS" if lr.passed else ("ERROR" if lr.error else f"FAIL {lr.mismatches}" if lr.mismatches else "FAIL bytes")
        rows.append((lr.name, result, _fmt_int(lr.cycles), f"{lr.utilization:.1%}", _fmt_int(lr.dram_bytes_measured),
                     _fmt_int(lr.dram_bytes_predicted), match,
                     _bound_ratio(lr.dram_bytes_measured, lr.dram_bytes_compulsory), _fmt_int(lr.cycles_predicted),
                     cyc_err))
    t = report.totals()
    rows.append(("total", "PASS" if all(lr.passed for lr in report.layers) else f"FAIL {t['mismatches']}", _fmt_int(t["cycles"]),
                 f"{t['utilization']:.1%}", _fmt_int(t["dram_bytes_measured"]), _fmt_int(t["dram_bytes_predicted"]),
                 "", _bound_ratio(t["dram_bytes_measured"], t["dram_bytes_compulsory"]),
                 _fmt_int(t["cycles_predicted"]), ""))
    return align(rows)


def align(rows: list[tuple]) -> str:
    """A text table: the first row is the header, the first column left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def chain_rows(report) -> list[tuple]:
    """Header and one row per image of a `ChainReport` (`make demo` keeps this table in its summary)."""
    rows = [("image", "result", "cycles (bench)", "BUSY_CYCLES", "bytes: counters", "monitor", "predicted",
             "STALL_READ", "STALL_WRITE", "MAC_ACTIVE", "model", "node mismatches")]
    for i, img in enumerate(report.images):
        c = img.counters or {}  # the fast mode has no AXI top, so no counters: "-"
        result = "PASS" if img.passed else ("ERROR" if img.error else "FAIL")
        rows.append((str(i), result, f"{img.cycles:,}", _fmt_int(c.get("BUSY_CYCLES")), _fmt_int(img.counter_bytes),
                     f"{img.monitor_bytes:,}", f"{img.bytes_predicted:,}", _fmt_int(c.get("STALL_READ")),
                     _fmt_int(c.get("STALL_WRITE")), _fmt_int(c.get("MAC_ACTIVE")), f"{img.mac_active_predicted:,}",
                     f"{sum(img.node_mismatches.values()):,}"))
    return rows


def chain_summary_lines(report) -> list[str]:
    lines = [f"the whole network from one start per image ({len(report.chain)} descriptors: "
             f"{' -> '.join(report.chain)}; host layers: {len(report.host_layers)}): "
             f"{('bit-exact, bytes equal' + (', counters agree' if report.mode == 'reference' else '')) if report.passed else 'FAILED'} "
             f"on {len(report.images)} of {report.requested} image(s) ({report.sim}, {report.timing} memory, "
             f"seed {report.seed}, {report.mode} mode)"]
    if report.labels:
        right = sum(int(p == y) for p, y in zip(report.engine_top1, report.labels))
        lines.append(f"accuracy: {right} of {len(report.engine_top1)} images classified right")
    for i, img in enumerate(report.images):
        if img.error:
            lines.append(f"image {i}: {img.error}")
        if not img.counters_agree:
            lines.append(f"image {i}: the AXI-Lite counters differ from the bench's count or the model")
        if img.monitor_bytes != img.bytes_predicted:
            lines.append(f"image {i}: {img.monitor_bytes:,} bytes moved, {img.bytes_predicted:,} predicted")
        if not img.output_equal:
            lines.append(f"image {i}: the output differs from the reference's")
        if img.expect_equal is False:
            lines.append(f"image {i}: the output differs from --expect")
    if report.aborted:
        lines.append(f"aborted: {report.aborted}")
    return lines


def run_chain(args, inputs, expected) -> int:
    from ..simulate import simulate_chain, write_json

    unsupported = [flag for flag, on in (("--layers", args.layers), ("--waves", args.waves)) if on]
    if unsupported:
        raise HwgenError(f"--chain runs the whole network from one start: {', '.join(unsupported)} does not apply")
    report = simulate_chain(args.dir, images=args.images, seed=args.seed, sim=args.sim, timing=args.timing,
                            checkpoint=args.checkpoint, inputs=inputs, expected=expected, mode=args.mode)
    print(align(chain_rows(report)))
    print("\n".join(chain_summary_lines(report)))
    if args.json:
        write_json(report, args.json)
    return 0 if report.passed else 1


def summary_lines(report) -> list[str]:
    j = report.to_json()["network"]
    lines = [f"logits: {'bit-exact' if report.logits_match else f'{report.logit_mismatches} DIFFER'} "
             f"on {report.images} image(s) ({report.sim}, {report.timing} DRAM, seed {report.seed}, {report.mode} mode)"]
    if report.timing != "ideal":
        lines.append("cycles predicted assume an ideal DRAM; compare them with --timing ideal")
    if j["labels"]:
        lines.append(f"accuracy: engine {j['engine_accuracy']:.1%}, reference {j['reference_accuracy']:.1%}")
    for lr in report.layers:
        for note in lr.notes:
            lines.append(f"{lr.name}: {note}")
        if lr.error:
            lines.append(f"{lr.name}: {lr.error}")
    if report.expect_mismatches is not None:
        lines.append(f"expected outputs (--expect): {'equal' if not report.expect_mismatches else f'{report.expect_mismatches} DIFFER'}")
    if report.error:
        lines.append(f"aborted: {report.error}")
    return lines


def run(args) -> int:
    from ..simulate import simulate, write_json

    from .quantize import load_array

    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    inputs = load_array(args.input, "--input") if args.input else None
    expected = load_array(args.expect, "--expect") if args.expect else None
    if expected is not None and expected.dtype.kind not in "iu":
        raise HwgenError(f"--expect {args.expect}: expected integer outputs, got dtype {expected.dtype}")
    if args.chain:
        return run_chain(args, inputs, expected)
    report = simulate(args.dir, images=args.images, layers=layers, seed=args.seed, sim=args.sim,
                      timing=args.timing, waves=args.waves, checkpoint=args.checkpoint,
                      progress=not args.no_progress, inputs=inputs, expected=expected, mode=args.mode)
    print(format_table(report))
    print("\n".join(summary_lines(report)))
    if args.json:
        write_json(report, args.json)
    return 0 if report.passed else 1
