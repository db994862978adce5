"""Learned quantization in ONNX files -> a quantized hwgen Graph that keeps what was learned.

Two encodings are read, both as Brevitas writes them (`export_qonnx`, `export_onnx_qcdq`), raw or
after `qonnx-cleanup`:

- **QONNX**: `Quant(x, scale, zeropt, bitwidth)` with `signed`, `narrow`, `rounding_mode`,
  `BipolarQuant(x, scale)` (weights only) and `Trunc` (version 2, after an average pool), in the
  domains `qonnx.custom_op.general` or `finn.custom_op.general`;
- **QDQ / QCDQ**: `QuantizeLinear` -> optional `Clip` on the integers -> `DequantizeLinear`,
  per-tensor or per-axis, on activations; `DequantizeLinear` (after an optional `Clip`) of an
  integer initializer, or the whole chain on a float one, for weights and biases.

A quantizer on a constant is evaluated here (every rounding mode of the QONNX spec) and gives the
layer's integer weights, or its bias, exactly. A quantizer on an activation passes the value
through in the float graph and is recorded on the IR node whose output it quantizes; once the
float graph is built (by `hwgen.ingest.onnx`, which does the ops), `_assign` turns the recorded
scales into the integer contract: `M, S` per output channel from `s_in * s_w[m] / s_out`, the
clamp from the quantizer's integer range, the rounding from its rounding mode. docs/
ingest-and-sparsity.md says where that is bit-exact (every ratio a power of two, integer biases)
and what the bound is otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from .. import intmath
from ..errors import HwgenError
from ..ir import Graph, Node, QuantInfo, Requant
from .builder import Act, Const
from .onnx import _INT_TYPES, _Translator, _where

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
QONNX_OPS = ("Quant", "BipolarQuant", "Trunc")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
BIAS_MAX_BITS = 32  # a bias quantizer may be int32 (in accumulator units)
# ONNX integer types a QuantizeLinear may produce (its zero point's type; uint8 when absent).
_QDQ_RANGES = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255), TensorProto.INT16: (-32768, 32767),
               TensorProto.UINT16: (0, 65535), TensorProto.INT32: (-(1 << 31), (1 << 31) - 1)}
# QONNX rounding modes (qonnx.custom_op.general.intquant.resolve_rounding_mode), as numpy functions.
_ROUND = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor, "DOWN": np.fix,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5),
}


def has_quantizers(model) -> bool:
    """Whether an ONNX model carries learned quantization (QONNX or QDQ nodes)."""
    return any((n.op_type in QONNX_OPS and n.domain in QONNX_DOMAINS)
               or (n.op_type in QDQ_OPS and n.domain in ("", "ai.onnx")) for n in model.graph.node)


@dataclass(frozen=True)
class Quantizer:
    """`q = clamp(rnd(x / scale), lo, hi)`, real value `q * scale`: what a Quant or a QDQ chain does."""

    scale: np.ndarray  # float64, one value or one per channel (flattened)
    lo: int
    hi: int
    rounding: str  # a key of _ROUND
    what: str  # the node, for messages

    @property
    def bits(self) -> int:
        """The narrowest two's-complement (signed) or plain (unsigned) width holding [lo, hi]."""
        if self.lo < 0:
            return max((-self.lo - 1).bit_length(), self.hi.bit_length()) + 1
        return max(self.hi.bit_length(), 1)

    @property
    def scalar(self) -> float:
        """The one scale of a per-tensor quantizer."""
        return float(self.scale.reshape(-1)[0])

    @property
    def signed(self) -> bool:
        return self.lo < 0

    def ints(self, x: np.ndarray, axis: int | None) -> np.ndarray:
        """The integers of a constant tensor, as the ONNX op computes them (float32 division)."""
        s = _broadcast(self.scale.astype(np.float32), x.ndim, axis)
        return np.clip(_ROUND[self.rounding](x.astype(np.float32) / s), self.lo, self.hi).astype(np.int64)

    def same(self, other: "Quantizer") -> bool:
        return (self.lo, self.hi, self.rounding) == (other.lo, other.hi, other.rounding) \
            and np.array_equal(self.scale, other.scale)


@dataclass
class _QInt:
    """The integer tensor between a QuantizeLinear (or an integer initializer) and its DequantizeLinear."""

    source: object  # Act (an activation) or np.ndarray (float constant before quantization, or integers)
    quantizer: Quantizer | None  # None for an integer initializer: DequantizeLinear gives the scale
    axis: int | None
    bounds: tuple[int, int] | None = None  # an integer initializer's range: its type's, or its Clip's


def _broadcast(a: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    if a.size == 1:
        return a.reshape(())
    shape = [1] * ndim
    shape[axis] = a.size
    return a.reshape(shape)


class _QuantTranslator(_Translator):
    """The ONNX translator, plus quantizer nodes; `act_quant` and `const_quant` collect what they say."""

    int_types = {**_INT_TYPES, TensorProto.INT8: "i1", TensorProto.UINT8: "u1", TensorProto.INT16: "<i2",
                 TensorProto.UINT16: "<u2"}

    def __init__(self, path, model):
        super().__init__(path, model)
        self.act_quant: dict[str, Quantizer] = {}  # IR node -> quantizer of its output
        self.const_quant: dict[str, tuple[np.ndarray, Quantizer]] = {}  # tensor -> (integers, quantizer)
        self.layer_weight: dict[str, str] = {}  # IR conv2d / linear -> the ONNX tensor of its weight
        self.tensor_of: dict[str, str] = {}  # IR node -> the ONNX tensor holding its quantized output
        self.truncs: dict[str, tuple[float, float]] = {}  # avgpool2d IR node -> (Trunc input scale, 2^t)
        self.tensor_types = {t.name: t.data_type for t in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Constant" and n.output and n.attribute and n.attribute[0].name == "value":
                self.tensor_types[n.output[0]] = n.attribute[0].t.data_type

    def _translate(self, node) -> None:
        where = _where(node)
        kind = node.op_type
        if node.domain in QONNX_DOMAINS:
            if kind == "Quant":
                return self._quant(node, where)
            if kind == "BipolarQuant":
                return self._bipolar(node, where)
            if kind == "Trunc":
                return self._trunc(node, where)
            self._fail(where, f"op {node.domain}.{kind} is not supported by the hwgen IR")
        if node.domain in ("", "ai.onnx"):
            if kind == "QuantizeLinear":
                return self._quantize_linear(node, where)
            if kind == "DequantizeLinear":
                return self._dequantize_linear(node, where)
            first = self._input(node, 0, where)
            if kind == "Clip" and (isinstance(first, _QInt) or isinstance(first, Const) and first.array.dtype == np.int64):
                return self._clip_ints(node, where)
        before = len(self.nodes)
        super()._translate(node)
        if len(self.nodes) > before and ".act_quant." in self.nodes[-1].name:
            self._rename(self.nodes[-1], self.nodes[-1].name.split(".act_quant.")[0])
        if kind in ("Conv", "Gemm", "MatMul") and len(self.nodes) > before:
            self.layer_weight[self.nodes[-1].name] = node.input[1]

    def _rename(self, ir_node: Node, base: str) -> None:
        """Brevitas's QuantReLU exports its Relu inside `<module>.act_quant.activation_impl`: name
        the IR node after the module, as for a plain nn.ReLU."""
        old, ir_node.name = ir_node.name, "\0"  # out of the way of `unique`
        ir_node.name = self.unique(base)
        self.pending[ir_node.name] = self.pending.pop(old)
        for k, v in self.values.items():
            if isinstance(v, Act) and v.node == old:
                self.values[k] = Act(ir_node.name)

    # -- QONNX --------------------------------------------------------------------------------------
    def _scalar_const(self, node, k: int, where: str, what: str) -> np.ndarray:
        v = self._const(node, k, where, what)
        if v is None:
            self._fail(where, f"needs {what}")
        return v.astype(np.float64)

    def _quant(self, node, where):
        from .onnx import _Attrs

        attrs = _Attrs(node, self.path, where)
        scale = self._scale(node, 1, where)
        zeropt = self._scalar_const(node, 2, where, "a zero point")
        if np.any(zeropt != 0):
            self._fail(where, "non-zero zero points are not supported (hwgen's integers are symmetric)")
        bitwidth = self._scalar_const(node, 3, where, "a bit width")
        if bitwidth.size != 1 or bitwidth.reshape(()) != round(float(bitwidth.reshape(()))) \
                or not 2 <= bitwidth.reshape(()) <= BIAS_MAX_BITS:
            self._fail(where, f"bit width {bitwidth.reshape(-1).tolist()} must be one integer from 2 to {BIAS_MAX_BITS}")
        bits = int(bitwidth.reshape(()))
        signed, narrow = attrs.int("signed", 1), attrs.int("narrow", 0)
        if signed not in (0, 1) or narrow not in (0, 1):
            self._fail(where, "attributes signed and narrow must be 0 or 1")
        mode = attrs.str("rounding_mode", "ROUND").upper()
        if mode not in _ROUND:
            self._fail(where, f"rounding_mode {mode!r} is not one of {', '.join(_ROUND)}")
        lo = -(1 << (bits - 1)) + narrow if signed else 0
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
        self._quantized(node, where, Quantizer(scale, lo, hi, mode, where), self._input(node, 0, where))

    def _trunc(self, node, where):
        """QONNX Trunc (version 2, Brevitas's TruncAvgPool2d) after an AveragePool:
        `round(clamp(round(x / scale) / 2^t, lo, hi)) * out_scale`, `2^t` the power of two nearest
        `out_scale / scale`. With `scale = s_in / (kh * kw)`, `round(x / scale)` is the window sum."""
        from .onnx import _Attrs

        attrs = _Attrs(node, self.path, where)
        if len(node.input) != 6:
            self._fail(where, "only Trunc version 2 (x, scale, zeropt, input bit width, output scale, output bit "
                       "width) is supported")
        x = self._input(node, 0, where)
        prev = next((n for n in self.nodes if isinstance(x, Act) and n.name == x.node), None)
        if prev is None or prev.op != "avgpool2d" or self.pending.get(prev.name, 0) != 1:
            self._fail(where, "Trunc is supported only right after an average pool it alone reads")
        scale = self._scale(node, 1, where)
        if np.any(self._scalar_const(node, 2, where, "a zero point") != 0):
            self._fail(where, "non-zero zero points are not supported (hwgen's integers are symmetric)")
        out_scale = self._scale(node, 4, where)
        bits = self._scalar_const(node, 5, where, "an output bit width")
        if scale.size != 1 or out_scale.size != 1 or bits.size != 1 or bits.reshape(()) != round(float(bits.reshape(()))):
            self._fail(where, "scales and bit widths must be scalars (bit width an integer)")
        bits = int(bits.reshape(()))
        signed, narrow = attrs.int("signed", 1), attrs.int("narrow", 0)
        mode = attrs.str("rounding_mode", "FLOOR").upper()
        if mode not in ("ROUND", "HALF_EVEN"):
            self._fail(where, f"Trunc with rounding_mode {mode} is not supported (hwgen requantizes with ROUND = "
                       "half to even)")
        if not 2 <= bits <= intmath.MAX_BITS:
            self._fail(where, f"a {bits}-bit output is outside hwgen's 2..{intmath.MAX_BITS} bits")
        lo = -(1 << (bits - 1)) + narrow if signed else 0
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
        trunc = 2.0 ** round(math.log2(float(out_scale.reshape(())) / float(scale.reshape(()))))
        self.truncs[prev.name] = (float(scale.reshape(())), trunc)
        self._quantized(node, where, Quantizer(out_scale.reshape(-1), lo, hi, mode, where), x)

    def _bipolar(self, node, where):
        x = self._input(node, 0, where)
        if not isinstance(x, Const):
            self._fail(where, "BipolarQuant of an activation (a sign function) is not in hwgen's integer contract; "
                       "only bipolar weights are")
        scale = self._scale(node, 1, where)
        ints = np.where(x.array >= 0, 1, -1).astype(np.int64)
        self._const_result(node, ints, Quantizer(scale, -1, 1, "ROUND", where), _axis_of(scale, ints))

    def _scale(self, node, k: int, where: str) -> np.ndarray:
        s = self._scalar_const(node, k, where, "a scale")
        if not (np.isfinite(s).all() and (s > 0).all()):
            self._fail(where, "scales must be finite and positive")
        return s

    def _quantized(self, node, where: str, qz: Quantizer, x) -> None:
        """The output of a quantizer `qz` applied to `x` (Quant, or a whole QDQ chain)."""
        if isinstance(x, Const):
            axis = _axis_of(qz.scale, x.array)
            return self._const_result(node, qz.ints(x.array, axis), qz, axis)
        if not isinstance(x, Act):
            self._fail(where, "the quantized input must be an activation or a constant")
        if qz.scale.size != 1:
            self._fail(where, "per-channel activation scales are not supported (hwgen activations have one scale)")
        if qz.bits > intmath.MAX_BITS:
            self._fail(where, f"a {qz.bits}-bit activation is wider than hwgen's {intmath.MAX_BITS} bits")
        if qz.rounding not in ("ROUND", "HALF_EVEN") and not (qz.rounding == "HALF_UP" and not qz.signed):
            self._fail(where, f"rounding_mode {qz.rounding} on activations is not supported "
                       "(hwgen requantizes with ROUND = half to even, or HALF_UP on unsigned values)")
        if x.node in self.act_quant and not self.act_quant[x.node].same(qz):
            self._fail(where, f"a second, different quantizer on the output of '{x.node}' is not supported")
        self.act_quant[x.node] = qz
        self.tensor_of[x.node] = node.output[0]
        self.alias(node.output[0], x, where)

    def _const_result(self, node, ints: np.ndarray, qz: Quantizer, axis: int | None) -> None:
        real = (ints * _broadcast(qz.scale, ints.ndim, axis)).astype(np.float32)
        self.const_quant[node.output[0]] = (ints, qz)
        self.values[node.output[0]] = Const(real, f"quantized constant '{node.output[0]}'")

    # -- QDQ ----------------------------------------------------------------------------------------
    def _qdq_range(self, node, where: str) -> tuple[int, int]:
        zp_name = node.input[2] if len(node.input) > 2 else ""
        kind = self.tensor_types.get(zp_name, TensorProto.UINT8) if zp_name else TensorProto.UINT8
        if kind not in _QDQ_RANGES:
            self._fail(where, f"zero point of type {kind} is not supported (int8/uint8/int16/uint16/int32)")
        if zp_name:
            zp = self._const(node, 2, where, "the zero point")
            if np.any(zp != 0):
                self._fail(where, "non-zero zero points are not supported (hwgen's integers are symmetric)")
        return _QDQ_RANGES[kind]

    def _axis(self, node, where: str, scale: np.ndarray, rank: int) -> int | None:
        from .onnx import _Attrs

        attrs = _Attrs(node, self.path, where)
        if any(a not in ("axis",) for a in attrs.names):
            self._fail(where, f"attributes {attrs.names} are not supported (only axis)")
        if scale.size == 1 and scale.ndim <= 1:
            return None
        axis = attrs.int("axis", 1)
        axis = axis + rank if axis < 0 else axis
        if scale.ndim != 1 or not 0 <= axis < rank:
            self._fail(where, f"scale of shape {scale.shape} with axis {axis} does not fit a rank-{rank} tensor")
        return axis

    def _quantize_linear(self, node, where):
        x = self._input(node, 0, where)
        scale = self._scale(node, 1, where)
        lo, hi = self._qdq_range(node, where)
        rank = x.array.ndim if isinstance(x, Const) else 1 + len(self.shape(x.node)) if isinstance(x, Act) else 0
        axis = self._axis(node, where, scale, rank)
        self.values[node.output[0]] = _QInt(x.array if isinstance(x, Const) else x,
                                            Quantizer(scale.reshape(-1), lo, hi, "ROUND", where), axis)

    def _clip_ints(self, node, where):
        q = self._input(node, 0, where)
        if isinstance(q, Const):  # an integer initializer (QCDQ weights)
            q = self._int_const(node.input[0], q, where)
        bounds = [self._const(node, k, where, f"the {b} bound") for k, b in ((1, "min"), (2, "max"))]
        if any(b is None or b.size != 1 for b in bounds):
            self._fail(where, "a Clip of integers needs constant scalar min and max")
        lo, hi = (int(b.reshape(())) for b in bounds)
        if q.quantizer is None:  # an integer initializer: clipped here, its scale comes with the DequantizeLinear
            lo, hi = max(q.bounds[0], lo), min(q.bounds[1], hi)
            self.values[node.output[0]] = _QInt(np.clip(q.source, lo, hi), None, None, (lo, hi))
            return
        qz = q.quantizer
        narrowed = Quantizer(qz.scale, max(qz.lo, lo), min(qz.hi, hi), qz.rounding, qz.what)
        self.values[node.output[0]] = _QInt(q.source, narrowed, q.axis)

    def _int_const(self, name: str, c: Const, where: str) -> _QInt:
        kind = self.tensor_types.get(name)
        if kind not in _QDQ_RANGES:
            self._fail(where, f"integer tensor '{name}' must be an int8, uint8, int16, uint16 or int32 initializer")
        return _QInt(c.array, None, None, _QDQ_RANGES[kind])

    def _dequantize_linear(self, node, where):
        q = self._input(node, 0, where)
        scale = self._scale(node, 1, where)
        if isinstance(q, Const) and q.array.dtype == np.int64:  # an integer initializer
            q = self._int_const(node.input[0], q, where)
        if not isinstance(q, _QInt):
            self._fail(where, "DequantizeLinear must read a QuantizeLinear, a Clip of one, or integer constants")
        self._qdq_range(node, where)
        if q.quantizer is None:
            ints = q.source
            axis = self._axis(node, where, scale, ints.ndim)
            return self._const_result(node, ints, Quantizer(scale.reshape(-1), *q.bounds, "ROUND", where), axis)
        qz = q.quantizer
        rank = q.source.ndim if isinstance(q.source, np.ndarray) else 1 + len(self.shape(q.source.node))
        if not np.array_equal(scale.reshape(-1), qz.scale) or self._axis(node, where, scale, rank) != q.axis:
            self._fail(where, "DequantizeLinear's scale or axis differs from its QuantizeLinear's")
        x = Const(q.source, "constant") if isinstance(q.source, np.ndarray) else q.source
        self._quantized(node, where, qz, x)


def _axis_of(scale: np.ndarray, x: np.ndarray) -> int | None:
    """The axis a per-channel scale runs along (the one dimension it does not broadcast)."""
    if scale.size == 1:
        return None
    dims = [k for k, d in enumerate(scale.shape) if d != 1]
    if scale.ndim != x.ndim or len(dims) != 1 or scale.shape[dims[0]] != x.shape[dims[0]]:
        raise HwgenError(f"a per-channel scale of shape {scale.shape} does not fit a tensor of shape {x.shape}")
    return dims[0]


def load_quantized(path, model, input_shape=None, tensors: dict | None = None) -> Graph:
    """The quantized IR of an ONNX model with quantizer nodes (see the module docstring).

    `tensors`, when given, is filled with IR node -> name of the ONNX tensor holding the same
    values dequantized (for comparing node by node with an ONNX executor).
    """
    t = _QuantTranslator(path, model)
    g = t.graph(input_shape)
    _assign(g, t)
    if tensors is not None:
        tensors.update(_tensor_names(g, t))
    return g


def _tensor_names(g: Graph, t: _QuantTranslator) -> dict[str, str]:
    """IR node -> ONNX tensor, for nodes whose output the model quantizes itself."""
    out = {}
    for n in g.nodes:
        src = _quantizer_owner(g, n.name)
        if src in t.tensor_of:
            out[n.name] = t.tensor_of[src]
    return out


def _quantizer_owner(g: Graph, name: str) -> str:
    """The node whose recorded quantizer gives `name`'s output: itself, or the ReLU fused after it."""
    from ..quantize import fused_relu

    node = g.node(name)
    if fused_relu(g, node):
        return g.consumers(name)[0].name
    return name


def _assign(g: Graph, t: _QuantTranslator) -> None:
    """Fill `node.quant` on every node from the model's quantizers (the integer contract)."""
    from ..quantize import classifier, fused_relu

    head = classifier(g)
    for node in g.nodes:
        qz = _output_quantizer(g, t, node.name)
        ins = [g.node(i).quant for i in node.inputs]
        where = f"{t.path}: node '{node.name}'"
        if node.op == "input":
            if qz is None:
                raise HwgenError(f"{where}: the model's input is not quantized (a quantizer must follow the input)")
            if (qz.lo, qz.hi) != intmath.qrange(qz.bits, qz.signed):
                raise HwgenError(f"{where}: a narrow-range input quantizer is not supported")
            node.quant = QuantInfo(act_bits=_act_bits(qz, where), out_scale=qz.scalar, signed=qz.signed)
        elif node.op in ("conv2d", "linear"):
            node.quant = _weighted(g, node, t, ins[0], qz, node is head and qz is None, fused_relu(g, node), where)
        elif node.op in ("relu", "maxpool2d", "flatten"):
            src = ins[0]
            if node.op == "relu" and fused_relu(g, g.node(node.inputs[0])):
                src = g.node(node.inputs[0]).quant
                node.quant = QuantInfo(act_bits=src.act_bits, out_scale=src.out_scale, signed=False)
                continue
            node.quant = QuantInfo(act_bits=src.act_bits, out_scale=src.out_scale,
                                   signed=src.signed and node.op != "relu")
            if qz is not None and not _is_identity(qz, node.quant):
                raise HwgenError(f"{where}: the model requantizes the output of a {node.op} "
                                 f"(scale {qz.scalar:g}, [{qz.lo}, {qz.hi}]); hwgen moves integers there")
        elif node.op == "avgpool2d":
            if qz is None:
                raise HwgenError(f"{where}: average pooling needs an output quantizer in the model")
            kh, kw = node.attrs["kernel"]
            ratio = ins[0].out_scale / (kh * kw * qz.scalar)
            if node.name in t.truncs:  # the model divides the window sum by a power of two
                scale, trunc = t.truncs[node.name]
                if np.float32(scale) != np.float32(ins[0].out_scale / (kh * kw)):
                    raise HwgenError(f"{where}: Trunc's input scale {scale:g} is not the pool's input scale / "
                                     f"{kh * kw} (the window sum); not supported")
                ratio = 1.0 / trunc
            m, s = intmath.quantize_multiplier(ratio)
            node.quant = QuantInfo(act_bits=_act_bits(qz, where), out_scale=qz.scalar, signed=qz.signed,
                                   requant=_requant(node.out_shape[0], [m], [s], qz, False))
        elif node.op == "add":
            if qz is None:
                raise HwgenError(f"{where}: a residual add needs an output quantizer in the model")
            from ..quantize import _quantize_add

            base = _quantize_add(g, node, ins[0], ins[1], _act_bits(qz, where), qz.scalar)
            base.requant = _requant(node.out_shape[0], [1], [int(base.requant.shift[0])], qz, fused_relu(g, node))
            base.signed = qz.signed and not fused_relu(g, node)
            node.quant = base
        else:
            raise HwgenError(f"{where}: {node.op} is not supported in a quantized ONNX model")


def _output_quantizer(g: Graph, t: _QuantTranslator, name: str) -> Quantizer | None:
    """The quantizer of a node's output; with a fused ReLU, the one before it and the one after it
    combined (same scale: a clamp after a clamp)."""
    found = [t.act_quant[k] for k in dict.fromkeys((name, _quantizer_owner(g, name))) if k in t.act_quant]
    if len(found) < 2:
        return found[0] if found else None
    a, b = found
    if not np.array_equal(a.scale, b.scale) or a.rounding != b.rounding:
        raise HwgenError(f"{t.path}: node '{name}': quantizers before and after its ReLU differ in scale or rounding")
    return Quantizer(a.scale, max(a.lo, b.lo), min(a.hi, b.hi), a.rounding, a.what)


def _act_bits(qz: Quantizer, where: str) -> int:
    if not intmath.MIN_BITS <= qz.bits <= intmath.MAX_BITS:
        raise HwgenError(f"{where}: {qz.bits}-bit activations are outside hwgen's {intmath.MIN_BITS}..{intmath.MAX_BITS}")
    return qz.bits


def _is_identity(qz: Quantizer, q: QuantInfo) -> bool:
    """A quantizer that leaves every integer of `q` unchanged (same scale, range at least as wide)."""
    lo, hi = intmath.qrange(q.act_bits, q.signed)
    return qz.scalar == q.out_scale and qz.lo <= lo and qz.hi >= hi


def _requant(channels: int, multipliers, shifts, qz: Quantizer, relu: bool) -> Requant:
    m = np.broadcast_to(np.asarray(multipliers, dtype=np.int64), (channels,)).copy()
    s = np.broadcast_to(np.asarray(shifts, dtype=np.int64), (channels,)).copy()
    rounding = "half_up" if qz.rounding == "HALF_UP" else "half_even"
    return Requant(m, s, max(qz.lo, 0) if relu else qz.lo, qz.hi, rounding)


def _weighted(g: Graph, node: Node, t: _QuantTranslator, src: QuantInfo, qz: Quantizer | None, head: bool,
              relu: bool, where: str) -> QuantInfo:
    """A conv2d / linear layer's QuantInfo from its weight (and bias) quantizers and its output's."""
    w_name = t.layer_weight.get(node.name, "")
    if w_name not in t.const_quant:
        raise HwgenError(f"{where}: its weights are not quantized in the model (no Quant / DequantizeLinear on them)")
    ints, wq = t.const_quant[w_name]
    if not intmath.MIN_BITS <= wq.bits <= intmath.MAX_BITS:
        raise HwgenError(f"{where}: {wq.bits}-bit weights are outside hwgen's {intmath.MIN_BITS}..{intmath.MAX_BITS}")
    bits = max(wq.bits, 2)
    m = node.weight.shape[0]
    s_w = np.broadcast_to(wq.scale.reshape(-1), (m,)).astype(np.float64) if wq.scale.size in (1, m) else None
    if s_w is None:
        raise HwgenError(f"{where}: {wq.scale.size} weight scales for {m} output channels")
    shape = (-1,) + (1,) * (node.weight.ndim - 1)
    # The IR weight is the dequantized float (transposed as the op reads it): its integers are exact.
    q_w = np.round(node.weight.astype(np.float64) / s_w.reshape(shape))
    if np.abs(q_w * s_w.reshape(shape) - node.weight).max(initial=0) > 1e-6 * np.abs(node.weight).max(initial=1):
        raise HwgenError(f"{where}: its weights are not the quantizer's integers times its scales (a batch norm "
                         "folded after a quantized layer, or a scale along another axis); fold batch norm before "
                         "quantization-aware training or export")
    q_w = q_w.astype(np.int64)
    acc_scale = src.out_scale * s_w
    b = np.zeros(m) if node.bias is None else node.bias.astype(np.float64)
    q_b = np.round(b / acc_scale)
    lo_b, hi_b = intmath.qrange(intmath.BIAS_BITS, True)
    if not np.all((q_b >= lo_b) & (q_b <= hi_b)):
        raise HwgenError(f"{where}: bias does not fit int32 in accumulator units")
    q_b = q_b.astype(np.int64)
    if head:
        if np.unique(s_w).size != 1:
            raise HwgenError(f"{where}: a classifier with per-channel weight scales needs an output quantizer "
                             "(its logits would not share one scale)")
        return QuantInfo(act_bits=src.act_bits, out_scale=float(acc_scale[0]), signed=True, weight_bits=bits,
                         weight=q_w, weight_scale=s_w.copy(), bias=q_b, requant=None)
    if qz is None:
        raise HwgenError(f"{where}: its output is not quantized in the model (hwgen needs a quantizer after "
                         "every layer but the classifier)")
    m_s = [intmath.quantize_multiplier(float(r)) for r in acc_scale / qz.scalar]
    requant = _requant(m, [a for a, _ in m_s], [s for _, s in m_s], qz, relu)
    return QuantInfo(act_bits=_act_bits(qz, where), out_scale=qz.scalar, signed=qz.signed and not relu,
                     weight_bits=bits, weight=q_w, weight_scale=s_w.copy(), bias=q_b, requant=requant)


def exactness(g: Graph) -> list[str]:
    """Nodes where hwgen's integers may differ from the model's own (a requant ratio that is not a
    power of two, or a bias that is not an integer in accumulator units); empty means bit-exact."""
    inexact = []
    for n in g.nodes:
        q = n.quant
        r = q.requant
        if r is not None and np.any(r.multiplier & (r.multiplier - 1)):
            inexact.append(n.name)
        elif n.op in ("conv2d", "linear") and n.bias is not None:
            acc = g.node(n.inputs[0]).quant.out_scale * q.weight_scale
            if not np.array_equal(q.bias * acc, n.bias.astype(np.float64)):
                inexact.append(n.name)
    return inexact
