"""Which model-zoo architectures hwgen accepts, through each way users export them.

For ResNet-18, VGG-11, MobileNetV2, SqueezeNet 1.0, MnasNet 0.5, ShuffleNetV2 and DenseNet-121
(`models.imagenet`, torchvision's definitions, 3 x 224 x 224 input), exported three ways:
  - `.pt2`: `torch.export.export` + `torch.export.save`;
  - ONNX, legacy exporter: `torch.onnx.export(..., dynamo=False)`;
  - ONNX, dynamo exporter: `torch.onnx.export(..., dynamo=True)` (torch's default; needs onnxscript),
each cell runs `hwgen inspect` and `hwgen analyze` (generic architecture, mapping search) through
the CLI and prints `ok` with the MAC count, or the one-line reason either refused. Prints a Markdown
table (the README's) and exits non-zero if any command ended with anything but 0 or a one-line 2.

    .venv/bin/python benchmarks/zoo_ingest.py [--models ResNet-18,DenseNet-121] [--exporters pt2,legacy,dynamo]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from hwgen.cli import main
from models.imagenet import IMAGE, MODELS

EXPORTERS = {"pt2": ".pt2 (torch.export)", "legacy": "ONNX, dynamo=False", "dynamo": "ONNX, dynamo=True"}


def export(model, kind: str, path: Path) -> None:
    x = (torch.zeros(1, *IMAGE),)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if kind == "pt2":
            torch.export.save(torch.export.export(model, x), str(path))
        else:
            torch.onnx.export(model, x, str(path), dynamo=kind == "dynamo", verbose=False)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue().strip()


def cell(path: Path) -> tuple[str, bool]:
    """The table cell for one exported file, and whether every command kept the exit contract."""
    rc, out, err = run(["inspect", str(path), "--json", "-"])
    honest = rc == 0 or (rc == 2 and len(err.splitlines()) == 1)
    if rc != 0:
        return f"inspect: {_reason(err)}", honest
    macs = json.loads(out)["totals"]["macs"]
    rc, _, err = run(["analyze", str(path), "--json", str(path.with_suffix(".analysis.json"))])
    honest &= rc == 0 or (rc == 2 and len(err.splitlines()) == 1)
    if rc != 0:
        return f"inspect ok ({macs / 1e9:.2f} GMAC); analyze: {_reason(err)}", honest
    return f"ok ({macs / 1e9:.2f} GMAC)", honest


def _reason(err: str) -> str:
    """The error line without the command prefix and the temporary path."""
    line = err.splitlines()[-1] if err else "(no message)"
    for prefix in ("hwgen inspect: error: ", "hwgen analyze: error: "):
        line = line.removeprefix(prefix)
    return line.split(": ", 1)[1] if line.startswith("/") else line


def main_(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated names from models.imagenet.MODELS")
    p.add_argument("--exporters", default=",".join(EXPORTERS), help="comma-separated: pt2, legacy, dynamo")
    args = p.parse_args(argv)
    names, kinds = args.models.split(","), args.exporters.split(",")
    torch.manual_seed(0)
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model = MODELS[name]().eval()
            cells = []
            for kind in kinds:
                path = Path(tmp) / f"{name.replace(' ', '_')}-{kind}{'.pt2' if kind == 'pt2' else '.onnx'}"
                start = time.perf_counter()
                try:
                    export(model, kind, path)
                except Exception as e:  # the exporter's own failure, not hwgen's
                    cells.append(f"export failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
                    continue
                text, honest = cell(path)
                ok &= honest
                cells.append(text)
                path.unlink()
                print(f"{name} / {kind}: {text} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
            rows.append((name, cells))
            del model
    print("| model | " + " | ".join(EXPORTERS[k] for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main_())
