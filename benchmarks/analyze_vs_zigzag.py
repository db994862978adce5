"""hwgen analyze against ZigZag (PyPI zigzag-dse) on ImageNet ResNet-18: time and DRAM counts.

ZigZag is a peer, not a dependency: this script creates `.venv-peers` (a separate venv with
zigzag-dse pinned) on first use and runs ZigZag there, on the same layers written in ZigZag's
own workload format and an accelerator description written from hwgen's `generic` preset
(16x16 MACs over output channels x output columns, one shared global buffer, DRAM). Both tools
search their mapping per layer. Printed: wall times and their ratio, and per dense layer the DRAM
bytes per tensor of both, with the compulsory traffic beside them.

Usage: python benchmarks/analyze_vs_zigzag.py [--glb-kib N] [--layers N]
       (--layers N: only the first N conv layers, for a quick run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".venv-peers"
ZIGZAG_PIN = "zigzag-dse==3.9.1"
PEER_EXTRAS = ("six==1.17.0",)  # imported by zigzag-dse 3.9.1 but not declared in its requirements


def peers_python() -> Path:
    py = PEERS / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    if subprocess.run([str(py), "-c", "import zigzag"], capture_output=True).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", ZIGZAG_PIN, *PEER_EXTRAS], check=True)
    return py


# -- the ZigZag side (runs inside .venv-peers; imports nothing from hwgen) ------------------------

def zigzag_workload(layers: list[dict]) -> list[dict]:
    """ZigZag's workload format: one Conv per layer, each reading its input from DRAM."""
    out = []
    for i, l in enumerate(layers):
        out.append({
            "id": i, "name": l["name"], "operator_type": "Conv",
            "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
            "dimension_relations": [f"ix={l['stride']}*ox+1*fx", f"iy={l['stride']}*oy+1*fy"],
            "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
            "loop_sizes": [1, l["m"], l["c"], l["p"], l["q"], l["r"], l["s"]],
            "operand_precision": {"W": 8, "I": 8, "O": 32, "O_final": 8},
            "operand_source": {"I": i, "W": i},
            "pr_loop_dims": ["IX", "IY"],
            "padding": [[l["pad"], l["pad"]], [l["pad"], l["pad"]]],
        })
    return out


def _port(name, kind, bw, alloc):
    return {"name": name, "type": kind, "bandwidth_min": bw, "bandwidth_max": bw, "allocation": alloc}


def zigzag_hardware(glb_kib: float, rows: int, cols: int) -> dict:
    """hwgen's generic preset in ZigZag's terms: per-PE weight and output registers, a shared
    global buffer for all three operands, DRAM. Energies: Horowitz 45 nm per access."""
    return {
        "name": "hwgen_generic",
        "memories": {
            "rf_w": {"size": 8, "r_cost": 0.15, "w_cost": 0.15, "area": 0, "latency": 1, "operands": ["I2"],
                     "ports": [_port("r_port_1", "read", 8, ["I2, tl"]), _port("w_port_1", "write", 8, ["I2, fh"])],
                     "served_dimensions": ["D2"]},
            "rf_o": {"size": 32, "r_cost": 0.6, "w_cost": 0.6, "area": 0, "latency": 1, "operands": ["O"],
                     "ports": [_port("r_port_1", "read", 32, ["O, tl"]), _port("r_port_2", "read", 32, ["O, th"]),
                               _port("w_port_1", "write", 32, ["O, fh"]), _port("w_port_2", "write", 32, ["O, fl"])],
                     "served_dimensions": []},
            "glb": {"size": int(glb_kib * 8192), "r_cost": 20.0, "w_cost": 20.0, "area": 0, "latency": 1,
                    "operands": ["I1", "I2", "O"],
                    "ports": [_port("r_port_1", "read", 2048, ["I1, tl", "I2, tl", "O, tl", "O, th"]),
                              _port("w_port_1", "write", 2048, ["I1, fh", "I2, fh", "O, fh", "O, fl"])],
                    "served_dimensions": ["D1", "D2"]},
            "dram": {"size": 10_000_000_000, "r_cost": 1300.0, "w_cost": 1300.0, "area": 0, "latency": 1,
                     "operands": ["I1", "I2", "O"],
                     "ports": [_port("rw_port_1", "read_write", 128,
                                     ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"])],
                     "served_dimensions": ["D1", "D2"]},
        },
        "operational_array": {"unit_energy": 0.3, "unit_area": 1, "dimensions": ["D1", "D2"], "sizes": [rows, cols]},
    }


def zigzag_mapping(rows: int, cols: int) -> list[dict]:
    return [{"name": "default", "spatial_mapping": {"D1": [f"K, {rows}"], "D2": [f"OX, {cols}"]},
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def zigzag_worker(job: Path) -> None:
    """Run inside .venv-peers: read the job, run ZigZag, write DRAM bytes per layer and tensor."""
    import logging

    import yaml
    from zigzag.api import get_hardware_performance_zigzag
    from zigzag.hardware.architecture.memory_port import DataDirection
    from zigzag.mapping.data_movement import DataMoveAttr

    spec = json.loads(job.read_text())
    work = job.parent
    (work / "workload.yaml").write_text(yaml.safe_dump(zigzag_workload(spec["layers"]), sort_keys=False))
    (work / "hardware.yaml").write_text(yaml.safe_dump(zigzag_hardware(spec["glb_kib"], spec["rows"], spec["cols"]),
                                                       sort_keys=False))
    (work / "mapping.yaml").write_text(yaml.safe_dump(zigzag_mapping(spec["rows"], spec["cols"]), sort_keys=False))
    logging.disable(logging.CRITICAL)
    t0 = time.perf_counter()
    _, _, cmes = get_hardware_performance_zigzag(
        str(work / "workload.yaml"), str(work / "hardware.yaml"), str(work / "mapping.yaml"),
        opt="energy", dump_folder=str(work / "out"), loma_show_progress_bar=False)
    seconds = time.perf_counter() - t0
    names = {"W": "weights", "I": "inputs", "O": "outputs"}
    per_layer = []
    for cme in cmes[0][1]:
        cme = cme[0]
        bytes_ = {}
        for op in cme.layer.layer_operands:
            top = cme.mapping.unit_mem_data_movement[op][-1]  # the DRAM level
            amount = top.get_attribute(DataMoveAttr.DATA_TRANS_AMOUNT_PER_PERIOD)
            count = top.get_attribute(DataMoveAttr.DATA_TRANS_PERIOD_COUNT)
            prec = top.get_attribute(DataMoveAttr.DATA_PRECISION)
            bits = sum(amount.get(d) * count.get(d) * prec.get(d)
                       for d in (DataDirection.RD_OUT_TO_LOW, DataDirection.WR_IN_BY_LOW))
            bytes_[names[str(op)]] = bits // 8
        per_layer.append({"name": cme.layer.name, "dram_bytes": bytes_})
    json.dump({"seconds": seconds, "layers": per_layer}, sys.stdout)


# -- the hwgen side and the comparison ------------------------------------------------------------

def hwgen_side(glb_kib: float, n_layers: int | None):
    import torch

    from hwgen.analysis import analyze, load_arch
    from hwgen.ingest import load_model
    from resnet18_imagenet import export

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        graph = load_model(export(Path(tmp) / "r18.pt2"))
    t0 = time.perf_counter()
    result = analyze(graph, arch=load_arch("generic"), glb_kib=glb_kib, objective="energy")
    seconds = time.perf_counter() - t0
    convs = [r for r in result.layers if r.layer.op == "conv2d"][:n_layers]
    return seconds, convs, load_arch("generic")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--glb-kib", type=float, default=256)
    ap.add_argument("--layers", type=int, default=None)
    args = ap.parse_args()

    hw_seconds, convs, arch = hwgen_side(args.glb_kib, args.layers)
    layers = [{"name": r.layer.name, "m": r.layer.m, "c": r.layer.c, "p": r.layer.p, "q": r.layer.q, "r": r.layer.r,
               "s": r.layer.s, "stride": r.layer.stride[0], "pad": r.layer.padding[0]} for r in convs]
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"layers": layers, "glb_kib": args.glb_kib, "rows": arch.rows, "cols": arch.cols}))
        try:
            py = peers_python()
            proc = subprocess.run([str(py), __file__, "--zigzag-worker", str(job)], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": ""}, cwd=tmp)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"ZigZag could not be installed in {PEERS}: {e}")
            proc = None
    print(f"ImageNet ResNet-18, {len(convs)} conv layers, global buffer {args.glb_kib:g} KiB, "
          f"{arch.rows}x{arch.cols} MACs, int8, both searching per layer for energy")
    print(f"hwgen analyze (whole network incl. linear): {hw_seconds:.2f} s")
    if proc is None or proc.returncode:
        print("ZigZag failed:", (proc.stderr.strip().splitlines() or ["?"])[-1] if proc else "not installed")
        return 1
    zz = json.loads(proc.stdout)
    print(f"ZigZag {ZIGZAG_PIN} (LOMA search):                {zz['seconds']:.2f} s   ratio {zz['seconds'] / hw_seconds:.0f}x")
    print()
    head = f"{'layer':<22} {'tensor':<8} {'hwgen B':>10} {'ZigZag B':>10} {'compulsory B':>12} {'padded B':>10}"
    print(head)
    print("-" * len(head))
    agree = lower = 0
    totals = [0, 0, 0]
    for r, z in zip(convs, zz["layers"]):
        layer_h = layer_g = 0
        for t in ("weights", "inputs", "outputs"):
            comp = r.compulsory_bytes[t]
            pad = r.compulsory_bytes["inputs_padded"] if t == "inputs" else comp
            # ZigZag counts partial-sum spills as output traffic
            h, g = r.dram_bytes[t] + (r.dram_bytes["psums"] if t == "outputs" else 0), z["dram_bytes"][t]
            agree += h == g
            layer_h, layer_g = layer_h + h, layer_g + g
            totals = [totals[0] + h, totals[1] + g, totals[2] + comp]
            print(f"{r.layer.name:<22} {t:<8} {h:>10} {g:>10} {comp:>12} {pad:>10}")
        lower += layer_h <= layer_g
    print("-" * len(head))
    print(f"{'total':<31} {totals[0]:>10} {totals[1]:>10} {totals[2]:>12}")
    print(f"{agree} of {3 * len(convs)} tensor counts identical; hwgen's mapping moves no more bytes than "
          f"ZigZag's on {lower} of {len(convs)} layers")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--zigzag-worker":
        zigzag_worker(Path(sys.argv[2]))
    else:
        sys.exit(main())
