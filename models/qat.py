"""Quantization-aware training whose forward *is* the integer pipeline of `hwgen.reference`.

`QATNet` wraps any model hwgen can ingest (chains like `DigitsCNN` and `VGG16`, and residual
networks like `ResNet18`): the model goes through `torch.export` and `hwgen.ingest` once, the path a
user's model takes, which folds batch norm and names every node after its module. The net keeps
the weights of that graph's conv2d and linear nodes as trainable parameters. Its forward computes,
in float64 holding integers (exact: every product and sum here stays far below 2^53), exactly what
`hwgen.reference.run` computes on the exported checkpoint, node by node:

  input      x_q = round(x / s_x) clamped to signed A bits
  conv2d     acc = conv(x_q, w_q) + round(b / (s_in s_w)); y = clamp((acc M + 2^(S-1)) >> S, lo, hi)
  linear     the same; the classifier (the graph output) returns acc, the integer logits
  add        y = clamp((a Ma + b Mb + 2^(S-1)) >> S, lo, hi)          (the residual add)
  avgpool2d  y = clamp((window sum * M + 2^(S-1)) >> S, lo, hi)
  relu, maxpool2d, flatten move integers (a fused ReLU is the requant's lo = 0)

There is one definition of the scale and rounding rules: every forward quantizes the graph of the
current weights with `hwgen.quantize.quantize_graph` (given the current activation scales) and uses
that graph's integer weights, biases, (M, S) and add multipliers. Gradients pass straight through
every rounding (identity) and through each requantizer as its real ratio (M / 2^S, and Ma / 2^S,
Mb / 2^S for the two operands of an add) where its clamp is inactive. Activation scales start from
post-training calibration and follow an exponential moving average of each node's batch maximum
during training; they are frozen in eval mode, and `export` hands them to `quantize_graph`.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwgen import intmath
from hwgen.errors import HwgenError
from hwgen.ir import Graph
from hwgen.quantize import fused_relu, quantize_graph, quantize_input, scale_nodes

EMA_MOMENTUM = 0.1


class _RoundSTE(torch.autograd.Function):
    """Forward: a given exact integer tensor; backward: identity to `x`."""

    @staticmethod
    def forward(ctx, x, exact):
        return exact

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _RequantSTE(torch.autograd.Function):
    """Forward: `clamp((acc * M + 2^(S-1)) >> S, lo, hi)` exactly; backward: `M / 2^S` inside the range."""

    @staticmethod
    def forward(ctx, acc, mult, shift, lo, hi):
        # acc * M < 2^53 and 2^S is exact, so floor(./2^S) is the arithmetic shift.
        half = torch.exp2(shift.to(torch.float64) - 1)
        y = torch.floor((acc * mult + half) / (2 * half)).clamp(lo, hi)
        ctx.save_for_backward(mult / (2 * half), (y > lo) & (y < hi))
        return y

    @staticmethod
    def backward(ctx, grad):
        ratio, inside = ctx.saved_tensors
        return grad * ratio * inside, None, None, None, None


class QATLayer(nn.Module):
    """The trainable float weight and bias of one conv2d / linear node (batch norm folded in)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.array(weight, dtype=np.float32)))
        b = np.zeros(weight.shape[0], np.float32) if bias is None else np.array(bias, dtype=np.float32)
        self.bias = nn.Parameter(torch.from_numpy(b))


def ingest(model: nn.Module, input_shape: tuple[int, ...], name: str) -> Graph:
    """The float IR of `model` (eval mode) by `torch.export` and `hwgen.ingest`, named `name`."""
    from hwgen.ingest import load_model

    from .zoo import export_pt2

    float_copy = copy.deepcopy(model).cpu().float().eval()
    with tempfile.TemporaryDirectory() as tmp:
        pt2 = Path(tmp) / f"{name}.pt2"
        export_pt2(float_copy, input_shape, pt2)
        graph = load_model(pt2)
    graph.name = name
    return graph


class QATNet(nn.Module):
    """The ingested graph of a model, with trainable weights, whose forward is the integer pipeline.

    `forward(x)` returns the real logits (integer logits times their one scale: the argmax is the
    integer reference's), for the loss; `integer_logits(x)` the int64 logits themselves.
    `layers[i]` holds the weights of the graph node `layer_names[i]`; `source` maps each layer to
    the module of the original model it came from (for carrying sparsity masks).
    """

    def __init__(self, model: nn.Module, weight_bits: int, act_bits: int, calib_x: torch.Tensor,
                 name: str = "qat"):
        super().__init__()
        self.weight_bits = intmath.check_bits(weight_bits, "weight bits")
        self.act_bits = intmath.check_bits(act_bits, "activation bits")
        self.name = name
        self.input_shape = tuple(calib_x.shape[1:])
        self.base = ingest(model, self.input_shape, name)
        weighted = self.base.layers()
        self.layer_names = [n.name for n in weighted]
        self.layers = nn.ModuleList(QATLayer(n.weight, n.bias) for n in weighted)
        self._index = {n: i for i, n in enumerate(self.layer_names)}
        modules = dict(model.named_modules())
        self.source = {}
        for layer, node in zip(self.layers, weighted):
            original = modules.get(node.name)
            if original is None or tuple(original.weight.shape) != tuple(node.weight.shape):
                raise HwgenError(f"QAT: graph node '{node.name}' does not name a layer of the model")
            self.source[layer] = original
        device = next(model.parameters()).device
        # Start from post-training calibration: max |y| over calib_x, as quantize_graph does it.
        calibrated = quantize_graph(self.base, calib_x.cpu().numpy(), self.weight_bits, self.act_bits)
        self.scale_names = scale_nodes(calibrated)
        self._scale_index = {n: k for k, n in enumerate(self.scale_names)}
        self.register_buffer("act_scale", torch.tensor(
            [calibrated.node(n).quant.out_scale for n in self.scale_names], dtype=torch.float64))
        self.to(device)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.act_scale.device

    def weighted(self) -> list[QATLayer]:
        return list(self.layers)

    def layer(self, node_name: str) -> QATLayer:
        return self.layers[self._index[node_name]]

    def carry_masks(self, masks: dict) -> dict:
        """Sparsity masks of the original model's layers, re-keyed to this net's layers."""
        return {mine: masks[orig].to(self.device) for mine, orig in self.source.items() if orig in masks}

    def graph(self) -> Graph:
        """The float IR of the current weights."""
        g = self.base.copy()
        for name, layer in zip(self.layer_names, self.layers):
            node = g.node(name)
            node.weight = layer.weight.detach().cpu().numpy().copy()
            node.bias = layer.bias.detach().cpu().numpy().copy()
        return g

    def act_scales(self) -> dict[str, float]:
        """The activation scales for `quantize_graph`, keyed by node name."""
        return {n: float(s) for n, s in zip(self.scale_names, self.act_scale)}

    def quantized_graph(self) -> Graph:
        """The current weights quantized with the current activation scales: what export stores."""
        return quantize_graph(self.graph(), None, self.weight_bits, self.act_bits, self.act_scales())

    def _const(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a)).to(self.device)

    def _requant(self, acc: torch.Tensor, q) -> torch.Tensor:
        shape = (-1,) + (1,) * (acc.dim() - 2)
        r = q.requant
        return _RequantSTE.apply(acc, self._const(r.multiplier).double().reshape(shape),
                                 self._const(r.shift).reshape(shape), float(r.lo), float(r.hi))

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(integer logits as float64 with straight-through gradients, their real scale)."""
        qg = self.quantized_graph()
        last_use = {i: k for k, node in enumerate(qg.nodes) for i in node.inputs}
        values = {qg.input.name: self._const(quantize_input(qg, x.detach().cpu().numpy())).double()}
        for k, node in enumerate(qg.nodes[1:], start=1):
            q = node.quant
            ins = [values[i] for i in node.inputs]
            h = ins[0] if ins else None
            if node.op == "relu":
                y = h.clamp(min=0)
            elif node.op == "flatten":
                y = h.flatten(1)
            elif node.op == "maxpool2d":
                a = node.attrs
                y = nn.functional.max_pool2d(h, a["kernel"], a["stride"], a["padding"])
            elif node.op == "avgpool2d":
                a = node.attrs
                acc = nn.functional.avg_pool2d(h, a["kernel"], a["stride"], a["padding"], count_include_pad=True,
                                               divisor_override=1)  # the window sum
                in_scale = qg.node(node.inputs[0]).quant.out_scale / (a["kernel"][0] * a["kernel"][1])
                self._observe(qg, node, acc * in_scale)
                y = self._requant(acc, q)
            elif node.op == "add":
                ma, mb = q.input_multipliers
                s_a, s_b = (qg.node(i).quant.out_scale for i in node.inputs)
                self._observe(qg, node, ins[0] * s_a + ins[1] * s_b)
                y = self._requant(ins[0] * ma + ins[1] * mb, q)
            elif node.op in ("conv2d", "linear"):
                layer = self.layer(node.name)
                s_in = qg.node(node.inputs[0]).quant.out_scale
                s_w = self._const(q.weight_scale)
                w = _RoundSTE.apply(layer.weight.double() / s_w.reshape((-1,) + (1,) * (layer.weight.dim() - 1)),
                                    self._const(q.weight).double())
                b = _RoundSTE.apply(layer.bias.double() / (s_in * s_w), self._const(q.bias).double())
                if node.op == "conv2d":
                    a = node.attrs
                    acc = nn.functional.conv2d(h, w, b, a["stride"], a["padding"], a["dilation"], a["groups"])
                else:
                    acc = nn.functional.linear(h, w, b)
                if q.requant is None:  # the classifier: raw accumulators are the logits
                    return acc, q.out_scale
                self._observe(qg, node, acc * (s_in * s_w).reshape((1, -1) + (1,) * (acc.dim() - 2)))
                y = self._requant(acc, q)
            else:
                raise HwgenError(f"QAT: node '{node.name}': op '{node.op}' is not supported")
            values[node.name] = y
            for i in node.inputs:  # free what no later node reads
                if last_use[i] == k:
                    values.pop(i, None)
        raise HwgenError("QAT: the graph does not end with a linear classifier")

    def _observe(self, qg: Graph, node, real: torch.Tensor) -> None:
        """In training, EMA of the batch maximum of a node's real output, as its next scale."""
        if not self.training:
            return
        real = real.detach()
        unsigned = fused_relu(qg, node)
        batch_max = float(real.clamp(min=0).max() if unsigned else real.abs().max())
        if batch_max <= 0:  # a batch on which the node is silent says nothing about its range
            return
        k = self._scale_index[node.name]
        qmax = intmath.qrange(self.act_bits, signed=not unsigned)[1]
        with torch.no_grad():
            self.act_scale[k] = (1 - EMA_MOMENTUM) * self.act_scale[k] + EMA_MOMENTUM * batch_max / qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc, scale = self._forward(x)
        return acc * scale

    @torch.no_grad()
    def integer_logits(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        self.eval()
        return np.concatenate([self._forward(x[i:i + batch_size])[0].cpu().numpy().astype(np.int64)
                               for i in range(0, len(x), batch_size)])


def export(net: QATNet, path) -> Graph:
    """Write the `.hwq` checkpoint of `net` (and return its quantized graph): the ingested graph
    with the trained weights, quantized with the learned activation scales, so the checkpoint
    computes what `net` computes."""
    from hwgen import checkpoint

    qg = net.quantized_graph()
    checkpoint.save(qg, path)
    return qg
