"""The results table and the shipped checkpoint: every sparsity method, float and quantized, on digits.

    python -m models.experiments --table [--out results.json|results.md]
    python -m models.experiments --ship [--out models/digits_ps4p4_w8a8.hwq]

(the same as `hwgen train --table` and `hwgen train --method periodic --scheme PS4_P4 --bits 8`).

Each row is one method on a zoo model (`Arch`; the DigitsCNN by default, where every method runs;
other models run dense and periodic by default): dense, periodic (pre-defined masks from initialisation),
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

import numpy as np
import torch
from torch import nn

from hwgen.errors import HwgenError

from . import pattern_pruning, periodic, unstructured
from . import zoo
from .qat import QATNet, export
from .train import Data, FitOptions, evaluate, fit

METHODS = ("dense", "periodic", "pattern", "unstructured")
PATTERN_SOLVERS = ("admm", "iterative")
SHIPPED = Path(__file__).with_name("digits_ps4p4_w8a8.hwq")
SHIP_SCHEME = "PS4_P4"
SHIP_MAX_GAP = 0.015  # done-when: integer accuracy within 1.5 points of the float dense twin


CALIB_IMAGES = 2048  # QAT's initial activation scales: calibrated on at most this many training images


@dataclass(frozen=True)
class Budget:
    """A training recipe: epochs and learning rate of each phase, and how `fit` trains (`fit`).

    The default is the digits recipe (the digits CNN trains in about 0.2 s per epoch).
    """

    epochs: int = 15  # from scratch: dense and periodic
    prune_epochs: int = 8  # ADMM epochs, or fine-tuning epochs per pruning round
    retrain_epochs: int = 8  # masked retraining after the ADMM hard prune
    qat_epochs: int = 4
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    qat_lr: float = 3e-4
    fit: FitOptions = FitOptions()


# The pre-defined sparsity paper's public training script (ksouvik52/Pre-defined-sparseCNN, the CIFAR-10
# wrappers): 150 epochs, batch 128, SGD lr 0.1 momentum 0.9 weight decay 5e-4, lr x0.2 at epochs 40, 80,
# 100, 115, 130, 140, random crop (4-pixel padding) and horizontal flip. The pruning and QAT phases are
# not in that paper: their epochs and rates are ours, at a tenth and a hundredth of its learning rate.
_PAPER_FIT = FitOptions(optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                        milestones=tuple(e / 150 for e in (40, 80, 100, 115, 130, 140)), gamma=0.2,
                        batch_size=128, augment="crop-flip")
PRESETS = {
    "digits": Budget(),
    "paper-cifar10": Budget(epochs=150, prune_epochs=30, retrain_epochs=30, qat_epochs=10, lr=0.1,
                            finetune_lr=0.01, qat_lr=0.001, fit=_PAPER_FIT),
    "paper-tiny": Budget(epochs=150, prune_epochs=30, retrain_epochs=30, qat_epochs=10, lr=0.1,
                         finetune_lr=0.01, qat_lr=0.001, fit=_PAPER_FIT),
}


@dataclass(frozen=True)
class Arch:
    """Which zoo model to train (`zoo.make`), and at what width (None: the paper's)."""

    name: str = "digits-cnn"
    width: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "name", zoo.canonical(self.name))

    def build(self, data: Data, seed: int, device=None) -> nn.Module:
        torch.manual_seed(seed)
        model = zoo.make(self.name, data.num_classes, data.input_shape, self.width)
        return model.to(device) if device is not None else model


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
    arch: str = "digits-cnn"


def new_model(seed: int) -> nn.Module:
    """The digits CNN, seeded."""
    return Arch().build(Data.digits(), seed)


def sparse_density(model: nn.Module) -> float:
    """Nonzero / total weights over the sparse convolutions (3x3, not the first)."""
    convs = periodic.sparse_convs(model)
    return sum(int(torch.count_nonzero(c.weight)) for c in convs) / sum(c.weight.numel() for c in convs)


def train_float(method: str, data: Data, *, arch: Arch = Arch(), seed: int = 0, budget: Budget = Budget(),
                sparsity: Sparsity = Sparsity(), dense: nn.Module | None = None,
                progress: bool = True) -> Trained:
    """A float `arch` trained by `method`; pruning methods start from `dense` (trained if None)."""
    if method not in METHODS:
        raise HwgenError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    device = budget.fit.torch_device()
    if method == "periodic":
        scheme = periodic.parse_scheme(sparsity.scheme)
        model = arch.build(data, seed, device)
        masks = periodic.apply_periodic(model, scheme)
        fit(model, data, budget.epochs, budget.lr, seed, options=budget.fit, masks=masks, progress=progress,
            desc=f"train {scheme.name}")
        return Trained(model, masks, scheme.name, arch.name)
    if dense is None:
        dense = arch.build(data, seed, device)
        fit(dense, data, budget.epochs, budget.lr, seed, options=budget.fit, progress=progress, desc="train dense")
    if method == "dense":
        return Trained(dense, {}, "dense", arch.name)
    model = copy.deepcopy(dense)
    if method == "pattern":
        common = dict(k=sparsity.library_size, taps=sparsity.taps, connectivity=sparsity.connectivity,
                      lr=budget.finetune_lr, seed=seed, progress=progress, options=budget.fit)
        if sparsity.solver == "admm":
            masks, _ = pattern_pruning.admm_prune(model, data, admm_epochs=budget.prune_epochs,
                                                  retrain_epochs=budget.retrain_epochs, **common)
        else:
            masks, _ = pattern_pruning.iterative_prune(model, data, epochs_per_round=budget.prune_epochs, **common)
        label = (f"pattern K={sparsity.library_size} {sparsity.taps}-tap conn={sparsity.connectivity:g} "
                 f"({sparsity.solver})")
        return Trained(model, masks, label, arch.name)
    target = sparsity.unstructured_sparsity()
    masks = unstructured.magnitude_prune(model, data, target, epochs_per_round=budget.prune_epochs,
                                         lr=budget.finetune_lr, seed=seed, progress=progress, options=budget.fit)
    return Trained(model, masks, f"unstructured {target:.0%} (global)", arch.name)


def quantization_aware(trained: Trained, weight_bits: int, data: Data, *, act_bits: int | None = None,
                       seed: int = 0, budget: Budget = Budget(), progress: bool = True) -> QATNet:
    """QAT fine-tuning at `weight_bits` / `act_bits` (default: the same), keeping the sparsity masks."""
    a_bits = weight_bits if act_bits is None else act_bits
    prefix = "digits" if trained.arch == "digits-cnn" else trained.arch
    net = QATNet(trained.model, weight_bits, a_bits, data.x_train[:CALIB_IMAGES],
                 name=f"{prefix}_{trained.label.split()[0]}_w{weight_bits}a{a_bits}")
    fit(net, data, budget.qat_epochs, budget.qat_lr, seed, options=budget.fit, masks=net.carry_masks(trained.masks),
        progress=progress, desc=f"qat w{weight_bits}a{a_bits}")
    return net


REFERENCE_BATCH = 64  # images per call of the integer reference (its im2col holds a batch in int64)


def reference_logits(graph, x, progress: bool = False) -> np.ndarray:
    """The integer reference's logits of a quantized graph on float images `x` (N, C, H, W), in batches."""
    from tqdm import tqdm

    from hwgen import reference
    from hwgen.quantize import quantize_input

    x = np.asarray(x)
    starts = range(0, len(x), REFERENCE_BATCH)
    return np.concatenate([reference.run(graph, quantize_input(graph, x[i:i + REFERENCE_BATCH]))
                           for i in tqdm(starts, desc="integer reference", unit="batch", leave=False,
                                         disable=not progress)])


def checkpoint_accuracy(path, data: Data, progress: bool = False) -> float:
    """Top-1 accuracy of a `.hwq` checkpoint, by the integer reference on the test split."""
    from hwgen import checkpoint

    logits = reference_logits(checkpoint.load(path), data.x_test.numpy(), progress)
    return float((logits.argmax(1) == data.y_test.numpy()).mean())


def quantize_and_measure(trained: Trained, weight_bits: int, data: Data, path, *, act_bits: int | None = None,
                         seed: int = 0, budget: Budget = Budget(), progress: bool = True) -> dict:
    """QAT, export to `path`, and both accuracies: the QAT net's and the checkpoint's (reference)."""
    net = quantization_aware(trained, weight_bits, data, act_bits=act_bits, seed=seed, budget=budget,
                             progress=progress)
    export(net, path)
    return {"qat": evaluate(net, data.x_test, data.y_test), "reference": checkpoint_accuracy(path, data, progress)}


def default_runs(arch: Arch, sparsity: Sparsity) -> list[tuple[str, Sparsity]]:
    """The rows of the table: every method on the digits CNN; dense and the periodic scheme otherwise
    (a pruning row of a full-size network is hours on a CPU)."""
    if arch.name != "digits-cnn":
        return [("dense", sparsity), ("periodic", sparsity)]
    return [("dense", sparsity), ("periodic", sparsity), ("pattern", replace(sparsity, solver="admm")),
            ("pattern", replace(sparsity, solver="iterative")), ("unstructured", sparsity)]


def results_table(data: Data, *, arch: Arch = Arch(), seed: int = 0, budget: Budget = Budget(),
                  sparsity: Sparsity = Sparsity(), bits: tuple[int, ...] = (8, 4),
                  runs: list[tuple[str, Sparsity]] | None = None, progress: bool = True) -> list[dict]:
    """One row per method: density, float accuracy, and per bit width the reference accuracy."""
    dense = train_float("dense", data, arch=arch, seed=seed, budget=budget, progress=progress).model
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method, sp in runs or default_runs(arch, sparsity):
            trained = train_float(method, data, arch=arch, seed=seed, budget=budget, sparsity=sp, dense=dense,
                                  progress=progress)
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


DIGITS = "sklearn load_digits, stratified 80/20 split (seed 0): 1437 train / 360 test"


def write_table(rows: list[dict], out: Path, *, seed: int, budget: Budget = Budget(),
                sparsity: Sparsity = Sparsity(), arch: Arch = Arch(), dataset: str = DIGITS) -> None:
    if out.suffix == ".md":
        out.write_text(format_table(rows) + "\n")
        return
    doc = {"dataset": dataset, "model": asdict(arch), "seed": seed, "budget": asdict(budget),
           "sparsity": asdict(sparsity), "rows": rows}
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
