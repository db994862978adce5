"""The bit-exact integer reference: the specification every other implementation is compared to.

`run`, `run_all` and `run_layer` evaluate a quantized `Graph` in numpy int64 only, following the
contract of `hwgen.intmath` and the `QuantInfo` of every node (see docs/quantization.md):

- conv2d / linear: `acc = sum(x * w) + bias` (zero padding), then the per-channel requant; the
  classifier (`requant is None`) returns `acc` itself, the integer logits;
- relu: `max(x, 0)` (a no-op after a fused ReLU, whose requant already clamps at 0);
- maxpool2d: max over the window (padding never wins); flatten: reshape, (C, H, W) order;
- avgpool2d: sum over the window with zero padding counted (torch's `count_include_pad=True`),
  then requant with one M, S for all channels;
- add: `clamp((a * Ma + b * Mb + (1 << (S - 1))) >> S, lo, hi)`;
- clip: a requant by one (`M = 2**14, S = 14`) whose lo, hi are the clip's bounds in integers;
- concat: the inputs joined along channels, then one requant with each channel's M, S rescaling
  its input's scale to the output's;
- sigmoid, silu: no integer form (float analysis only); quantization refuses them.

Arrays are batch-first, `(N, C, H, W)` or `(N, F)`. Every accumulator is checked at run time
against the width `accumulator_bits` derives for it: exceeding it would be a bug.

`float_forward` / `float_forward_all` evaluate the same graph on its float weights (float32), for
calibration and for measuring float-vs-integer agreement.
"""

from __future__ import annotations

import numpy as np

from . import intmath
from .errors import HwgenError
from .ir import Graph, Node, pool_out_size

# -- window extraction, shared by the integer and the float paths ----------------------------------


def _pad(x: np.ndarray, padding: tuple[int, int], value) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(x: np.ndarray, kernel, stride, padding, dilation, pad_value) -> np.ndarray:
    """(N, C, H, W) -> (N, C, kh * kw, OH, OW): the input tap under each kernel position."""
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    xp = _pad(x, padding, pad_value)
    n, c, h, w = xp.shape
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    taps = [xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kh) for j in range(kw)]
    return np.stack(taps, axis=2)


def _conv(x: np.ndarray, weight: np.ndarray, attrs: dict) -> np.ndarray:
    """Grouped 2-d convolution without bias, in the dtype of its operands (int64 or float32)."""
    groups = attrs["groups"]
    m, cg, kh, kw = weight.shape
    cols = _windows(x, attrs["kernel"], attrs["stride"], attrs["padding"], attrs["dilation"], 0)
    n, c, k, oh, ow = cols.shape
    cols = cols.reshape(n, groups, cg * k, oh * ow)
    w = weight.reshape(groups, m // groups, cg * kh * kw)
    if cols.dtype.kind == "f":
        return np.matmul(w, cols).reshape(n, m, oh, ow)  # BLAS
    # numpy has no BLAS for integers; einsum's integer loop is about 3x faster than matmul's
    return np.einsum("gmk,ngkl->ngml", w, cols).reshape(n, m, oh, ow)


def _pool_windows(x: np.ndarray, attrs: dict, pad_value) -> np.ndarray:
    if attrs.get("ceil_mode"):  # the last window may overhang the padded input: extend it there
        extra = [max(0, (pool_out_size(size, k, s, p, True) - 1) * s + k - (size + 2 * p))
                 for size, k, s, p in zip(x.shape[2:], attrs["kernel"], attrs["stride"], attrs["padding"])]
        x = np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])), constant_values=pad_value)
    return _windows(x, attrs["kernel"], attrs["stride"], attrs["padding"], (1, 1), pad_value)


# -- the integer reference ------------------------------------------------------------------------


def _quant(graph: Graph, name: str):
    q = graph.node(name).quant
    if q is None:
        raise HwgenError(f"graph '{graph.name}' is not quantized (node '{name}' has no QuantInfo); "
                         "run `hwgen quantize` first")
    return q


def accumulator_bits(graph: Graph, node: Node) -> int:
    """The signed accumulator width of a conv2d, linear or avgpool2d node of a quantized graph.

    Derived from W, the producer's activation range, the largest number of nonzero weights of one
    output channel and the largest |bias|: no input can overflow it.
    """
    q = _quant(graph, node.name)
    src = _quant(graph, node.inputs[0])
    if node.op == "avgpool2d":
        kh, kw = node.attrs["kernel"]
        x_mag = (1 << (src.act_bits - 1)) if src.signed else (1 << src.act_bits) - 1
        return (kh * kw * x_mag).bit_length() + 1
    if node.op not in ("conv2d", "linear"):
        raise HwgenError(f"node '{node.name}': {node.op} has no accumulator")
    taps = int(np.count_nonzero(q.weight.reshape(q.weight.shape[0], -1), axis=1).max(initial=0))
    bias_max = int(np.abs(q.bias).max(initial=0))
    return intmath.accumulator_bits(q.weight_bits, src.act_bits, src.signed, taps, bias_max)


def _check_accumulator(graph: Graph, node: Node, acc: np.ndarray) -> None:
    bits = accumulator_bits(graph, node)
    limit = 1 << (bits - 1)
    # A bug, not bad input: weights, biases and activations were range-checked on the way in.
    if intmath.product_bits(bits) > 64 or acc.size and not (-limit <= int(acc.min()) and int(acc.max()) < limit):
        raise AssertionError(f"node '{node.name}': accumulator exceeds its {bits}-bit width")


def _per_channel(a: np.ndarray, ndim: int) -> np.ndarray:
    """Broadcast a per-channel vector over (N, C) or (N, C, H, W)."""
    return a.reshape((-1,) + (1,) * (ndim - 2))


def _requant(acc: np.ndarray, q) -> np.ndarray:
    r = q.requant
    return intmath.requantize(acc, _per_channel(r.multiplier, acc.ndim), _per_channel(r.shift, acc.ndim), r.lo, r.hi,
                               r.rounding)


def _eval_int(graph: Graph, node: Node, ins: list[np.ndarray]) -> np.ndarray:
    q = _quant(graph, node.name)
    x = ins[0]
    if node.op == "relu":
        return np.maximum(x, 0)
    if node.op == "flatten":
        return x.reshape(x.shape[0], -1)
    if node.op == "maxpool2d":
        return _pool_windows(x, node.attrs, np.iinfo(np.int64).min).max(axis=2)
    if node.op == "avgpool2d":
        acc = _pool_windows(x, node.attrs, 0).sum(axis=2)
        _check_accumulator(graph, node, acc)
        return _requant(acc, q)
    if node.op == "add":
        ma, mb = q.input_multipliers
        return _requant(ins[0] * np.int64(ma) + ins[1] * np.int64(mb), q)
    if node.op == "clip":
        return _requant(x, q)
    if node.op == "concat":
        return _requant(np.concatenate(ins, axis=1), q)
    if node.op == "conv2d":
        acc = _conv(x, q.weight, node.attrs) + _per_channel(q.bias, 4)
    elif node.op == "linear":
        acc = x @ q.weight.T + q.bias
    else:
        raise HwgenError(f"node '{node.name}': op '{node.op}' has no integer implementation")
    _check_accumulator(graph, node, acc)
    return acc if q.requant is None else _requant(acc, q)


def _check_int_input(graph: Graph, producer: str, x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise HwgenError(f"{what}: expected integers, got dtype {x.dtype}")
    shape = graph.node(producer).out_shape
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise HwgenError(f"{what}: expected shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    q = _quant(graph, producer)
    lo, hi = intmath.qrange(q.act_bits, q.signed)
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        raise HwgenError(f"{what}: values span [{int(x.min())}, {int(x.max())}], outside the "
                         f"{'signed' if q.signed else 'unsigned'} {q.act_bits}-bit range [{lo}, {hi}] of '{producer}'")
    return x.astype(np.int64)


def _evaluate(graph: Graph, x_int, keep_all: bool) -> dict[str, np.ndarray]:
    last_use = {p: i for i, node in enumerate(graph.nodes) for p in node.inputs}
    values = {graph.input.name: _check_int_input(graph, graph.input.name, x_int, "input")}
    for i, node in enumerate(graph.nodes[1:], start=1):
        values[node.name] = _eval_int(graph, node, [values[p] for p in node.inputs])
        if not keep_all:  # free activations no later node reads
            for p in node.inputs:
                if last_use[p] == i and p != graph.output:
                    values.pop(p, None)
    return values


def run_all(graph: Graph, x_int) -> dict[str, np.ndarray]:
    """Every node's integer output for the integer input batch `x_int` (N, *input_shape)."""
    return _evaluate(graph, x_int, keep_all=True)


def run(graph: Graph, x_int) -> np.ndarray:
    """The integer output of the graph's output node (the logits of a classifier)."""
    return _evaluate(graph, x_int, keep_all=False)[graph.output]


def run_layer(graph: Graph, node_name: str, x_int) -> np.ndarray:
    """One node from its integer input(s): an array, or a list of arrays for `add` and `concat`."""
    node = graph.node(node_name)
    if node.op == "input":
        return _check_int_input(graph, node.name, x_int, f"node '{node_name}'")
    arrays = list(x_int) if node.op in ("add", "concat") else [x_int]
    if len(arrays) != len(node.inputs):
        raise HwgenError(f"node '{node_name}': {node.op} takes {len(node.inputs)} input(s), got {len(arrays)}")
    ins = [_check_int_input(graph, p, a, f"node '{node_name}' input '{p}'") for p, a in zip(node.inputs, arrays)]
    return _eval_int(graph, node, ins)


# -- the float forward ----------------------------------------------------------------------------


def _eval_float(node: Node, ins: list[np.ndarray]) -> np.ndarray:
    x = ins[0]
    if node.op == "relu":
        return np.maximum(x, np.float32(0))
    if node.op == "flatten":
        return x.reshape(x.shape[0], -1)
    if node.op == "maxpool2d":
        return _pool_windows(x, node.attrs, -np.inf).max(axis=2)
    if node.op == "avgpool2d":
        kh, kw = node.attrs["kernel"]
        return _pool_windows(x, node.attrs, 0).sum(axis=2, dtype=np.float32) / np.float32(kh * kw)
    if node.op == "add":
        return ins[0] + ins[1]
    if node.op == "clip":
        return np.clip(x, np.float32(node.attrs["lo"]), np.float32(node.attrs["hi"]))
    if node.op == "concat":
        return np.concatenate(ins, axis=1)
    if node.op in ("sigmoid", "silu"):
        # exp of a large negative x overflows to inf, and 1 / (1 + inf) = 0 is the right limit
        with np.errstate(over="ignore"):
            sig = np.float32(1) / (np.float32(1) + np.exp(-x))
        return sig if node.op == "sigmoid" else x * sig
    bias = node.bias if node.bias is not None else np.zeros(node.weight.shape[0], np.float32)
    if node.op == "conv2d":
        return _conv(x, node.weight.astype(np.float32), node.attrs) + _per_channel(bias.astype(np.float32), 4)
    if node.op == "linear":
        return x @ node.weight.astype(np.float32).T + bias.astype(np.float32)
    raise HwgenError(f"node '{node.name}': op '{node.op}' has no float implementation")


def as_float_input(graph: Graph, x) -> np.ndarray:
    """A float batch (N, *input_shape) as float32, checked for shape and finiteness."""
    x = np.asarray(x)
    shape = graph.input_shape
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise HwgenError(f"input: expected shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if x.dtype.kind not in "fiu":
        raise HwgenError(f"input: expected numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise HwgenError("input: contains NaN or infinite values")
    return x


def float_forward_all(graph: Graph, x) -> dict[str, np.ndarray]:
    """Every node's float32 output for the float input batch `x` (N, *input_shape)."""
    values = {graph.input.name: as_float_input(graph, x)}
    for node in graph.nodes[1:]:
        values[node.name] = _eval_float(node, [values[i] for i in node.inputs])
    return values


def float_forward(graph: Graph, x) -> np.ndarray:
    """The float32 output of the graph's output node."""
    return float_forward_all(graph, x)[graph.output]
