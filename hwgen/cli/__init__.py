"""The `hwgen` command line: one module per subcommand, each with `add_arguments` and `run`.

Command modules import heavy dependencies (torch, amaranth) inside `run`, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import HwgenError

# (subcommand, module under hwgen.cli, one-line help)
COMMANDS = [
    ("inspect", "inspect", "show a model's layers, shapes and sparsity structure"),
    ("quantize", "quantize", "post-training quantization into an hwgen integer checkpoint"),
    ("run", "run", "run the bit-exact integer reference on inputs"),
    ("train", "train", "train pattern-sparse, quantized zoo models on the digits or your own data"),
    ("eval", "eval", "top-1 accuracy of a checkpoint on a data set, by the integer reference"),
    ("analyze", "analyze", "weight formats, DRAM traffic and energy on a memory hierarchy"),
    ("generate", "generate", "generate the periodic-sparse convolution engine as Verilog"),
    ("simulate", "simulate", "verify the generated Verilog in cocotb against the reference"),
    ("sweep", "sweep", "design-space exploration: a resumable sweep of engines and analyses, Pareto fronts"),
    ("verify", "verify", "a randomized verification campaign: random layers, engines and stalls, bit for bit"),
    ("implement", "implement", "FPGA place-and-route (Fmax, utilization) or an ASIC estimate of a generated engine"),
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="hwgen",
        description="Hardware/model co-design for quantized, pattern-sparse CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, help_ in COMMANDS:
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{module}":
                continue  # subcommand not built yet
            raise
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HwgenError as e:
        print(f"hwgen {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"hwgen {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in hwgen, not in the input: still one line, traceback on request
        if os.environ.get("HWGEN_DEBUG"):
            raise
        print(f"hwgen {args.command}: internal error: {type(e).__name__}: {e} (set HWGEN_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
