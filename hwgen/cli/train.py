"""Train a zoo model (ResNet-18, VGG-16, the digits CNN) dense, periodic-sparse, pattern-pruned or
unstructured-pruned, on the digits data or a data set of your own, quantize it with quantization-aware
training and write an hwgen checkpoint; or run a results table.

Examples:
  hwgen train --method periodic --scheme PS4_P4 --bits 8 --out models/digits_ps4p4_w8a8.hwq
  hwgen train --method pattern --connectivity 0.25 --bits 4 --out pattern_w4a4.hwq
  hwgen train --method dense --out dense.pt2          (float only: a torch.export program)
  hwgen train --table --out results.json               (every method, float / W8A8 / W4A4)

  # the pre-defined sparsity paper's ResNet-18 rows on CIFAR-10 (ImageFolder or .npz on disk)
  hwgen train --model resnet18-cifar --preset paper-cifar10 --data cifar10/ --method periodic \\
      --scheme PSD1_P16 --bits 8 --checkpoint-dir runs/psd1 --out resnet18_psd1_p16_w8a8.hwq
  hwgen train --table --model resnet18-cifar --width 16 --scheme PSD1_P16 --bits 8   (digits at 32x32)

--data is a folder of class sub-folders of images (optionally train/ and test/ or val/ inside), or an
.npz with x (N, C, H, W) and y (optionally x_test, y_test); without it the digits of scikit-learn,
upscaled to the model's input size. Without a test part the data are split 80/20 (fixed seed).
Accuracies are top-1 on the test part; quantized accuracies are measured by the integer reference
on the written checkpoint. Training is deterministic on one machine: the same arguments write a
byte-identical file, and a run resumed from --checkpoint-dir ends exactly as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from contextlib import nullcontext
from pathlib import Path

from .. import intmath
from ..errors import HwgenError

METHODS = ("dense", "periodic", "pattern", "unstructured")
MODELS = ("digits", "resnet18-cifar", "resnet18-tiny", "vgg16")
NATIVE_SIDE = {"digits-cnn": 8, "resnet18-cifar": 32, "resnet18-tiny": 64, "vgg16-tiny": 64}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--table", action="store_true", help="run the methods (digits: all five; other models: "
                        "dense and --scheme) at float and each bit width and print the results table "
                        "(--out: .json or .md)")
    parser.add_argument("--method", choices=METHODS, help="how the sparse convolutions are made sparse")
    parser.add_argument("--out", type=Path, help="output: .hwq (quantized, plus the float model beside it as .pt2) "
                        "or .pt2 (float only); with --table .json or .md")
    parser.add_argument("--model", default="digits", help=f"architecture: {', '.join(MODELS)} (default digits)")
    parser.add_argument("--width", type=int, help="channels of the first stage (ResNet-18 / VGG-16: 64, digits: 16);"
                        " later stages scale with it")
    parser.add_argument("--data", type=Path, help="image folder (ImageFolder layout) or .npz with x, y "
                        "(default: the digits, upscaled to the model's input size)")
    parser.add_argument("--preset", default="digits", help="training recipe: digits, paper-cifar10, paper-tiny "
                        "(default digits; docs/models.md lists them); the options below override it")
    parser.add_argument("--scheme", default="PS4_P4", help="periodic scheme: pSC<n>, PS<n>_P<P>, PSD<n>_P<P> "
                        "(default PS4_P4)")
    parser.add_argument("--bits", type=int, default=8, help="weight bits (and activation bits unless "
                        "--act-bits), 2..8 (default 8)")
    parser.add_argument("--act-bits", type=int, help="activation bits, 2..8 (default: --bits)")
    parser.add_argument("--epochs", type=int, help="epochs from scratch")
    parser.add_argument("--qat-epochs", type=int, help="quantization-aware training epochs")
    parser.add_argument("--lr", type=float, help="learning rate from scratch")
    parser.add_argument("--qat-lr", type=float, help="learning rate of quantization-aware training")
    parser.add_argument("--batch-size", type=int, help="images per step")
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), help="optimizer")
    parser.add_argument("--schedule", choices=("cosine", "multistep"), help="learning-rate schedule: cosine "
                        "annealing, or x gamma at --milestones")
    parser.add_argument("--milestones", help="multistep: comma-separated fractions of the epochs, e.g. 0.5,0.75")
    parser.add_argument("--augment", choices=("none", "crop-flip"), help="training augmentation")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when present")
    parser.add_argument("--threads", type=int, help="CPU threads (default 1; the result depends on it)")
    parser.add_argument("--checkpoint-dir", type=Path, help="save every epoch there and resume from it")
    parser.add_argument("--stop-after-epochs", type=int, help="with --checkpoint-dir: stop (exit 75) after this "
                        "many epochs; the same command resumes")
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


def budget_of(args):
    """The preset named by --preset with the command line's overrides."""
    from models.experiments import PRESETS

    if args.preset not in PRESETS:
        raise HwgenError(f"unknown preset '{args.preset}' (choose from {', '.join(PRESETS)})")
    budget = PRESETS[args.preset]
    for field, value in (("epochs", args.epochs), ("qat_epochs", args.qat_epochs)):
        if value is not None:
            if value < 0:
                raise HwgenError(f"--{field.replace('_', '-')} must be >= 0, got {value}")
            budget = dataclasses.replace(budget, **{field: value})
    for field, value in (("lr", args.lr), ("qat_lr", args.qat_lr)):
        if value is not None:
            if not value > 0:
                raise HwgenError(f"--{field.replace('_', '-')} must be > 0, got {value}")
            budget = dataclasses.replace(budget, **{field: value})
    fit = budget.fit
    changes = {k: v for k, v in (("batch_size", args.batch_size), ("optimizer", args.optimizer),
                                 ("augment", args.augment), ("device", args.device), ("threads", args.threads))
               if v is not None}
    if args.schedule == "cosine":
        changes["milestones"] = ()
    if args.milestones is not None:
        if args.schedule == "cosine":
            raise HwgenError("--milestones needs --schedule multistep")
        try:
            changes["milestones"] = tuple(float(m) for m in args.milestones.split(","))
        except ValueError:
            raise HwgenError(f"--milestones must be comma-separated numbers, got '{args.milestones}'") from None
    elif args.schedule == "multistep" and not fit.milestones:
        raise HwgenError("--schedule multistep needs --milestones")
    budget = dataclasses.replace(budget, fit=dataclasses.replace(fit, **changes))
    budget.fit.torch_device()  # fail now, not after loading the data, if cuda is asked for and absent
    return budget


def load_data(args, arch):
    """(Data, description) for --data, or the digits upscaled to the model's native input size."""
    from hwgen import datasets
    from models.train import Data

    from models.experiments import DIGITS

    side = NATIVE_SIDE[arch.name]
    if args.data is None:
        ds = datasets.digits_dataset(side)
        what = DIGITS + ("" if side == datasets.INPUT_SHAPE[-1] else f", upscaled to {side}x{side}")
    else:
        # folder images are resized to the model's native size; an .npz's images size the model
        ds = datasets.load_dataset(args.data, None, side if args.data.is_dir() else None)
        what = f"{args.data}: {len(ds.y_train)} train / {len(ds.y_test)} test, {len(ds.classes)} classes"
    return Data.from_numpy(*ds.arrays()), what


# Options that do not change the result: a resumed run may differ in them (a benchmark writes its
# table to a fresh temporary --out on every resume).
_NOT_RESULT = ("checkpoint_dir", "out", "stop_after_epochs", "no_progress", "json", "func", "command")


def _claim(directory: Path, args) -> None:
    """Record the run's arguments in the checkpoint directory; refuse a directory of another run."""
    run = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items()) if k not in _NOT_RESULT}
    directory.mkdir(parents=True, exist_ok=True)
    record = directory / "run.json"
    text = json.dumps(run, indent=2, sort_keys=True) + "\n"
    if record.exists() and record.read_text() != text:
        raise HwgenError(f"{directory} holds the checkpoints of a run with other arguments ({record}); "
                         "use another --checkpoint-dir")
    record.write_text(text)


def _table(args, ex, data, what, arch, budget, sparsity, progress) -> int:
    bits = (8, 4) if arch.name == "digits-cnn" and args.bits == 8 and args.act_bits is None else (args.bits,)
    rows = ex.results_table(data, arch=arch, seed=args.seed, budget=budget, sparsity=sparsity, bits=bits,
                            progress=progress)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{arch.name}{'' if arch.width is None else f' (width {arch.width})'} on {what}")
        print(ex.format_table(rows))
        twin = rows[0]["float"]
        for r in rows[1:]:
            gaps = ", ".join(f"W{b}A{b} {100 * (twin - r[f'w{b}a{b}']):+.2f}" for b in bits)
            print(f"{r['label']}: dense float twin minus integer reference, points: {gaps}")
    if args.out is not None:
        ex.write_table(rows, args.out, seed=args.seed, budget=budget, sparsity=sparsity, arch=arch, dataset=what)
    return 0


def run(args) -> int:
    from models import experiments as ex
    from models.train import checkpointing, evaluate
    from models.zoo import export_pt2

    if args.table == (args.method is not None):
        raise HwgenError("give either --table or --method")
    intmath.check_bits(args.bits, "--bits")
    if args.act_bits is not None:
        intmath.check_bits(args.act_bits, "--act-bits")
    if args.stop_after_epochs is not None and (args.checkpoint_dir is None or args.stop_after_epochs < 1):
        raise HwgenError("--stop-after-epochs needs --checkpoint-dir and a count >= 1")
    budget = budget_of(args)
    arch = ex.Arch(args.model, args.width)
    sparsity = ex.Sparsity(scheme=args.scheme, library_size=args.library_size, connectivity=args.connectivity,
                           solver=args.pattern_solver, sparsity=args.sparsity)
    if args.table and args.out is not None and args.out.suffix not in (".json", ".md"):
        raise HwgenError(f"--out for the table must end in .json or .md, got '{args.out}'")
    if not args.table and (args.out is None or args.out.suffix not in (".hwq", ".pt2")):
        raise HwgenError("--out must name a .hwq (quantized) or .pt2 (float) file")
    progress = not args.no_progress
    data, what = load_data(args, arch)
    if args.checkpoint_dir is not None:
        _claim(args.checkpoint_dir, args)
    resumable = checkpointing(args.checkpoint_dir, args.stop_after_epochs) if args.checkpoint_dir else nullcontext()
    with resumable:
        if args.table:
            return _table(args, ex, data, what, arch, budget, sparsity, progress)
        trained = ex.train_float(args.method, data, arch=arch, seed=args.seed, budget=budget, sparsity=sparsity,
                                 progress=progress)
        result = {"model": arch.name, "width": arch.width, "data": what, "method": args.method,
                  "label": trained.label, "out": str(args.out), "density": ex.sparse_density(trained.model),
                  "float": evaluate(trained.model, data.x_test, data.y_test)}
        export_pt2(copy.deepcopy(trained.model).cpu(), data.input_shape, args.out.with_suffix(".pt2"))
        if args.out.suffix == ".hwq":
            acc = ex.quantize_and_measure(trained, args.bits, data, args.out, act_bits=args.act_bits,
                                          seed=args.seed, budget=budget, progress=progress)
            a_bits = args.bits if args.act_bits is None else args.act_bits
            result.update({"weight_bits": args.bits, "act_bits": a_bits, "integer_reference": acc["reference"],
                           "qat": acc["qat"], "float_model": str(args.out.with_suffix(".pt2"))})
    result["bytes"] = args.out.stat().st_size
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        quant = (f", W{result['weight_bits']}A{result['act_bits']} integer reference "
                 f"{100 * result['integer_reference']:.2f}%" if "integer_reference" in result else "")
        print(f"{result['label']}: sparse-conv density {result['density']:.3f}, float {100 * result['float']:.2f}%"
              f"{quant} -> {args.out} ({result['bytes']} bytes)")
    return 0
