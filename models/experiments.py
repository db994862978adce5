"""The results table and the shipped checkpoint: every sparsity method, float and quantized, on digits.

    python -m models.experiments --table [--out results.json|results.md]
    python -m models.experiments --ship [--out models/digits_ps4p4_w8a8.hwq]

(the same as `hwgen train --table` and `hwgen train --method periodic --scheme PS4_P4 --bits 8`).

Each row is one method on the DigitsCNN: dense, periodic (pre-defined masks from initialisation),
pattern-pruned (ADMM and iterative projection, from the trained dense model) and unstructured
magnitude pruning (from the same dense model, to the density of the pattern-pruned one). Each is
measured in float and, after quantization-aware training at W = A = 8 and 4 bits, by the integer
reference on its exported `.hwq` checkpoint; the QAT net's own accuracy is recorded next to it,
and the two must agree exactly. Density is nonzero / total weights of the sparse convolutions.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from hwgen.errors import HwgenError

from . import pattern_pruning, periodic, unstructured
from .qat import QATNet, export
from .train import Data, evaluate, fit
from .zoo import DigitsCNN

METHODS = ("dense", "periodic", "pattern", "unstructured")
PATTERN_SOLVERS = ("admm", "iterative")
SHIPPED = Path(__file__).with_name("digits_ps4p4_w8a8.hwq")
SHIP_SCHEME = "PS4_P4"
SHIP_MAX_GAP = 0.015  # done-when: integer accuracy within 1.5 points of the float dense twin


@dataclass(frozen=True)
class Budget:
    """Epochs of each training phase (the digits CNN trains in about 0.2 s per epoch)."""

    epochs: int = 15  # from scratch: dense and periodic
    prune_epochs: int = 8  # ADMM epochs, or fine-tuning epochs per pruning round
    retrain_epochs: int = 8  # masked retraining after the ADMM hard prune
    qat_epochs: int = 4
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    qat_lr: float = 3e-4


@dataclass(frozen=True)
class Sparsity:
    """Hyper-parameters of the sparsity methods."""

    scheme: str = SHIP_SCHEME  # periodic
    library_size: int = 8  # pattern: K shapes
    taps: int = 4  # pattern: weights per kept kernel, centre included
    connectivity: float = 0.25  # pattern: fraction of kernels removed
    solver: str = "admm"  # pattern: admm | iterative
    sparsity: float | None = None  # unstructured; None: the pattern method's, for a like-for-like row

    def __post_init__(self):
        try:
            periodic.parse_scheme(self.scheme)
        except ValueError as e:
            raise HwgenError(str(e)) from None
        if not 1 <= self.taps <= 9:
            raise HwgenError(f"pattern taps must be 1..9, got {self.taps}")
        shapes = len(pattern_pruning.candidate_patterns(self.taps))
        if not 1 <= self.library_size <= shapes:
            raise HwgenError(f"pattern library size must be 1..{shapes} for {self.taps}-tap patterns, "
                             f"got {self.library_size}")
        if not 0.0 <= self.connectivity < 1.0:
            raise HwgenError(f"connectivity rate must be in [0, 1), got {self.connectivity}")
        if self.solver not in PATTERN_SOLVERS:
            raise HwgenError(f"unknown pattern solver '{self.solver}' (choose from {', '.join(PATTERN_SOLVERS)})")
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise HwgenError(f"unstructured sparsity must be in [0, 1), got {self.sparsity}")

    def unstructured_sparsity(self) -> float:
        if self.sparsity is not None:
            return self.sparsity
        return 1.0 - self.taps / 9 * (1.0 - self.connectivity)


@dataclass
class Trained:
    model: nn.Module
    masks: dict  # {conv: 0/1 mask} of the sparse convolutions, empty when dense
    label: str


def new_model(seed: int) -> DigitsCNN:
    torch.manual_seed(seed)
    return DigitsCNN()


def sparse_density(model: nn.Module) -> float:
    """Nonzero / total weights over the sparse convolutions (3x3, not the first)."""
    convs = periodic.sparse_convs(model)
    return sum(int(torch.count_nonzero(c.weight)) for c in convs) / sum(c.weight.numel() for c in convs)


def train_float(method: str, data: Data, *, seed: int = 0, budget: Budget = Budget(),
                sparsity: Sparsity = Sparsity(), dense: nn.Module | None = None,
                progress: bool = True) -> Trained:
    """A float DigitsCNN trained by `method`; pruning methods start from `dense` (trained if None)."""
    if method not in METHODS:
        raise HwgenError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    if method == "periodic":
        scheme = periodic.parse_scheme(sparsity.scheme)
        model = new_model(seed)
        masks = periodic.apply_periodic(model, scheme)
        fit(model, data, budget.epochs, budget.lr, seed, masks=masks, progress=progress, desc=f"train {scheme.name}")
        return Trained(model, masks, scheme.name)
    if dense is None:
        dense = new_model(seed)
        fit(dense, data, budget.epochs, budget.lr, seed, progress=progress, desc="train dense")
    if method == "dense":
        return Trained(dense, {}, "dense")
    model = copy.deepcopy(dense)
    if method == "pattern":
        common = dict(k=sparsity.library_size, taps=sparsity.taps, connectivity=sparsity.connectivity,
                      lr=budget.finetune_lr, seed=seed, progress=progress)
        if sparsity.solver == "admm":
            masks, _ = pattern_pruning.admm_prune(model, data, admm_epochs=budget.prune_epochs,
                                                  retrain_epochs=budget.retrain_epochs, **common)
        else:
            masks, _ = pattern_pruning.iterative_prune(model, data, epochs_per_round=budget.prune_epochs, **common)
        label = (f"pattern K={sparsity.library_size} {sparsity.taps}-tap conn={sparsity.connectivity:g} "
                 f"({sparsity.solver})")
        return Trained(model, masks, label)
    target = sparsity.unstructured_sparsity()
    masks = unstructured.magnitude_prune(model, data, target, epochs_per_round=budget.prune_epochs,
                                         lr=budget.finetune_lr, seed=seed, progress=progress)
    return Trained(model, masks, f"unstructured {target:.0%} (global)")


def quantization_aware(trained: Trained, weight_bits: int, data: Data, *, act_bits: int | None = None,
                       seed: int = 0, budget: Budget = Budget(), progress: bool = True) -> QATNet:
    """QAT fine-tuning at `weight_bits` / `act_bits` (default: the same), keeping the sparsity masks."""
    a_bits = weight_bits if act_bits is None else act_bits
    net = QATNet(trained.model, weight_bits, a_bits, data.x_train,
                 name=f"digits_{trained.label.split()[0]}_w{weight_bits}a{a_bits}")
    fit(net, data, budget.qat_epochs, budget.qat_lr, seed, masks=net.carry_masks(trained.masks),
        progress=progress, desc=f"qat w{weight_bits}a{a_bits}")
    return net


def checkpoint_accuracy(path, data: Data) -> float:
    """Top-1 accuracy of a `.hwq` checkpoint, by the integer reference on the test split."""
    from hwgen import checkpoint, reference
    from hwgen.quantize import quantize_input

    graph = checkpoint.load(path)
    logits = reference.run(graph, quantize_input(graph, data.x_test.numpy()))
    return float((logits.argmax(1) == data.y_test.numpy()).mean())


def quantize_and_measure(trained: Trained, weight_bits: int, data: Data, path, *, act_bits: int | None = None,
                         seed: int = 0, budget: Budget = Budget(), progress: bool = True) -> dict:
    """QAT, export to `path`, and both accuracies: the QAT net's and the checkpoint's (reference)."""
    net = quantization_aware(trained, weight_bits, data, act_bits=act_bits, seed=seed, budget=budget,
                             progress=progress)
    export(net, path)
    return {"qat": evaluate(net, data.x_test, data.y_test), "reference": checkpoint_accuracy(path, data)}


def results_table(data: Data, *, seed: int = 0, budget: Budget = Budget(), sparsity: Sparsity = Sparsity(),
                  bits: tuple[int, ...] = (8, 4), progress: bool = True) -> list[dict]:
    """One row per method: density, float accuracy, and per bit width the reference accuracy."""
    dense = train_float("dense", data, seed=seed, budget=budget, progress=progress).model
    runs = [("dense", sparsity), ("periodic", sparsity), ("pattern", replace(sparsity, solver="admm")),
            ("pattern", replace(sparsity, solver="iterative")), ("unstructured", sparsity)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method, sp in runs:
            trained = train_float(method, data, seed=seed, budget=budget, sparsity=sp, dense=dense, progress=progress)
            row = {"method": method, "label": trained.label, "density": sparse_density(trained.model),
                   "float": evaluate(trained.model, data.x_test, data.y_test)}
            for b in bits:
                acc = quantize_and_measure(trained, b, data, Path(tmp) / f"{len(rows)}_w{b}.hwq", seed=seed,
                                           budget=budget, progress=progress)
                row[f"w{b}a{b}"] = acc["reference"]
                row[f"w{b}a{b}_qat"] = acc["qat"]
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of `results_table` as a Markdown table (accuracies in percent on the test split)."""
    bits = [int(k[1:k.index("a")]) for k in rows[0] if re.fullmatch(r"w\d+a\d+", k)] if rows else []
    head = ["method", "sparse-conv density", "float"] + [f"W{b}A{b} (int ref)" for b in bits] + ["QAT = int ref"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        cells = [r["label"], f"{r['density']:.3f}", f"{100 * r['float']:.2f}"]
        cells += [f"{100 * r[f'w{b}a{b}']:.2f}" for b in bits]
        cells.append("yes" if all(r[f"w{b}a{b}"] == r[f"w{b}a{b}_qat"] for b in bits) else "NO")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ship(out, data: Data, *, seed: int = 0, budget: Budget = Budget(), progress: bool = True) -> dict:
    """Train and write the shipped checkpoint (PS4_P4, W8A8) and measure it against its dense twin."""
    twin = train_float("dense", data, seed=seed, budget=budget, progress=progress).model
    trained = train_float("periodic", data, seed=seed, budget=budget, progress=progress)
    acc = quantize_and_measure(trained, 8, data, out, seed=seed, budget=budget, progress=progress)
    report = {"checkpoint": str(out), "scheme": SHIP_SCHEME, "bits": 8,
              "dense_float": evaluate(twin, data.x_test, data.y_test),
              "periodic_float": evaluate(trained.model, data.x_test, data.y_test),
              "integer_reference": acc["reference"], "qat": acc["qat"],
              "density": sparse_density(trained.model), "bytes": Path(out).stat().st_size}
    report["gap_points"] = 100 * (report["dense_float"] - report["integer_reference"])
    return report


def write_table(rows: list[dict], out: Path, *, seed: int, budget: Budget = Budget(),
                sparsity: Sparsity = Sparsity()) -> None:
    if out.suffix == ".md":
        out.write_text(format_table(rows) + "\n")
        return
    doc = {"dataset": "sklearn load_digits, stratified 80/20 split (seed 0): 1437 train / 360 test",
           "seed": seed, "budget": asdict(budget), "sparsity": asdict(sparsity), "rows": rows}
    out.write_text(json.dumps(doc, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.experiments", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", action="store_true", help="run every method and print the results table")
    what.add_argument("--ship", action="store_true", help="train the shipped PS4_P4 W8A8 checkpoint")
    parser.add_argument("--out", type=Path, help="table: .json or .md; ship: the .hwq (default: models/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = Data.digits()
    if args.ship:
        report = ship(args.out or SHIPPED, data, seed=args.seed)
        print(json.dumps(report, indent=2))
        return 0 if report["gap_points"] <= 100 * SHIP_MAX_GAP else 1
    rows = results_table(data, seed=args.seed)
    print(format_table(rows))
    if args.out:
        write_table(rows, args.out, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
