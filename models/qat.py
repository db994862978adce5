"""Quantization-aware training whose forward *is* the integer pipeline of `hwgen.reference`.

`QATNet` is a copy of a chain model (`features` then `classifier`, like `DigitsCNN` and `VGG16`)
with batch norm folded into the convolutions, so its weights are the ones the checkpoint stores.
Its forward computes, in float64 holding integers (exact: every product and sum here stays far
below 2^53), exactly what `hwgen.reference.run` computes on the exported checkpoint:

  x_q  = round(x / s_x) clamped to signed A bits                  (network input)
  w_q  = per-output-channel symmetric W-bit weights              (the classifier: one scale)
  acc  = conv(x_q, w_q) + round(b / (s_in * s_w))                 (bias in accumulator units)
  y_q  = clamp((acc * M + 2^(S-1)) >> S, 0, 2^A - 1)              (M, S = quantize_multiplier(s_in s_w / s_out))
  max pooling and flatten move integers; the classifier returns acc, the integer logits.

There is one definition of the scale and rounding rules: every forward builds the IR of the current
weights and quantizes it with `hwgen.quantize.quantize_graph` (given the current activation
scales), and uses the integer weights, biases and (M, S) of that graph. Gradients pass straight through every rounding
(identity), and through the requantizer as its real ratio M / 2^S where the clamp is inactive.
Activation scales are observed with an exponential moving average of each layer's batch maximum
during training and frozen in eval mode; `export` hands them to `quantize_graph(act_scales=...)`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from hwgen import intmath
from hwgen.errors import HwgenError
from hwgen.ir import Graph, Node
from hwgen.quantize import quantize_graph, quantize_input, scale_nodes

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
        half = torch.tensor([2.0 ** (int(s) - 1) for s in shift.flatten()], dtype=torch.float64).reshape(shift.shape)
        y = torch.floor((acc * mult + half) / (2 * half)).clamp(lo, hi)
        ctx.save_for_backward(mult / (2 * half), (y > lo) & (y < hi))
        return y

    @staticmethod
    def backward(ctx, grad):
        ratio, inside = ctx.saved_tensors
        return grad * ratio * inside, None, None, None, None


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias equal to `bn(conv(x))` in eval mode."""
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True)
    with torch.no_grad():
        gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        folded.weight.copy_(conv.weight * gain.reshape(-1, 1, 1, 1))
        folded.bias.copy_(bn.bias + (bias - bn.running_mean) * gain)
    return folded


def _chain(model: nn.Module) -> list[nn.Module]:
    """The leaf layers of a features -> flatten -> classifier model, batch norm folded, in order."""
    if not (isinstance(getattr(model, "features", None), nn.Sequential)
            and isinstance(getattr(model, "classifier", None), (nn.Sequential, nn.Linear))):
        raise HwgenError(f"QAT supports chain models (features, flatten, classifier); "
                         f"{type(model).__name__} is not one")
    classifier = model.classifier if isinstance(model.classifier, nn.Sequential) else [model.classifier]
    leaves = list(model.features) + [nn.Flatten()] + list(classifier)
    out: list[nn.Module] = []
    for layer in leaves:
        if isinstance(layer, nn.BatchNorm2d):
            if not out or not isinstance(out[-1], nn.Conv2d):
                raise HwgenError("QAT: batch norm must directly follow a convolution")
            out[-1] = fold_batchnorm(out[-1], layer)
        elif isinstance(layer, (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten)):
            out.append(copy.deepcopy(layer))
        elif not isinstance(layer, (nn.Identity, nn.Dropout)):
            raise HwgenError(f"QAT: unsupported layer {type(layer).__name__}")
    for layer in out:
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(layer.weight.shape[0]))
    weighted = [i for i, layer in enumerate(out) if isinstance(layer, (nn.Conv2d, nn.Linear))]
    if not weighted or not isinstance(out[weighted[-1]], nn.Linear) or weighted[-1] != len(out) - 1:
        raise HwgenError("QAT: the model must end with a linear classifier")
    for i in weighted[:-1]:
        if i + 1 >= len(out) or not isinstance(out[i + 1], nn.ReLU):
            raise HwgenError("QAT: every convolution / hidden linear layer must be followed by a ReLU")
    return out


def layer_names(layers) -> list[str]:
    """Readable names for a chain (conv1, relu1, pool1, ..., flatten, classifier).

    Export names the modules with them, so the checkpoint's nodes (named after modules by ingest)
    and `QATNet.graph()` carry the same names.
    """
    names, count = [], {}
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Linear) and i == len(layers) - 1:
            names.append("classifier")
            continue
        kind = {nn.Conv2d: "conv", nn.Linear: "fc", nn.ReLU: "relu", nn.MaxPool2d: "pool"}.get(type(layer), "flatten")
        count[kind] = count.get(kind, 0) + 1
        names.append(kind if kind == "flatten" else f"{kind}{count[kind]}")
    return names


def _graph_of(layers: nn.ModuleList, input_shape: tuple[int, ...], name: str) -> Graph:
    """The float IR of a chain of (folded) layers: one node per layer."""
    nodes = [Node("input", "input", out_shape=tuple(input_shape))]
    for layer, nm in zip(layers, layer_names(layers)):
        prev = nodes[-1].name
        if isinstance(layer, nn.Conv2d):
            nodes.append(Node(nm, "conv2d", (prev,), dict(stride=layer.stride, padding=layer.padding,
                                                          dilation=layer.dilation, groups=layer.groups),
                              weight=layer.weight.detach().numpy().copy(), bias=layer.bias.detach().numpy().copy()))
        elif isinstance(layer, nn.Linear):
            nodes.append(Node(nm, "linear", (prev,), weight=layer.weight.detach().numpy().copy(),
                              bias=layer.bias.detach().numpy().copy()))
        elif isinstance(layer, nn.MaxPool2d):
            if layer.dilation not in (1, (1, 1)) or layer.ceil_mode:
                raise HwgenError("QAT: max pooling with dilation or ceil_mode is not supported")
            nodes.append(Node(nm, "maxpool2d", (prev,), dict(kernel=layer.kernel_size, stride=layer.stride,
                                                             padding=layer.padding)))
        elif isinstance(layer, nn.ReLU):
            nodes.append(Node(nm, "relu", (prev,)))
        else:
            nodes.append(Node(nm, "flatten", (prev,)))
    return Graph(name, nodes, nodes[-1].name).infer_shapes()


class QATNet(nn.Module):
    """A BN-folded copy of a chain model whose forward is the integer pipeline, in real units.

    `forward(x)` returns the real logits (integer logits times their one scale: the argmax is the
    integer reference's), for the loss; `integer_logits(x)` the int64 logits themselves.
    `source` maps each weighted layer of this net to the layer of the original model it came from.
    """

    def __init__(self, model: nn.Module, weight_bits: int, act_bits: int, calib_x: torch.Tensor,
                 name: str = "qat"):
        super().__init__()
        self.weight_bits = intmath.check_bits(weight_bits, "weight bits")
        self.act_bits = intmath.check_bits(act_bits, "activation bits")
        self.name = name
        self.layers = nn.ModuleList(_chain(model))
        originals = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.source = dict(zip(self.weighted(), originals))
        self.input_shape = tuple(calib_x.shape[1:])
        # Start from post-training calibration: max |y| over calib_x, as quantize_graph does it.
        calibrated = quantize_graph(self.graph(), calib_x.numpy(), self.weight_bits, self.act_bits)
        self.scale_names = scale_nodes(calibrated)
        self.register_buffer("act_scale", torch.tensor(
            [calibrated.node(n).quant.out_scale for n in self.scale_names], dtype=torch.float64))
        self.eval()

    def weighted(self) -> list[nn.Module]:
        return [m for m in self.layers if isinstance(m, (nn.Conv2d, nn.Linear))]

    def carry_masks(self, masks: dict) -> dict:
        """Sparsity masks of the original model's layers, re-keyed to this net's layers."""
        return {mine: masks[orig] for mine, orig in self.source.items() if orig in masks}

    def graph(self) -> Graph:
        """The float IR of the current weights."""
        return _graph_of(self.layers, self.input_shape, self.name)

    def act_scales(self, names: list[str] | None = None) -> dict[str, float]:
        """The activation scales for `quantize_graph`, keyed by `names` (default: this net's own)."""
        names = self.scale_names if names is None else names
        if len(names) != len(self.scale_names):
            raise HwgenError(f"QAT: graph has {len(names)} scaled nodes, the QAT net {len(self.scale_names)}")
        return {n: float(s) for n, s in zip(names, self.act_scale)}

    def quantized_graph(self) -> Graph:
        """The current weights quantized with the current activation scales: what export stores."""
        return quantize_graph(self.graph(), None, self.weight_bits, self.act_bits, self.act_scales())

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(integer logits as float64 with straight-through gradients, their real scale)."""
        qg = self.quantized_graph()
        h = torch.from_numpy(quantize_input(qg, x.detach().numpy())).double()
        scaled = {n: k for k, n in enumerate(self.scale_names)}
        for layer, node in zip(self.layers, qg.nodes[1:]):
            q = node.quant
            if node.op == "maxpool2d":
                h = nn.functional.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding)
            elif node.op == "flatten":
                h = h.flatten(1)
            elif node.op in ("conv2d", "linear"):
                s_in = qg.node(node.inputs[0]).quant.out_scale
                s_w = torch.from_numpy(q.weight_scale)
                w = _RoundSTE.apply(layer.weight.double() / s_w.reshape((-1,) + (1,) * (layer.weight.dim() - 1)),
                                    torch.from_numpy(q.weight).double())
                b = _RoundSTE.apply(layer.bias.double() / (s_in * s_w), torch.from_numpy(q.bias).double())
                if node.op == "conv2d":
                    acc = nn.functional.conv2d(h, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
                else:
                    acc = nn.functional.linear(h, w, b)
                if q.requant is None:  # the classifier: raw accumulators are the logits
                    return acc, q.out_scale
                if self.training:
                    self._observe(scaled[node.name], acc, s_in * s_w)
                shape = (-1,) + (1,) * (acc.dim() - 2)
                r = q.requant
                h = _RequantSTE.apply(acc, torch.from_numpy(r.multiplier).double().reshape(shape),
                                      torch.from_numpy(r.shift).reshape(shape), float(r.lo), float(r.hi))
            # relu: fused into the requantization before it (lo = 0), a no-op on its output
        raise HwgenError("QAT: the graph does not end with a linear classifier")

    def _observe(self, k: int, acc: torch.Tensor, acc_scale: torch.Tensor) -> None:
        """EMA of the batch maximum of a layer's real (post-ReLU) output, as its next scale."""
        real = acc.detach() * acc_scale.reshape((1, -1) + (1,) * (acc.dim() - 2))
        qmax = intmath.qrange(self.act_bits, signed=False)[1]
        batch_max = float(real.max())
        if batch_max <= 0:  # a batch on which the layer is silent says nothing about its range
            return
        with torch.no_grad():
            self.act_scale[k] = (1 - EMA_MOMENTUM) * self.act_scale[k] + EMA_MOMENTUM * batch_max / qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc, scale = self._forward(x)
        return acc * scale

    @torch.no_grad()
    def integer_logits(self, x: torch.Tensor) -> np.ndarray:
        self.eval()
        return self._forward(x)[0].numpy().astype(np.int64)

    def float_model(self) -> nn.Sequential:
        """The folded float model (the weights QAT trained), for `torch.export`."""
        from collections import OrderedDict

        named = OrderedDict(zip(layer_names(self.layers), copy.deepcopy(list(self.layers))))
        return nn.Sequential(named).float().eval()


def export(net: QATNet, path, *, via_pt2: bool = True) -> Graph:
    """Write the `.hwq` checkpoint of `net` (and return its quantized graph).

    With `via_pt2` the folded float model goes through `torch.export` and `hwgen.ingest` like a
    user's model would; otherwise the IR is built directly. Either way the learned activation
    scales are passed to `quantize_graph`, so the checkpoint computes what `net` computes.
    """
    from hwgen import checkpoint

    if via_pt2:
        import tempfile
        from pathlib import Path

        from hwgen.ingest import load_model

        from .zoo import export_pt2

        with tempfile.TemporaryDirectory() as tmp:
            pt2 = Path(tmp) / f"{net.name}.pt2"
            export_pt2(net.float_model(), net.input_shape, pt2)
            graph = load_model(pt2)
        graph.name = net.name
    else:
        graph = net.graph()
    qg = quantize_graph(graph, None, net.weight_bits, net.act_bits, net.act_scales(scale_nodes(graph)))
    checkpoint.save(qg, path)
    return qg
