"""Post-training quantization of a float `Graph` into the integer contract of `hwgen.intmath`.

`quantize_graph` puts a `QuantInfo` on every node (see docs/quantization.md for the rules):

- input: signed A-bit, scale `max|x| / (2^(A-1) - 1)` over the calibration batch;
- conv2d / linear: signed W-bit weights with one symmetric scale per output channel, int32 bias in
  accumulator units, requant `M, S = quantize_multiplier(s_in * s_w[m] / s_out)`; a ReLU or clip
  that is the layer's only consumer is fused (ReLU: output unsigned, `lo = 0`);
- the classifier (a linear graph output): one weight scale for all channels and no requant, so
  its int accumulators are the logits (real value `acc * s_in * s_w`);
- relu, maxpool2d, flatten: move integers, keep their input's scale;
- avgpool2d: window sum requantized by `s_in / (kh * kw * s_out)`;
- add: both inputs rescaled to the output by multipliers sharing one shift;
- concat: each input's channels rescaled to the output scale by their own per-channel M, S;
- clip (ReLU6, hardtanh): its bounds at its input's scale, rounded, become a requant's lo/hi; a
  clip that is the only consumer of a conv2d, linear, add or concat is fused into that requant
  (output unsigned when lo >= 0), as a ReLU is;
- sigmoid, silu: refused (no integer form).

Output scales come from calibration statistics (max |y| over `calib_x`) unless `act_scales` gives
them (quantization-aware training learns them); `scale_nodes(graph)` names the nodes that take one.
"""

from __future__ import annotations

import math

import numpy as np

from . import intmath
from .errors import HwgenError
from .ir import Graph, Node, QuantInfo, Requant
from .reference import as_float_input, float_forward_all, run_layer

CALIB_BATCH = 256
FLOAT_ONLY_OPS = ("sigmoid", "silu")  # calibration runs in batches of this size to bound memory on big models


def classifier(graph: Graph) -> Node | None:
    """The linear layer whose raw accumulators are the logits: a graph output that nobody reads."""
    out = graph.node(graph.output)
    return out if out.op == "linear" and not graph.consumers(out.name) else None


# Ops whose output goes through a requant, so a ReLU or clip after them can be fused into its lo/hi.
REQUANT_OPS = ("conv2d", "linear", "add", "concat")
# quantize_multiplier(1.0): the requant of a clip node, which only clamps.
IDENTITY_M, IDENTITY_S = 1 << (intmath.MULT_BITS - 1), intmath.MULT_BITS - 1


def fused_activation(graph: Graph, node: Node) -> Node | None:
    """The ReLU or clip that is the only consumer of a conv2d, linear, add or concat: fused into its requant."""
    if node.op not in REQUANT_OPS or node.name == graph.output:
        return None
    users = graph.consumers(node.name)
    return users[0] if len(users) == 1 and users[0].op in ("relu", "clip") else None


def fused_relu(graph: Graph, node: Node) -> bool:
    """Whether a ReLU (not a clip) is fused into `node`'s requant: its output is unsigned, from 0."""
    act = fused_activation(graph, node)
    return act is not None and act.op == "relu"


def activation_bounds(act: Node | None) -> tuple[float, float]:
    """The float range a fused activation lets through."""
    if act is None:
        return -math.inf, math.inf
    if act.op == "relu":
        return 0.0, math.inf
    return float(act.attrs["lo"]), float(act.attrs["hi"])


def clamp_bounds(lo: float, hi: float, scale: float, bits: int, signed: bool) -> tuple[int, int]:
    """A float clamp range as integers at `scale`, each bound rounded to nearest and kept inside the
    `bits`-wide range; an empty range (both bounds past one end) keeps its nearest point."""
    q_lo, q_hi = intmath.qrange(bits, signed)
    lo_i = q_lo if lo == -math.inf else min(max(round(lo / scale), q_lo), q_hi)
    hi_i = q_hi if hi == math.inf else max(min(round(hi / scale), q_hi), lo_i)
    return lo_i, hi_i


def scale_nodes(graph: Graph) -> list[str]:
    """Names of the nodes whose output scale is chosen (calibrated or given); the others inherit."""
    head = classifier(graph)
    return [n.name for n in graph.nodes
            if n.op in ("input", "avgpool2d") + REQUANT_OPS and n is not head]


def _qmax(bits: int, signed: bool) -> int:
    return intmath.qrange(bits, signed)[1]


def _calibrate(graph: Graph, calib_x, names: list[str]) -> dict[str, float]:
    """max |y| of each named node over the calibration batch (after a fused ReLU)."""
    x = np.asarray(calib_x)
    if x.ndim != len(graph.input_shape) + 1 or tuple(x.shape[1:]) != tuple(graph.input_shape) or x.shape[0] == 0:
        raise HwgenError(f"calibration data: expected a batch of shape (N, {', '.join(map(str, graph.input_shape))}), "
                         f"got {tuple(x.shape)}")
    amax = dict.fromkeys(names, 0.0)
    for start in range(0, len(x), CALIB_BATCH):
        values = float_forward_all(graph, x[start:start + CALIB_BATCH])
        for name in names:
            y = values[name]
            act = fused_activation(graph, graph.node(name))
            if act is not None:
                y = np.clip(y, *activation_bounds(act))
            amax[name] = max(amax[name], float(np.abs(y).max(initial=0.0)))
    return amax


def _scale_from_max(amax: float, bits: int, signed: bool) -> float:
    # A tensor that is all zeros in calibration gets the scale of a unit range.
    return (amax if amax > 0 else 1.0) / _qmax(bits, signed)


def _check_scale(name: str, scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)) \
            or not math.isfinite(scale) or scale <= 0:
        raise HwgenError(f"activation scale of '{name}' must be a finite positive number, got {scale!r}")
    return float(scale)


def _weight_scales(w: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    qmax = _qmax(bits, True)
    flat = np.abs(w.reshape(w.shape[0], -1).astype(np.float64))
    amax = flat.max(axis=1) if per_channel else np.full(w.shape[0], flat.max(initial=0.0))
    # An all-zero channel (a pruned filter) takes the layer's largest scale, so its bias still fits.
    fallback = amax.max(initial=0.0) or 1.0
    return np.where(amax > 0, amax, fallback) / qmax


GRANULARITIES = ("channel", "tensor")


def _quantize_weighted(graph: Graph, node: Node, src: QuantInfo, w_bits: int, a_bits: int,
                       out_scale: float | None, granularity: str = "channel") -> QuantInfo:
    head = node is classifier(graph)
    w = node.weight.astype(np.float64)
    s_w = _weight_scales(w, w_bits, per_channel=not head and granularity == "channel")
    lo_w, hi_w = intmath.qrange(w_bits, True)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q_w = np.clip(np.round(w / s_w.reshape(shape)), lo_w, hi_w).astype(np.int64)
    acc_scale = src.out_scale * s_w
    b = np.zeros(w.shape[0]) if node.bias is None else node.bias.astype(np.float64)
    q_b = np.round(b / acc_scale)
    lo_b, hi_b = intmath.qrange(intmath.BIAS_BITS, True)
    if not np.all((q_b >= lo_b) & (q_b <= hi_b)):
        raise HwgenError(f"node '{node.name}': bias does not fit int32 in accumulator units "
                         f"(|bias| up to {np.abs(b).max():g} with accumulator scale {acc_scale.min():g})")
    q_b = q_b.astype(np.int64)
    if head:
        return QuantInfo(act_bits=a_bits, out_scale=float(acc_scale[0]), signed=True, weight_bits=w_bits,
                         weight=q_w, weight_scale=s_w, bias=q_b, requant=None)
    signed = output_signed(graph, node)
    requant = _requant(acc_scale / out_scale, graph, node, a_bits, out_scale)
    return QuantInfo(act_bits=a_bits, out_scale=out_scale, signed=signed, weight_bits=w_bits,
                     weight=q_w, weight_scale=s_w, bias=q_b, requant=requant)


def output_signed(graph: Graph, node: Node) -> bool:
    """Whether a requantizing node's output is signed: not when a fused activation cuts at 0 or above."""
    return activation_bounds(fused_activation(graph, node))[0] < 0


def _requant(ratios: np.ndarray, graph: Graph, node: Node, a_bits: int, out_scale: float) -> Requant:
    """Per-channel M, S for `ratios` (input scale / output scale), lo/hi from a fused activation."""
    m_s = [intmath.quantize_multiplier(float(r)) for r in ratios]
    lo, hi = activation_bounds(fused_activation(graph, node))
    return Requant(np.array([m for m, _ in m_s], dtype=np.int64), np.array([s for _, s in m_s], dtype=np.int64),
                   *clamp_bounds(lo, hi, out_scale, a_bits, output_signed(graph, node)))


def _uniform_requant(channels: int, multiplier: int, shift: int, bits: int, signed: bool) -> Requant:
    return Requant(np.full(channels, multiplier, dtype=np.int64), np.full(channels, shift, dtype=np.int64),
                   *intmath.qrange(bits, signed))


def _quantize_avgpool(node: Node, src: QuantInfo, a_bits: int, out_scale: float) -> QuantInfo:
    kh, kw = node.attrs["kernel"]
    m, s = intmath.quantize_multiplier(src.out_scale / (kh * kw * out_scale))
    requant = _uniform_requant(node.out_shape[0], m, s, a_bits, src.signed)
    return QuantInfo(act_bits=a_bits, out_scale=out_scale, signed=src.signed, requant=requant)


def _quantize_add(graph: Graph, node: Node, a: QuantInfo, b: QuantInfo, a_bits: int, out_scale: float) -> QuantInfo:
    ra, rb = a.out_scale / out_scale, b.out_scale / out_scale
    # The shift that gives the larger ratio all MULT_BITS bits also keeps the smaller one in range.
    _, shift = intmath.quantize_multiplier(max(ra, rb))
    ma, mb = int(round(ra * (1 << shift))), int(round(rb * (1 << shift)))
    signed = output_signed(graph, node)
    requant = _uniform_requant(node.out_shape[0], 1, shift, a_bits, signed)
    requant.lo, requant.hi = clamp_bounds(*activation_bounds(fused_activation(graph, node)), out_scale, a_bits, signed)
    return QuantInfo(act_bits=a_bits, out_scale=out_scale, signed=signed, requant=requant,
                     input_multipliers=[ma, mb])


def _quantize_concat(graph: Graph, node: Node, ins: list[QuantInfo], a_bits: int, out_scale: float) -> QuantInfo:
    """Each input's channels rescaled to the output scale by their own M, S (one requant per channel)."""
    ratios = np.concatenate([np.full(graph.node(name).out_shape[0], q.out_scale / out_scale)
                             for name, q in zip(node.inputs, ins)])
    return QuantInfo(act_bits=a_bits, out_scale=out_scale, signed=output_signed(graph, node),
                     requant=_requant(ratios, graph, node, a_bits, out_scale))


def _quantize_clip(node: Node, src: QuantInfo) -> QuantInfo:
    """The clip's bounds at its input's scale; a clip fused into its producer repeats its lo/hi."""
    lo, hi = clamp_bounds(node.attrs["lo"], node.attrs["hi"], src.out_scale, src.act_bits, src.signed)
    signed = src.signed and lo < 0
    requant = _uniform_requant(node.out_shape[0], IDENTITY_M, IDENTITY_S, src.act_bits, signed)
    requant.lo, requant.hi = lo, hi
    return QuantInfo(act_bits=src.act_bits, out_scale=src.out_scale, signed=signed, requant=requant)


def quantize_graph(graph: Graph, calib_x, weight_bits: int, act_bits: int,
                   act_scales: dict[str, float] | None = None, weight_granularity: str = "channel") -> Graph:
    """A copy of `graph` with a `QuantInfo` on every node.

    `calib_x` is a float batch (N, *input_shape); it may be None when `act_scales` names every node
    of `scale_nodes(graph)`. Scales in `act_scales` take precedence over calibration.
    `weight_granularity` "channel" gives every output channel its own weight scale, "tensor" one
    scale per layer (what a source model that learned one per-tensor scale had).
    """
    if weight_granularity not in GRANULARITIES:
        raise HwgenError(f"weight granularity must be one of {', '.join(GRANULARITIES)}, got {weight_granularity!r}")
    w_bits = intmath.check_bits(weight_bits, "weight bits")
    a_bits = intmath.check_bits(act_bits, "activation bits")
    g = graph.copy().infer_shapes()
    for node in g.layers():
        if not np.isfinite(node.weight).all() or (node.bias is not None and not np.isfinite(node.bias).all()):
            raise HwgenError(f"node '{node.name}': weights or bias contain NaN or infinite values")
    for node in g.nodes:
        if node.op in FLOAT_ONLY_OPS:
            raise HwgenError(f"node '{node.name}': {node.op} has no integer form in the hwgen contract "
                             "(inspect and analyze take it; quantization does not)")
    wanted = scale_nodes(g)
    given = dict(act_scales or {})
    for name in given:
        if name not in wanted:
            raise HwgenError(f"act_scales: '{name}' is not a node that takes an output scale "
                             f"(those are: {', '.join(wanted)})")
    missing = [n for n in wanted if n not in given]
    if missing and calib_x is None:
        raise HwgenError(f"no calibration data and no activation scale for: {', '.join(missing)}")
    amax = _calibrate(g, calib_x, missing) if missing else {}

    def out_scale(node: Node, signed: bool) -> float:
        if node.name in given:
            return _check_scale(node.name, given[node.name])
        return _scale_from_max(amax[node.name], a_bits, signed)

    for node in g.nodes:
        ins = [g.node(i).quant for i in node.inputs]
        if node.op == "input":
            node.quant = QuantInfo(act_bits=a_bits, out_scale=out_scale(node, True), signed=True)
        elif node.op in ("conv2d", "linear"):
            head = node is classifier(g)
            scale = None if head else out_scale(node, output_signed(g, node))
            node.quant = _quantize_weighted(g, node, ins[0], w_bits, a_bits, scale, weight_granularity)
        elif node.op == "avgpool2d":
            node.quant = _quantize_avgpool(node, ins[0], a_bits, out_scale(node, ins[0].signed))
        elif node.op == "add":
            node.quant = _quantize_add(g, node, ins[0], ins[1], a_bits, out_scale(node, output_signed(g, node)))
        elif node.op == "concat":
            node.quant = _quantize_concat(g, node, ins, a_bits, out_scale(node, output_signed(g, node)))
        elif node.op == "clip":
            node.quant = _quantize_clip(node, ins[0])
        else:  # relu, maxpool2d, flatten move integers: same scale; relu clears the sign
            src = ins[0]
            node.quant = QuantInfo(act_bits=src.act_bits, out_scale=src.out_scale,
                                   signed=src.signed and node.op != "relu")
    return g


def quantize_input(graph: Graph, x_float) -> np.ndarray:
    """Float inputs (N, *input_shape) -> int64 with the input node's scale (round half to even, clamp)."""
    q = graph.input.quant
    if q is None:
        raise HwgenError(f"graph '{graph.name}' is not quantized: its input has no scale")
    x = as_float_input(graph, x_float).astype(np.float64)
    return np.clip(np.round(x / q.out_scale), *intmath.qrange(q.act_bits, q.signed)).astype(np.int64)


def integer_inputs(graph: Graph, x, what: str = "input") -> np.ndarray:
    """A user's inputs as the input node's integers: a batch (N, *input_shape) or one image; floats
    are quantized with the input scale (`quantize_input`), integers are taken as they are; shape
    and range are checked (one HwgenError line)."""
    x = np.asarray(x)
    if x.ndim == len(graph.input_shape):
        x = x[None]
    if x.dtype.kind == "f":
        x = quantize_input(graph, x)
    elif x.dtype.kind not in "iu":
        raise HwgenError(f"{what}: expected float or integer values, got dtype {x.dtype}")
    return run_layer(graph, graph.input.name, x)


def dequantize(q: QuantInfo, y: np.ndarray) -> np.ndarray:
    """The real values (float64) of a node's integer outputs."""
    return np.asarray(y, dtype=np.float64) * q.out_scale
