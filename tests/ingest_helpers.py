"""Shared by the ingestion, sparsity and inspect tests: exporting, archive surgery, a torch IR forward."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwgen.ir import Graph


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial statistics and affine terms, so folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d | nn.BatchNorm1d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if mod.affine:
                    mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def export(model: nn.Module, input_shape, path: Path, decompose: bool = False) -> Path:
    """`torch.export.save` of `model` in eval mode (optionally after `run_decompositions`)."""
    program = torch.export.export(model.eval(), (torch.zeros(1, *input_shape),))
    if decompose:
        program = program.run_decompositions()
    torch.export.save(program, str(path))
    return path


def rewrite_zip(src: Path, dst: Path, edit) -> Path:
    """Copy a zip member by member; `edit(name, data)` returns new bytes, or None to drop the member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def member(path: Path, suffix: str) -> str:
    """The one archive member whose name ends with `suffix`."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(suffix)]
    assert len(names) == 1, names
    return names[0]


def torch_forward(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Evaluate the float IR with torch.nn.functional (batch of one), independently of hwgen's runners."""
    vals = {}
    for n in graph.nodes:
        ins = [vals[i] for i in n.inputs]
        a = n.attrs
        if n.op == "input":
            y = torch.from_numpy(np.asarray(x, dtype=np.float32))[None]
        elif n.op == "conv2d":
            b = None if n.bias is None else torch.from_numpy(n.bias)
            y = F.conv2d(ins[0], torch.from_numpy(n.weight), b, a["stride"], a["padding"], a["dilation"], a["groups"])
        elif n.op == "linear":
            b = None if n.bias is None else torch.from_numpy(n.bias)
            y = F.linear(ins[0], torch.from_numpy(n.weight), b)
        elif n.op == "relu":
            y = F.relu(ins[0])
        elif n.op == "maxpool2d":
            y = F.max_pool2d(ins[0], a["kernel"], a["stride"], a["padding"])
        elif n.op == "avgpool2d":
            y = F.avg_pool2d(ins[0], a["kernel"], a["stride"], a["padding"], count_include_pad=True)
        elif n.op == "add":
            y = ins[0] + ins[1]
        elif n.op == "flatten":
            y = torch.flatten(ins[0], 1)
        else:
            raise AssertionError(f"unknown op {n.op}")
        vals[n.name] = y
    return vals[graph.output][0].numpy()


def assert_same_output(model: nn.Module, graph: Graph, seed: int = 1) -> None:
    """The IR's float forward equals the torch module's on a random input, to float32 rounding."""
    x = torch.randn(1, *graph.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want = model.eval()(x)[0].numpy()
    got = torch_forward(graph, x[0].numpy())
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
