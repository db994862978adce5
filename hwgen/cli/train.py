"""Train the digits CNN (dense, periodic-sparse, pattern-pruned or unstructured), quantize it with
quantization-aware training and write an hwgen checkpoint; or run the whole results table.

Examples:
  hwgen train --method periodic --scheme PS4_P4 --bits 8 --out models/digits_ps4p4_w8a8.hwq
  hwgen train --method pattern --connectivity 0.25 --bits 4 --out pattern_w4a4.hwq
  hwgen train --method dense --out dense.pt2          (float only: a torch.export program)
  hwgen train --table --out results.json               (every method, float / W8A8 / W4A4)

Accuracies are top-1 on the fixed test split of scikit-learn's digits (360 images); quantized
accuracies are measured by the integer reference on the written checkpoint. Training is
deterministic: the same arguments write a byte-identical file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .. import intmath
from ..errors import HwgenError

METHODS = ("dense", "periodic", "pattern", "unstructured")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--table", action="store_true", help="run every method at float, W8A8 and W4A4 and "
                        "print the results table (--out: .json or .md)")
    parser.add_argument("--method", choices=METHODS, help="how the sparse convolutions are made sparse")
    parser.add_argument("--out", type=Path, help="output: .hwq (quantized) or .pt2 (float); with --table "
                        ".json or .md")
    parser.add_argument("--scheme", default="PS4_P4", help="periodic scheme: pSC<n>, PS<n>_P<P>, PSD<n>_P<P> "
                        "(default PS4_P4)")
    parser.add_argument("--bits", type=int, default=8, help="weight bits (and activation bits unless "
                        "--act-bits), 2..8 (default 8)")
    parser.add_argument("--act-bits", type=int, help="activation bits, 2..8 (default: --bits)")
    parser.add_argument("--epochs", type=int, help="epochs from scratch (default 15)")
    parser.add_argument("--qat-epochs", type=int, help="quantization-aware training epochs (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--library-size", type=int, default=8, help="pattern: K shapes in the library (default 8)")
    parser.add_argument("--connectivity", type=float, default=0.25,
                        help="pattern: fraction of whole kernels removed (default 0.25)")
    parser.add_argument("--pattern-solver", choices=("admm", "iterative"), default="admm",
                        help="pattern: ADMM or iterative magnitude projection (default admm)")
    parser.add_argument("--sparsity", type=float, help="unstructured: fraction of weights removed "
                        "(default: the pattern method's, 1 - 4/9 * (1 - connectivity))")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _budget(args):
    from models.experiments import Budget

    budget = Budget()
    for field, value in (("epochs", args.epochs), ("qat_epochs", args.qat_epochs)):
        if value is not None:
            if value < 0:
                raise HwgenError(f"--{field.replace('_', '-')} must be >= 0, got {value}")
            budget = dataclasses.replace(budget, **{field: value})
    return budget


def run(args) -> int:
    from models import experiments as ex
    from models.train import Data, evaluate
    from models.zoo import export_pt2

    if args.table == (args.method is not None):
        raise HwgenError("give either --table or --method")
    intmath.check_bits(args.bits, "--bits")
    if args.act_bits is not None:
        intmath.check_bits(args.act_bits, "--act-bits")
    budget = _budget(args)
    sparsity = ex.Sparsity(scheme=args.scheme, library_size=args.library_size, connectivity=args.connectivity,
                           solver=args.pattern_solver, sparsity=args.sparsity)
    progress = not args.no_progress
    data = Data.digits()
    if args.table:
        if args.out is not None and args.out.suffix not in (".json", ".md"):
            raise HwgenError(f"--out for the table must end in .json or .md, got '{args.out}'")
        rows = ex.results_table(data, seed=args.seed, budget=budget, sparsity=sparsity, progress=progress)
        print(json.dumps(rows, indent=2) if args.json else ex.format_table(rows))
        if args.out is not None:
            ex.write_table(rows, args.out, seed=args.seed, budget=budget, sparsity=sparsity)
        return 0
    if args.out is None or args.out.suffix not in (".hwq", ".pt2"):
        raise HwgenError("--out must name a .hwq (quantized) or .pt2 (float) file")
    trained = ex.train_float(args.method, data, seed=args.seed, budget=budget, sparsity=sparsity, progress=progress)
    result = {"method": args.method, "label": trained.label, "out": str(args.out),
              "density": ex.sparse_density(trained.model), "float": evaluate(trained.model, data.x_test, data.y_test)}
    if args.out.suffix == ".pt2":
        export_pt2(trained.model, tuple(data.x_train.shape[1:]), args.out)
    else:
        acc = ex.quantize_and_measure(trained, args.bits, data, args.out, act_bits=args.act_bits, seed=args.seed,
                                      budget=budget, progress=progress)
        a_bits = args.bits if args.act_bits is None else args.act_bits
        result.update({"weight_bits": args.bits, "act_bits": a_bits, "integer_reference": acc["reference"],
                       "qat": acc["qat"]})
    result["bytes"] = args.out.stat().st_size
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        quant = (f", W{result['weight_bits']}A{result['act_bits']} integer reference "
                 f"{100 * result['integer_reference']:.2f}%" if "integer_reference" in result else "")
        print(f"{result['label']}: sparse-conv density {result['density']:.3f}, float {100 * result['float']:.2f}%"
              f"{quant} -> {args.out} ({result['bytes']} bytes)")
    return 0
