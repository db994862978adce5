"""The end-to-end demonstration `make demo` runs: checkpoint -> analysis -> Verilog -> verified in cocotb.

    python -m hwgen.demo models/digits_ps4p4_w8a8.hwq --out demo-out [--images 8]

Steps, each the real command with its output kept in the folder:
  1. `hwgen inspect`                          -> inspect.txt
  2. `hwgen analyze --arch engine` (+ PNG)    -> analyze.txt, analyze.json, analyze.png
  3. `hwgen generate`                         -> engine/ (Verilog, DRAM image, manifest, model.hwq)
  4. `hwgen simulate` of digits test images, hostile DRAM  -> simulate.txt, simulate.json
     and one image with an ideal DRAM, for cycles vs the model -> simulate_ideal.txt, .json
  5. `hwgen generate --interface axi` -> engine-axi/ (AXI4 master + AXI4-Lite top, driver/,
     network_image.bin) and the whole network in hardware from one start per image: the generated
     Python driver (`hwgen.driver.Driver`) writes each image, starts the descriptor chain over
     AXI4-Lite, waits for irq, reads the counters over AXI4-Lite and the logits from memory, on
     cocotbext-axi's AxiRam pausing every channel at random          -> network_axi.json
  6. a summary (printed and summary.md): bit-exact yes/no, accuracy engine vs reference, cycles,
     MAC utilization, DRAM bytes measured vs predicted (the generic analytical model on the generated
     arch.yaml + mapping.yaml, and `hwgen analyze --arch engine`), energy dense vs sparse, and the
     AXI run's logits, counters and bytes against the prediction.
Exit status 0 only if the engine is bit-exact and the measured bytes equal the predicted ones, in
both runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from .errors import HwgenError


def _step(title: str, argv: list[str], log: Path) -> int:
    """Run one hwgen command in-process, echoing and keeping its standard output."""
    from .cli import main

    print(f"\n== {title}: hwgen {' '.join(argv)}", flush=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    log.write_text(buf.getvalue())
    print(buf.getvalue(), end="", flush=True)
    if code not in (0, 1):
        raise HwgenError(f"step '{title}' failed (exit {code}); see the message above")
    return code


def _energy_dense_vs_sparse(graph) -> tuple[float, float]:
    from .analysis import analyze

    dense = analyze(graph, arch="engine", fmt="dense")
    native = analyze(graph, arch="engine")
    return dense.totals["energy_pj"]["total"], native.totals["energy_pj"]["total"]


def summarize(out: Path, sim: dict, ideal: dict, analysis: dict, energy: tuple[float, float]) -> str:
    net, tot = sim["network"], sim["totals"]
    analyzed = {lay["name"]: lay["dram_bytes"]["total"] for lay in analysis["layers"]}
    rows = ["| layer | result | cycles (hostile) | cycles (ideal) | predicted | MAC util (ideal) | DRAM B measured "
            "| predicted (generic model: arch.yaml + mapping.yaml) | predicted (`analyze --arch engine`) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for lay, lid in zip(sim["layers"], ideal["layers"]):
        rows.append(f"| {lay['name']} | {'PASS' if lay['passed'] else 'FAIL ' + str(lay['mismatches'])} | "
                    f"{lay['cycles']:,} | {lid['cycles']:,} | {lid['cycles_predicted']:,} | {lid['utilization']:.1%} | "
                    f"{lay['dram_bytes_measured']:,} | {lay['dram_bytes_predicted']:,} | "
                    f"{analyzed.get(lay['name'], 0):,} |")
    bytes_equal = all(lay["bytes_match"] for lay in sim["layers"]) and \
        all(lay["dram_bytes_measured"] == analyzed.get(lay["name"]) for lay in sim["layers"])
    t_ideal = ideal["totals"]
    cyc_err = (t_ideal["cycles_predicted"] - t_ideal["cycles"]) / t_ideal["cycles"]
    acc = (f"engine {net['engine_accuracy']:.1%}, reference {net['reference_accuracy']:.1%} on {sim['images']} "
           "digits test images" if net["labels"] else "n/a (not a digits model)")
    lines = [
        f"# hwgen demo: {analysis['model']}",
        "",
        f"- bit-exact: **{'yes' if sim['passed'] else 'NO'}** - {sim['images']} images through the engine's Verilog "
        f"(Verilator, hostile DRAM, seed {sim['seed']}); {tot['mismatches']} differing activations, "
        f"logits {'equal' if net['logits_match'] else 'DIFFERENT'} to the integer reference",
        f"- accuracy: {acc}",
        f"- cycles per image: {tot['cycles']:,} with a hostile DRAM, {t_ideal['cycles']:,} with an ideal one; "
        f"model {t_ideal['cycles_predicted']:,} ({cyc_err:+.1%})",
        f"- MAC utilization (effectual MACs / (lanes x cycles)): {t_ideal['utilization']:.1%} ideal DRAM, "
        f"{tot['utilization']:.1%} hostile",
        f"- DRAM bytes per image: measured {tot['dram_bytes_measured']:,}, predicted {tot['dram_bytes_predicted']:,} "
        f"by the generic model from engine/arch.yaml + mapping.yaml (`hwgen analyze --arch engine`: {analysis['totals']['dram_bytes']['total']:,}): "
        f"**{'equal' if bytes_equal else 'DIFFERENT'}**",
        f"- energy per image (`hwgen analyze --arch engine`, {analysis['energy_table']}): dense weights "
        f"{energy[0] / 1e6:.2f} uJ, pattern-sparse {energy[1] / 1e6:.2f} uJ ({1 - energy[1] / energy[0]:.1%} less)",
        "",
        *rows,
        "",
        f"Files in `{out}`: inspect.txt, analyze.txt/.json/.png, engine/ (generated Verilog, DRAM image, "
        "manifest), simulate.txt/.json, simulate_ideal.txt/.json, engine-axi/ (the AXI top, driver/, "
        "network_image.bin), network_axi.json, summary.md.",
    ]
    return "\n".join(lines) + "\n"


def network_through_axi(ckpt: Path, gen: Path, out: Path, images: int, seed: int) -> tuple[dict, list[str]]:
    """Step 5: the whole network from one start per image through the AXI top; (results, summary lines)."""
    from . import reference, sim_target, simulate

    _step("generate, AXI top", ["generate", str(ckpt), "--out", str(gen), "--interface", "axi"],
          out / "generate_axi.txt")
    target = sim_target.load_generated(gen)
    net = json.loads((gen / "manifest.json").read_text())["network"]
    if "error" in net:
        raise HwgenError(f"this network cannot run from one start: {net['error']}")
    inputs, labels = simulate.sample_inputs(target.graph, images, 0)
    print(f"\n== the whole network from one start per image through AXI ({images} images, {net['count']} "
          f"descriptors: {' -> '.join(net['chain'])}; host layers: {len(net['host_layers'])})", flush=True)
    host = simulate.run_chain(target, inputs, seed=seed, timing="hostile", workdir=out / "sim-axi")
    want = reference.run(target.graph, inputs)
    rows = ["| image | logits = reference | cycles (bench) | BUSY_CYCLES | BYTES_READ + BYTES_WRITTEN "
            "| monitor bytes | predicted | STALL_READ | STALL_WRITE | MAC_ACTIVE (schedule model) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ok = host["aborted"] is None and len(host["images"]) == images
    for i, img in enumerate(host["images"]):
        run, c = img["run"], img["run"]["counters"]
        monitor = sum(r["read_bytes"] + r["write_bytes"] for r in run["traffic"].values())
        equal = img["output"] is not None and list(img["output"]) == want[i].tolist()
        ok &= equal and run["error"] is None and c["BUSY_CYCLES"] == run["cycles"] \
            and c["BYTES_READ"] + c["BYTES_WRITTEN"] == monitor == net["bytes_total"] \
            and c["MAC_ACTIVE"] == net["mac_active"]
        rows.append(f"| {i} | {'yes' if equal else 'NO'} | {run['cycles']:,} | {c.get('BUSY_CYCLES', 0):,} | "
                    f"{c.get('BYTES_READ', 0) + c.get('BYTES_WRITTEN', 0):,} | {monitor:,} | {net['bytes_total']:,} | "
                    f"{c.get('STALL_READ', 0):,} | {c.get('STALL_WRITE', 0):,} | "
                    f"{c.get('MAC_ACTIVE', 0):,} ({net['mac_active']:,}) |")
    predicted = [int(np.argmax(img["output"])) for img in host["images"] if img["output"] is not None]
    correct = sum(int(p == y) for p, y in zip(predicted, labels)) if labels is not None else None
    (out / "network_axi.json").write_text(json.dumps(host, indent=1) + "\n")
    lines = [f"- the whole network in hardware from one start per image (AXI4 master on AxiRam pausing every "
             f"channel at random, AXI4-Lite registers, the generated Python driver; {net['count']} descriptors, "
             f"host layers: {len(net['host_layers'])}): **{'bit-exact' if ok else 'FAILED'}**"
             + (f": {host['aborted']}" if host["aborted"] else "")
             + (f"; {correct} of {len(predicted)} images classified right" if correct is not None else ""),
             "", *rows]
    print("\n".join(lines[2:]), flush=True)
    return {"passed": ok}, lines


def run_demo(ckpt: Path, out: Path, images: int = 8, seed: int = 0, axi_images: int = 4) -> int:
    from . import checkpoint

    start = time.perf_counter()
    graph = checkpoint.load(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    gen = out / "engine"
    _step("inspect", ["inspect", str(ckpt)], out / "inspect.txt")
    _step("analyze", ["analyze", str(ckpt), "--arch", "engine", "--json", str(out / "analyze.json"),
                      "--plot", str(out / "analyze.png")], out / "analyze.txt")
    _step("generate", ["generate", str(ckpt), "--out", str(gen)], out / "generate.txt")
    common = ["--seed", str(seed), "--no-progress"] if not sys.stderr.isatty() else ["--seed", str(seed)]
    _step("simulate", ["simulate", str(gen), "--images", str(images), "--json", str(out / "simulate.json"), *common],
          out / "simulate.txt")
    _step("simulate, ideal DRAM", ["simulate", str(gen), "--images", "1", "--timing", "ideal",
                                   "--json", str(out / "simulate_ideal.json"), *common], out / "simulate_ideal.txt")
    axi, axi_lines = network_through_axi(ckpt, out / "engine-axi", out, axi_images, seed)
    sim = json.loads((out / "simulate.json").read_text())
    ideal = json.loads((out / "simulate_ideal.json").read_text())
    analysis = json.loads((out / "analyze.json").read_text())
    summary = summarize(out, sim, ideal, analysis, _energy_dense_vs_sparse(graph))
    summary += "\n" + "\n".join(axi_lines) + "\n"
    (out / "summary.md").write_text(summary)
    print("\n" + summary + f"(demo took {time.perf_counter() - start:.0f} s)")
    ok = sim["passed"] and ideal["passed"] and "**equal**" in summary and axi["passed"]
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hwgen.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a quantized .hwq checkpoint (the shipped one: models/digits_ps4p4_w8a8.hwq)")
    p.add_argument("--out", type=Path, required=True, help="folder for every output")
    p.add_argument("--images", type=int, default=8, help="digits test images to run through the engine (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the DRAM stalls (default 0)")
    p.add_argument("--axi-images", type=int, default=4,
                   help="digits test images through the AXI top, the whole network from one start each (default 4)")
    args = p.parse_args(argv)
    try:
        return run_demo(args.checkpoint, args.out, args.images, args.seed, args.axi_images)
    except HwgenError as e:
        print(f"hwgen demo: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
