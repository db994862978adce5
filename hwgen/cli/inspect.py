"""Show a model's layers: shapes, MACs, effectual MACs (nonzero weights only) and sparsity structure.

MODEL is a torch.export archive (.pt2), an ONNX model (.onnx) or an hwgen checkpoint (.hwq). The table lists every node;
--json FILE writes the same as JSON ('-' for standard output): `layers` (every node, weight fields
null for ops without weights) and `totals` over the conv2d and linear layers. In a quantized
checkpoint, nonzeros and effectual MACs count the integer weights (quantization can zero more of
them); the sparsity structure is always detected on the float weights. Sizes past the IR's limits
(an activation dimension over 65,536, or an activation over 2^28 values) are refused in one line.
"""

from __future__ import annotations

import json
import re
import sys

from ..errors import HwgenError


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file: .pt2 (torch.export.save), .onnx or .hwq")
    parser.add_argument("--input-shape", metavar="C,H,W",
                        help="input shape without batch; needed only when the file does not fix it")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-' for stdout)")


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise HwgenError(f"--input-shape '{text}' is not comma-separated integers like 3,32,32") from None
    if len(dims) not in (1, 3) or min(dims) < 1:
        raise HwgenError(f"--input-shape '{text}' must be C,H,W (or F) with positive sizes")
    return dims


def run(args) -> int:
    from ..ingest import load_model

    graph = load_model(args.model, parse_shape(args.input_shape) if args.input_shape else None)
    report = summarize(graph)
    if args.json == "-":
        sys.stdout.write(to_json(report))
        return 0
    if args.json:
        try:
            with open(args.json, "w") as f:
                f.write(to_json(report))
        except OSError as e:
            raise HwgenError(f"cannot write {args.json}: {e.strerror}") from None
    print(format_table(report))
    return 0


def summarize(graph) -> dict:
    """The inspect report of a graph: {'layers': [...], 'totals': {...}} (the `--json` schema)."""
    from tqdm import tqdm

    from ..ir import effectual_macs, macs
    from ..sparsity import detect

    layers = []
    totals = {"macs": 0, "effectual_macs": 0, "params": 0, "nonzeros": 0}
    for node in tqdm(graph.nodes, desc="inspect", unit="node", disable=None, leave=False, file=sys.stderr):
        row = {
            "name": node.name,
            "op": node.op,
            "in_shape": list(graph.in_shape(node)) if node.inputs else None,
            "out_shape": list(node.out_shape),
            "weight_shape": None,
            "macs": macs(graph, node),
            "effectual_macs": effectual_macs(graph, node),
            "params": None,
            "nonzeros": None,
            "sparsity": None,
        }
        if node.weight is not None:
            info = detect(node)
            row.update(weight_shape=list(node.weight.shape),
                       params=int(node.weight.size + (node.bias.size if node.bias is not None else 0)),
                       nonzeros=_nonzeros(node), sparsity=info.to_json())
            for key in totals:
                totals[key] += row[key]
        layers.append(row)
    return {"layers": layers, "totals": totals}


def _nonzeros(node) -> int:
    """Nonzero weights on the same basis as `ir.effectual_macs`: the integer weights once quantized."""
    import numpy as np

    q = node.quant
    return int(np.count_nonzero(q.weight if q is not None and q.weight is not None else node.weight))


def to_json(report: dict) -> str:
    """Indented JSON with every innermost list of numbers on one line (shapes, mask rows)."""
    text = json.dumps(report, indent=2)
    return re.sub(r"\[[\s\d,.\-]*\]", lambda m: json.dumps(json.loads(m.group(0))), text) + "\n"


def _shape(s) -> str:
    return "x".join(str(d) for d in s) if s else "-"


def _si(n: int) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3f} {unit}"
    return str(n)


def format_table(report: dict) -> str:
    """The report as an aligned text table with a totals line."""
    head = ("name", "op", "in", "out", "weight", "MACs", "eff. MACs", "sparsity", "P", "nonzeros")
    rows = []
    for r in report["layers"]:
        sp = r["sparsity"] or {}
        rows.append((r["name"], r["op"], _shape(r["in_shape"]), _shape(r["out_shape"]), _shape(r["weight_shape"]),
                     f"{r['macs']:,}" if r["macs"] else "", f"{r['effectual_macs']:,}" if r["macs"] else "",
                     sp.get("kind", ""), str(sp.get("period") or ""),
                     f"{r['nonzeros']:,}" if r["nonzeros"] is not None else ""))
    t = report["totals"]
    ratio = f" ({t['macs'] / t['effectual_macs']:.2f}x fewer)" if t["effectual_macs"] else ""
    rows.append(("total", "", "", "", "", f"{t['macs']:,}", f"{t['effectual_macs']:,}", "", "", f"{t['nonzeros']:,}"))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    numeric = {5, 6, 8, 9}

    def line(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in rows[:-1]]
    out += [line(["-" * w for w in widths]), line(rows[-1])]
    out.append(f"{len([r for r in report['layers'] if r['weight_shape']])} weighted layers, "
               f"{t['params']:,} parameters, {t['nonzeros']:,} nonzero weights, "
               f"{_si(t['macs'])} MACs -> {_si(t['effectual_macs'])} effectual{ratio}")
    return "\n".join(out)
