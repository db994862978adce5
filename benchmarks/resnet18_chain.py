"""ResNet-18 CIFAR (PS4_P4 W8A8, random weights) as a whole network from one start, host work 0 layers.

Generates it with `--interface axi` (4x4 MACs, 64-bit bus, 16 KiB input + 32 KiB weight buffers,
as benchmarks/sim_speed.py) and runs `--images` images from one start each (`simulate.run_chain`:
the generated driver writes the image, one start walks the chain's 30 descriptors, the driver
reads every node's output back):
  - `--mode fast` (default): the engine and network-op unit behind the stream bus
    (`ChainShell`) inside the HDL DRAM model, Verilator with its own main loop; no AXI, no
    registers: cycles from start to done, the DRAM model's bytes;
  - `--mode reference`: the AXI top in cocotb on Verilator, cocotbext-axi's AxiRam, DESC_COUNT
    over AXI-Lite, irq: adds the BUSY_CYCLES and byte counters read over AXI-Lite, the AXI
    monitor's bytes. ~16 M engine cycles an image through cocotb: hours; run it niced, in the
    background.
`--max-cycles N` is a speed probe: the first image runs until N cycles (a timeout that ends the run on
purpose) and the script prints the cycles simulated per CPU second of the simulator process, the
figure that says how long a whole image takes (the whole run is about 16.5 M cycles).
Both under `--timing` (hostile: random stalls / pauses on every channel). Prints, per image:
cycles, the counters (reference mode; MAC_ACTIVE against the schedule model's
`network.mac_active`), the measured bytes and the compiler's prediction (manifest
`network.bytes_total`), mismatching elements over every node's output map, logits equal to
hwgen.reference; the schedule model's cycles of the convs; wall and simulator CPU time. Exit 1
on any difference.

    .venv/bin/python benchmarks/resnet18_chain.py [--mode fast|reference] [--images 1]
        [--timing hostile|ideal] [--gen DIR] [--max-cycles N]

`--gen DIR` keeps the generated folder there (and reuses it when it already holds one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwgen import reference, sim_target, simulate

TIMEOUT_CYCLES = 64_000_000  # per image: four times the ~16 M an image takes


def generated(gen: Path):
    from hwgen.generate import generate
    from models.synthetic import quantized_zoo

    if not (gen / "manifest.json").is_file():
        generate(quantized_zoo("resnet18-cifar", scheme="PS4_P4"), gen, glb_kib=16, weight_kib=32, interface="axi")
    return sim_target.load_generated(gen)


def run(args, tmp: Path) -> bool:
    t0 = time.perf_counter()
    target = generated(Path(args.gen) if args.gen else tmp / "gen")
    net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
    if "error" in net:
        print(f"not runnable from one start: {net['error']}")
        return False
    x, _ = simulate.sample_inputs(target.graph, args.images, args.seed)
    cache = Path(args.gen) / "cache" if args.gen else None
    if args.max_cycles and args.mode == "reference":
        simulate.build(target, args.mode, cache_dir=cache)  # the Verilator build is not in the probe's wall time
    t1 = time.perf_counter()
    host = simulate.run_chain(target, x[:1] if args.max_cycles else x, seed=args.seed, timing=args.timing,
                              workdir=tmp / "chain", cache_dir=cache, timeout=args.max_cycles or TIMEOUT_CYCLES,
                              mode=args.mode)
    t2 = time.perf_counter()
    if args.max_cycles:
        n, cpu = host["cycles_simulated"], host["cpu_seconds"]
        print(f"speed probe, {args.mode} mode, {args.timing} timing: {n:,} cycles simulated in {t2 - t1:.1f} s wall, "
              f"{cpu:.1f} s of simulator CPU: {n / cpu:,.0f} cycles per CPU second "
              f"(the run stops at its {args.max_cycles:,}-cycle timeout: {host['aborted']})")
        return host["aborted"] is not None and "timeout" in host["aborted"]
    memory = "AXI top, AxiRam" if args.mode == "reference" else "stream bus, HDL DRAM model"
    print(f"ResNet-18 CIFAR PS4_P4 W8A8 (random weights), 4x4 lanes, 64-bit bus, {net['count']} descriptors "
          f"({sum(target.graph.node(n).op == 'conv2d' for n in net['chain'])} convs), host layers "
          f"{len(net['host_layers'])}, {args.mode} mode ({memory}), {args.timing} timing (seed {args.seed}); "
          f"generate {t1 - t0:.0f} s; the schedule model's conv cycles {sum(lay.cycles_predicted for lay in target.layers):,}")
    ok = host["aborted"] is None
    if not ok:
        print(f"aborted: {host['aborted']}")
    print("| image | cycles (start to done) | BUSY_CYCLES | counter bytes | measured bytes | predicted bytes "
          f"| MAC_ACTIVE (model {net['mac_active']:,}) | mismatching elements | logits = reference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, img in enumerate(host["images"]):
        r, c = img["run"], img["run"].get("counters") or {}
        counted = c.get("BYTES_READ", 0) + c.get("BYTES_WRITTEN", 0)
        monitor = sum(t["read_bytes"] + t["write_bytes"] for t in r.get("traffic", {}).values())
        bad = sum(v["mismatches"] for v in img["nodes"].values())
        same = img["output"] is not None and np.array_equal(np.asarray(img["output"]), reference.run(target.graph, x[i:i + 1])[0])
        busy, counted_s, active = (f"{c['BUSY_CYCLES']:,}", f"{counted:,}", f"{c['MAC_ACTIVE']:,}") if c \
            else ("n/a", "n/a", "n/a")
        print(f"| {i} | {r.get('cycles', 0):,} | {busy} | {counted_s} | {monitor:,} "
              f"| {net['bytes_total']:,} | {active} | {bad} | {same} |")
        ok = ok and r["error"] is None and bad == 0 and same and monitor == net["bytes_total"]
        if args.mode == "reference":
            ok = ok and c.get("BUSY_CYCLES") == r["cycles"] and counted == monitor \
                and c.get("MAC_ACTIVE") == net["mac_active"]
    print(f"simulate {t2 - t1:.0f} s wall, simulator CPU {host['cpu_seconds']:.0f} s; "
          f"{'all equal' if ok else 'DIFFERENCES'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=simulate.MODES, default="fast")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--timing", choices=simulate.TIMINGS, default="hostile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gen", help="keep (and reuse) the generated folder here")
    ap.add_argument("--max-cycles", type=int, default=0, metavar="N",
                    help="speed probe: stop the first image after N cycles, print cycles per CPU second")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        return 0 if run(args, Path(tmp)) else 1


if __name__ == "__main__":
    sys.exit(main())
