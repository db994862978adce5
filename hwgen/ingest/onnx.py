"""ONNX models (`.onnx`) -> the hwgen IR; parsing protobuf executes nothing, and everything is checked.

Ops of the default domain are mapped onto the IR: Conv (any kernel, stride, dilation, group;
padding when it is symmetric, explicit or `auto_pad`), BatchNormalization (folded into the Conv or
Gemm before it), Relu and Clip(0, inf), MaxPool, AveragePool, GlobalAveragePool, Add (residual; or
the bias of a MatMul), Flatten and Reshape when they flatten, Gemm and MatMul (linear), Identity
and Dropout (pass through). Constant, and Shape/Gather/Unsqueeze/Concat on constants (how
`x.view(x.size(0), -1)` exports), are evaluated here. Any other op is refused, naming the node and
the op.

Tensors come from initializers and Constant nodes: raw little-endian bytes or typed fields, their
size checked against their dims before anything is allocated; NaN is refused everywhere, infinity
wherever a weight, bias or batch-norm parameter is read (it is a legitimate Clip bound). External data is
read only from files inside the model's own folder, within their size. The graph is sorted
topologically here (so a cycle, an undefined tensor, a second producer of a name are errors), and
it must have exactly one tensor input and one output.

IR nodes are named after the module that produced them when the node names are the scope paths
torch's exporter writes (`/features/features.3/body/body.0/Conv` -> `features.3.body.0`), so an
exported model gets the same names as its `.pt2`; other node names are kept as they are.
"""

from __future__ import annotations

import heapq
import math
import os
from pathlib import Path

import numpy as np
from onnx import AttributeProto, ModelProto, TensorProto

from ..errors import HwgenError
from ..ir import Graph
from .builder import Act, Const, GraphBuilder, Unusable

MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit for one message
# TensorProto.DataType -> little-endian numpy type; float16/bfloat16 in typed fields sit in int32_data.
_FLOAT_TYPES = {TensorProto.FLOAT: "<f4", TensorProto.FLOAT16: "<f2", TensorProto.DOUBLE: "<f8",
                TensorProto.BFLOAT16: "bfloat16"}
_INT_TYPES = {TensorProto.INT32: "<i4", TensorProto.INT64: "<i8", TensorProto.BOOL: "u1"}


def load_onnx(path: str | Path, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Read an ONNX model file into a shape-checked IR graph."""
    path = Path(path)
    model = _parse(path)
    try:
        from .qonnx import has_quantizers, load_quantized

        if has_quantizers(model):  # learned quantization (QONNX, QDQ): a quantized graph
            return load_quantized(path, model, input_shape)
        return _Translator(path, model).graph(input_shape)
    except HwgenError as e:  # names from the file may hold line breaks or control characters
        raise HwgenError(_printable(str(e))) from None
    except (TypeError, ValueError, UnicodeDecodeError) as e:
        # Fields the ONNX schema allows but no exporter writes (e.g. names that are not UTF-8).
        raise HwgenError(_printable(f"{path}: malformed ONNX model ({type(e).__name__}: {e})")) from None


def _parse(path: Path):
    from google.protobuf.message import DecodeError

    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise HwgenError(f"{path}: {size} bytes is more than one ONNX protobuf can hold")
    try:
        model = ModelProto.FromString(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError, RecursionError) as e:
        raise HwgenError(f"{path}: not a readable ONNX model (protobuf: {str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if model.ir_version < 1 or not model.HasField("graph") or not model.graph.node:
        raise HwgenError(f"{path}: not an ONNX model (no ir_version or no graph nodes)")
    if not any(op.domain in ("", "ai.onnx") for op in model.opset_import):
        raise HwgenError(f"{path}: the model imports no standard ONNX opset")
    return model


class _Translator(GraphBuilder):
    int_types = _INT_TYPES  # integer tensor types read (hwgen.ingest.qonnx adds the QDQ ones)

    def __init__(self, path: Path, model):
        self.path = path
        self.g = model.graph
        self.initializers = {}
        for t in self.g.initializer:
            if t.name in self.initializers:
                raise HwgenError(f"{path}: initializer '{t.name}' is defined twice")
            self.initializers[t.name] = t
        if self.g.sparse_initializer:
            raise HwgenError(f"{path}: sparse initializers are not supported")
        uses: dict[str, int] = {}
        for n in self.g.node:
            for name in n.input:
                if name:
                    uses[name] = uses.get(name, 0) + 1
        for o in self.g.output:
            uses[o.name] = uses.get(o.name, 0) + 1
        super().__init__(path.stem, uses)

    # -- driver -----------------------------------------------------------------------------------
    def graph(self, input_shape) -> Graph:
        self._bind_input()
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if self.input_shape is None:
            raise HwgenError(f"{self.path}: the graph input's shape is not fixed (symbolic); pass --input-shape C,H,W")
        if len(self.g.output) != 1:
            raise HwgenError(f"{self.path}: the graph has {len(self.g.output)} outputs; hwgen needs exactly one")
        for node in self._sorted_nodes():
            self._translate(node)
        out = self.values.get(self.g.output[0].name)
        if not isinstance(out, Act):
            raise HwgenError(f"{self.path}: the graph output '{self.g.output[0].name}' is not an activation")
        return self.finish(out)

    def _bind_input(self) -> None:
        user = [i for i in self.g.input if i.name not in self.initializers]
        if len(user) != 1:
            raise HwgenError(f"{self.path}: the graph takes {len(user)} inputs; hwgen needs exactly one")
        inp = user[0]
        if not inp.type.HasField("tensor_type"):
            raise HwgenError(f"{self.path}: graph input '{inp.name}' is not a tensor")
        tt = inp.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            raise HwgenError(f"{self.path}: graph input '{inp.name}' has element type "
                             f"{_type_name(tt.elem_type)}; hwgen reads float models")
        self.bind(inp.name, self.emit("input", "input", ()))
        if tt.HasField("shape") and len(tt.shape.dim) in (2, 4):
            dims = tt.shape.dim[1:]  # drop the batch dimension, which may be symbolic
            if all(d.HasField("dim_value") for d in dims):
                if any(d.dim_value < 1 for d in dims):
                    raise HwgenError(f"{self.path}: graph input '{inp.name}' has a non-positive dimension")
                self.input_shape = tuple(int(d.dim_value) for d in dims)
        elif tt.HasField("shape"):
            raise HwgenError(f"{self.path}: graph input '{inp.name}' has {len(tt.shape.dim)} dimensions; "
                             "hwgen reads (N, C, H, W) or (N, F) inputs")

    def _sorted_nodes(self) -> list:
        """The graph's nodes in a topological order; every tensor defined exactly once."""
        nodes = list(self.g.node)
        defined = set(self.initializers) | {i.name for i in self.g.input}
        producer: dict[str, int] = {}
        for k, n in enumerate(nodes):
            for o in n.output:
                if not o:
                    continue
                if o in producer or o in defined:
                    raise HwgenError(f"{self.path}: {_where(n)}: tensor '{o}' is defined more than once")
                producer[o] = k
        deps: list[set[int]] = []
        for n in nodes:
            d = set()
            for i in n.input:
                if not i:
                    continue
                if i in producer:
                    d.add(producer[i])
                elif i not in defined:
                    raise HwgenError(f"{self.path}: {_where(n)}: input '{i}' is not defined "
                                     "(no node, initializer or graph input has that name)")
            deps.append(d)
        # Kahn's algorithm, taking the lowest index first so a sorted graph keeps its order.
        waiting = [len(d) for d in deps]
        users: list[list[int]] = [[] for _ in nodes]
        for k, d in enumerate(deps):
            for j in d:
                users[j].append(k)
        ready = [k for k, w in enumerate(waiting) if w == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            k = heapq.heappop(ready)
            order.append(nodes[k])
            for u in users[k]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(nodes):
            stuck = next(nodes[k] for k, w in enumerate(waiting) if w > 0)
            raise HwgenError(f"{self.path}: the graph has a cycle (through {_where(stuck)})")
        return order

    # -- values -----------------------------------------------------------------------------------
    def _value(self, name: str, where: str):
        if name not in self.values and name in self.initializers:
            self.values[name] = Const(self._tensor(self.initializers[name], f"initializer '{name}'"),
                                      f"initializer '{name}'")
        if name not in self.values:
            raise HwgenError(f"{self.path}: {where}: tensor '{name}' is not available")
        return self.values[name]

    def _input(self, node, k: int, where: str):
        """Input `k` of `node`, or None when it is absent (optional inputs)."""
        if k >= len(node.input) or not node.input[k]:
            return None
        return self._value(node.input[k], where)

    def _const(self, node, k: int, where: str, what: str, ndim: int | None = None) -> np.ndarray | None:
        v = self._input(node, k, where)
        if v is None:
            return None
        if not isinstance(v, Const):
            raise HwgenError(f"{self.path}: {where}: {what} must be a constant (an initializer)")
        a = v.array
        if ndim is not None and a.ndim != ndim:
            raise HwgenError(f"{self.path}: {where}: {what} has shape {a.shape}, expected {ndim} dimensions")
        if a.size == 0:
            raise HwgenError(f"{self.path}: {where}: {what} is empty")
        if a.dtype == np.float32 and not np.isfinite(a).all():
            raise HwgenError(f"{self.path}: {where}: {what} contains infinite values")
        return a

    def _tensor(self, t, what: str) -> np.ndarray:
        """A TensorProto as a numpy array (float32 for float types, int64 for integer types)."""
        dtype = _FLOAT_TYPES.get(t.data_type) or self.int_types.get(t.data_type)
        if dtype is None:
            raise HwgenError(f"{self.path}: {what} has element type {_type_name(t.data_type)}; "
                             "hwgen reads float tensors (and int32/int64/bool ones for shapes and flags)")
        if t.HasField("segment"):
            raise HwgenError(f"{self.path}: {what} is segmented; not supported")
        dims = list(t.dims)
        if any(d < 0 for d in dims):
            raise HwgenError(f"{self.path}: {what} has negative dims {dims}")
        count = int(np.prod(dims, dtype=object)) if dims else 1
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        need = count * itemsize
        if t.data_location == TensorProto.EXTERNAL:
            raw = self._external(t, what, need)
        elif t.HasField("raw_data"):
            raw = t.raw_data
            if len(raw) != need:
                raise HwgenError(f"{self.path}: {what} has {len(raw)} bytes of raw_data, but dims {dims} "
                                 f"need {need}")
        else:
            raw = self._typed_field(t, what, dtype, count)
        if dtype == "bfloat16":
            flat = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            flat = np.frombuffer(raw, dtype=dtype)
        if t.data_type in _FLOAT_TYPES:
            # Infinity is a legitimate Clip bound; `_const` refuses it where a weight is read.
            arr = flat.astype(np.float32).reshape(dims)
            if np.isnan(arr).any():
                raise HwgenError(f"{self.path}: {what} contains NaN values")
            return arr
        return flat.astype(np.int64).reshape(dims)

    def _typed_field(self, t, what: str, dtype: str, count: int) -> bytes:
        """The bytes of a tensor stored in TensorProto's typed repeated fields."""
        field = {TensorProto.FLOAT: t.float_data, TensorProto.DOUBLE: t.double_data,
                 TensorProto.INT64: t.int64_data}.get(t.data_type, t.int32_data)
        if len(field) != count:
            raise HwgenError(f"{self.path}: {what} holds {len(field)} values, but its dims {list(t.dims)} "
                             f"need {count}")
        if t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16):  # the bits, one value per int32
            return np.asarray(field, dtype=np.int64).astype("<u2").tobytes()
        if t.data_type == TensorProto.BOOL:
            return (np.asarray(field, dtype=np.int64) != 0).astype("u1").tobytes()
        return np.asarray(field, dtype=dtype).tobytes()

    def _external(self, t, what: str, need: int) -> bytes:
        """Bytes of an external-data tensor, from a file inside the model's folder only."""
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        folder = self.path.resolve().parent
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or folder not in target.parents:
            raise HwgenError(f"{self.path}: {what} points to external data '{location}' outside the model's folder; refused")
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else need
        except ValueError:
            raise HwgenError(f"{self.path}: {what} has a malformed external-data offset or length") from None
        if length != need or offset < 0:
            raise HwgenError(f"{self.path}: {what} has external data of {length} bytes, but its dims "
                             f"{list(t.dims)} need {need}")
        if not target.is_file():
            raise HwgenError(f"{self.path}: {what}: external data file '{location}' does not exist")
        if offset + need > target.stat().st_size:
            raise HwgenError(f"{self.path}: {what}: external data file '{location}' is shorter than "
                             f"offset {offset} + {need} bytes")
        with open(target, "rb") as f:
            f.seek(offset)
            return f.read(need)

    # -- ops --------------------------------------------------------------------------------------
    def _translate(self, node) -> None:
        where = _where(node)
        if node.domain not in ("", "ai.onnx"):
            raise HwgenError(f"{self.path}: {where}: op {node.domain}.{node.op_type} is not supported by the hwgen IR")
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            raise HwgenError(f"{self.path}: {where}: op {node.op_type} is not supported by the hwgen IR")
        if not node.output or not node.output[0]:
            raise HwgenError(f"{self.path}: {where}: the node has no output")
        handler(node, _ir_name(node), where, _Attrs(node, self.path, where))

    def _out(self, node, ir_node) -> None:
        self.bind(node.output[0], ir_node)
        for extra in node.output[1:]:
            if extra:
                self.values[extra] = Unusable(f"output '{extra}' of {node.op_type}")

    def _x(self, node, where: str) -> Act:
        v = self._input(node, 0, where)
        if not isinstance(v, Act):
            raise HwgenError(f"{self.path}: {where}: the first input must be an activation")
        return v

    def _fail(self, where: str, msg: str):
        raise HwgenError(f"{self.path}: {where}: {msg}")

    def _op_Constant(self, node, base, where, attrs):
        if len(attrs.names) != 1:
            self._fail(where, "a Constant needs exactly one value attribute")
        key = attrs.names[0]
        if key == "value":
            arr = self._tensor(attrs.get(key, AttributeProto.TENSOR).t, f"constant '{node.output[0]}'")
        elif key == "value_float":
            arr = np.asarray(attrs.float(key), dtype=np.float32)
        elif key == "value_int":
            arr = np.asarray(attrs.int(key), dtype=np.int64)
        elif key in ("value_floats", "value_ints"):
            a = attrs.get(key, AttributeProto.FLOATS if key == "value_floats" else AttributeProto.INTS)
            arr = np.asarray(a.floats, dtype=np.float32) if key == "value_floats" else np.asarray(a.ints, dtype=np.int64)
        else:
            self._fail(where, f"Constant with '{key}' is not supported")
        if arr.dtype == np.float32 and np.isnan(arr).any():
            self._fail(where, "the constant contains NaN values")
        self.values[node.output[0]] = Const(arr, f"constant '{node.output[0]}'")

    def _op_Identity(self, node, base, where, attrs):
        v = self._input(node, 0, where)
        if v is None:
            self._fail(where, "has no input")
        self.alias(node.output[0], v, where)

    def _op_Dropout(self, node, base, where, attrs):
        training = self._const(node, 2, where, "training_mode")
        if training is not None and training.any():
            self._fail(where, "dropout in training mode; export the model in eval mode")
        self._op_Identity(node, base, where, attrs)
        if len(node.output) > 1 and node.output[1]:
            self.values[node.output[1]] = Unusable("dropout mask")

    def _op_Conv(self, node, base, where, attrs):
        x = self._x(node, where)
        w = self._const(node, 1, where, "the weight", 4)
        if w is None:
            self._fail(where, "has no weight")
        kernel = tuple(w.shape[2:])
        if attrs.ints("kernel_shape", 2, kernel) != kernel:
            self._fail(where, f"kernel_shape {list(attrs.ints('kernel_shape', 2))} disagrees with the weight's {kernel}")
        stride = attrs.ints("strides", 2, (1, 1))
        dilation = attrs.ints("dilations", 2, (1, 1))
        padding = self._padding(x, attrs, kernel, stride, dilation, where)
        groups = attrs.int("group", 1)
        if groups < 1:
            self._fail(where, f"group {groups!r} must be a positive integer")
        b = self._const(node, 2, where, "the bias", 1)
        if b is not None and b.shape != (w.shape[0],):
            self._fail(where, f"bias has shape {b.shape}, expected ({w.shape[0]},)")
        self._out(node, self.emit(base, "conv2d", (x.node,),
                                  attrs=dict(kernel=kernel, stride=stride, padding=padding,
                                             dilation=dilation, groups=groups),
                                  weight=w.copy(), bias=None if b is None else b.copy()))

    def _padding(self, x: Act, attrs: _Attrs, kernel, stride, dilation, where: str) -> tuple[int, int]:
        """Symmetric (pad_h, pad_w) from `pads` or `auto_pad`; asymmetric padding is refused."""
        mode = attrs.str("auto_pad", "NOTSET")
        if mode == "VALID":
            return (0, 0)
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            _, h, w = self.spatial_shape(x, where)
            totals = [max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
                      for size, k, s, d in zip((h, w), kernel, stride, dilation)]
            if any(t % 2 for t in totals):
                self._fail(where, f"auto_pad={mode} pads {h}x{w} asymmetrically; not representable in the hwgen IR")
            return (totals[0] // 2, totals[1] // 2)
        if mode != "NOTSET":
            self._fail(where, f"unknown auto_pad '{mode}'")
        pads = attrs.ints("pads", 4, (0, 0, 0, 0), minimum=0)
        if pads[0] != pads[2] or pads[1] != pads[3]:
            self._fail(where, f"asymmetric pads {list(pads)} are not representable in the hwgen IR")
        return (pads[0], pads[1])

    def _op_BatchNormalization(self, node, base, where, attrs):
        if attrs.int("training_mode", 0) or any(o for o in node.output[1:]):
            self._fail(where, "batch norm in training mode; export the model in eval mode")
        x = self._x(node, where)
        params = [self._const(node, k, where, what, 1)
                  for k, what in enumerate(("scale", "bias", "mean", "var"), start=1)]
        if any(p is None for p in params):
            self._fail(where, "needs scale, bias, mean and var")
        eps = attrs.float("epsilon", 1e-5)
        gamma, beta, mean, var = params
        try:
            self.fold_batchnorm(x, node.output[0], where, mean=mean, var=var, gamma=gamma, beta=beta, eps=eps,
                                name=base)
        except HwgenError as e:
            raise HwgenError(f"{self.path}: {e}") from None

    def _op_Relu(self, node, base, where, attrs):
        self._out(node, self.emit(base, "relu", (self._x(node, where).node,)))

    def _op_Clip(self, node, base, where, attrs):
        """Clip(0, inf) is a ReLU and Clip(-inf, inf) passes through; other ranges are clip nodes."""
        x = self._x(node, where)
        bounds = []
        for k, attr, default in ((1, "min", -math.inf), (2, "max", math.inf)):
            v = self._input(node, k, where)
            if v is not None and (not isinstance(v, Const) or v.array.size != 1):
                self._fail(where, f"the {attr} bound must be a constant scalar")
            bounds.append(float(v.array.reshape(())) if v is not None else attrs.float(attr, default))
        try:
            self.clip(node.output[0], x, *bounds, base, where)
        except HwgenError as e:
            raise HwgenError(f"{self.path}: {e}") from None

    def _op_Sigmoid(self, node, base, where, attrs):
        self._out(node, self.emit(base, "sigmoid", (self._x(node, where).node,)))

    def _op_Mul(self, node, base, where, attrs):
        """x * Sigmoid(x), how exporters write SiLU: the sigmoid node becomes a silu node."""
        a, b = self._input(node, 0, where), self._input(node, 1, where)
        for x, s in ((a, b), (b, a)):
            sig = self.nodes[-1] if isinstance(x, Act) and isinstance(s, Act) and self.nodes else None
            if sig is not None and sig.name == s.node and sig.op == "sigmoid" and sig.inputs == (x.node,) \
                    and self.pending.get(sig.name) == 1:
                self.nodes.pop()
                return self._out(node, self.emit(base, "silu", (x.node,)))
        self._fail(where, "Mul is supported only as x * Sigmoid(x) (SiLU)")

    def _op_ReduceMean(self, node, base, where, attrs):
        """The mean over H and W: a global average pooling (flattened unless keepdims)."""
        x = self._x(node, where)
        axes = self._const(node, 1, where, "the axes", 1)
        if axes is None:
            given = attrs.get("axes", AttributeProto.INTS)
            axes = [] if given is None else list(given.ints)
        axes = [int(a) for a in axes]
        if attrs.int("noop_with_empty_axes", 0) or sorted(a % 4 for a in axes) != [2, 3]:
            self._fail(where, f"ReduceMean over axes {axes} is not a global average pooling (axes 2, 3)")
        _, h, w = self.spatial_shape(x, where)
        pool = self.emit(base, "avgpool2d", (x.node,), attrs=dict(kernel=(h, w), stride=(h, w), padding=(0, 0)))
        if not attrs.int("keepdims", 1):
            pool = self.emit(f"{pool.name}.flatten", "flatten", (pool.name,))
        self._out(node, pool)

    # Shape arithmetic on constants (`x.view(x.size(0), -1)` exports as Shape/Gather/Unsqueeze/Concat):
    # evaluated here so the Reshape that consumes it sees a constant target shape.
    def _const_inputs(self, node, where: str) -> list[np.ndarray]:
        vals = [self._input(node, k, where) for k in range(len(node.input))]
        if not all(isinstance(v, Const) for v in vals):
            self._fail(where, f"{node.op_type} of activations is not supported by the hwgen IR (only of constants)")
        return [v.array for v in vals]

    def _fold(self, node, array: np.ndarray) -> None:
        self.values[node.output[0]] = Const(array, f"constant '{node.output[0]}'")

    def _op_Shape(self, node, base, where, attrs):
        v = self._input(node, 0, where)
        if isinstance(v, Act):
            shape = (1, *self.shape(v.node))  # the batch of one hwgen models
        elif isinstance(v, Const):
            shape = v.array.shape
        else:
            self._fail(where, "needs a tensor input")
        if attrs.names:
            self._fail(where, "Shape with start/end is not supported")
        self._fold(node, np.array(shape, dtype=np.int64))

    def _op_Gather(self, node, base, where, attrs):
        data, idx = self._const_inputs(node, where)
        axis = attrs.int("axis", 0)
        if idx.dtype != np.int64 or not -data.ndim <= axis < data.ndim or ((idx < -data.shape[axis]) | (idx >= data.shape[axis])).any():
            self._fail(where, f"Gather indices {idx.tolist()} out of range for shape {data.shape}")
        self._fold(node, np.take(data, idx, axis=axis))

    def _op_Unsqueeze(self, node, base, where, attrs):
        ins = self._const_inputs(node, where)
        axes = ins[1].tolist() if len(ins) > 1 else list(attrs.get("axes", AttributeProto.INTS).ints if "axes" in attrs.names else [])
        rank = ins[0].ndim + len(axes)
        if not axes or sorted({a % rank for a in axes if -rank <= a < rank}) != sorted(a % rank for a in axes):
            self._fail(where, f"bad Unsqueeze axes {axes}")
        self._fold(node, np.expand_dims(ins[0], [a % rank for a in axes]))

    def _op_Concat(self, node, base, where, attrs):
        acts = [self._input(node, k, where) for k in range(len(node.input))]
        if len(acts) == 1 and isinstance(acts[0], Act):  # a concatenation of one tensor is that tensor
            return self.alias(node.output[0], acts[0], where)
        if acts and all(isinstance(v, Act) for v in acts):
            rank = len(self.shape(acts[0].node)) + 1
            if attrs.int("axis") not in (1, 1 - rank):
                self._fail(where, f"concatenation along axis {attrs.int('axis')} is not supported (only channels, axis 1)")
            return self._out(node, self.emit(base, "concat", tuple(v.node for v in acts)))
        ins = self._const_inputs(node, where)
        axis = attrs.int("axis")
        if not ins or len({a.ndim for a in ins}) != 1 or not -ins[0].ndim <= axis < ins[0].ndim:
            self._fail(where, f"cannot concatenate {[a.shape for a in ins]} on axis {axis}")
        try:
            self._fold(node, np.concatenate(ins, axis=axis))
        except ValueError:
            self._fail(where, f"cannot concatenate {[a.shape for a in ins]} on axis {axis}")

    def _pool_attrs(self, node, x: Act, attrs: _Attrs, where: str) -> dict:
        kernel = attrs.ints("kernel_shape", 2)
        stride = attrs.ints("strides", 2, (1, 1))
        if attrs.ints("dilations", 2, (1, 1)) != (1, 1):
            self._fail(where, "dilated pooling is not supported")
        padding = self._padding(x, attrs, kernel, stride, (1, 1), where)
        ceil_mode = bool(attrs.int("ceil_mode", 0))
        if ceil_mode and node.op_type != "MaxPool":
            try:
                self.check_floor_pooling(x, kernel, stride, padding, where)
            except HwgenError as e:
                raise HwgenError(f"{self.path}: {e}") from None
        return dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode and node.op_type == "MaxPool")

    def _op_MaxPool(self, node, base, where, attrs):
        x = self._x(node, where)
        self._out(node, self.emit(base, "maxpool2d", (x.node,), attrs=self._pool_attrs(node, x, attrs, where)))

    def _op_AveragePool(self, node, base, where, attrs):
        x = self._x(node, where)
        a = self._pool_attrs(node, x, attrs, where)
        if a["padding"] != (0, 0) and not attrs.int("count_include_pad", 0):
            self._fail(where, "padded average pooling must count the padding (count_include_pad=1)")
        self._out(node, self.emit(base, "avgpool2d", (x.node,), attrs=a))

    def _op_GlobalAveragePool(self, node, base, where, attrs):
        x = self._x(node, where)
        _, h, w = self.spatial_shape(x, where)
        self._out(node, self.emit(base, "avgpool2d", (x.node,), attrs=dict(kernel=(h, w), stride=(h, w), padding=(0, 0))))

    def _op_Add(self, node, base, where, attrs):
        if len(node.input) != 2:
            self._fail(where, "Add takes two inputs")
        a, b = self._input(node, 0, where), self._input(node, 1, where)
        if isinstance(a, Act) and isinstance(b, Act):
            return self._out(node, self.emit(base, "add", (a.node, b.node)))
        act, const = (a, b) if isinstance(a, Act) else (b, a)
        if isinstance(act, Act) and isinstance(const, Const):
            return self._add_bias(node, act, const.array, where)
        self._fail(where, "only the addition of two activations (a residual add) or a linear layer's bias is supported")

    def _add_bias(self, node, x: Act, bias: np.ndarray, where: str) -> None:
        """MatMul + Add: the constant becomes the bias of the bias-less linear layer before it."""
        prev = self.nodes[[n.name for n in self.nodes].index(x.node)]
        if prev.op != "linear" or prev.bias is not None or self.pending.get(prev.name, 0) != 1:
            self._fail(where, "adding a constant is supported only as the bias of a MatMul it alone follows")
        n = prev.weight.shape[0]
        if bias.dtype != np.float32 or bias.reshape(-1).shape != (n,) or bias.ndim > 2:
            self._fail(where, f"bias of shape {bias.shape} does not fit the {n} outputs of '{prev.name}'")
        if not np.isfinite(bias).all():
            self._fail(where, "the bias contains infinite values")
        prev.bias = bias.reshape(n).copy()
        self.values[node.output[0]] = x
        self.pending[prev.name] = self.uses.get(node.output[0], 0)

    def _op_Flatten(self, node, base, where, attrs):
        x = self._x(node, where)
        shape = self.shape(x.node)
        if attrs.int("axis", 1) != 1:
            self._fail(where, f"Flatten(axis={attrs.int('axis', 1)}) must flatten everything but the batch")
        self._flatten(node, base, x, shape)

    def _op_Reshape(self, node, base, where, attrs):
        x = self._x(node, where)
        shape = self.shape(x.node)
        target = self._const(node, 1, where, "the target shape", 1)
        if target is None or target.dtype != np.int64:
            self._fail(where, "needs a constant integer target shape")
        t = [int(d) for d in target]
        size = int(np.prod(shape))
        if len(t) != 2 or t[1] not in (-1, size) or (t[1] == -1 and t[0] not in (0, 1)) or t[0] not in (-1, 0, 1):
            self._fail(where, f"reshape of {shape} to {t} is not a flatten (batch, features)")
        self._flatten(node, base, x, shape)

    def _flatten(self, node, base: str, x: Act, shape) -> None:
        if len(shape) == 1:
            return self.alias(node.output[0], x, base)  # already flat
        self._out(node, self.emit(base, "flatten", (x.node,)))

    def _op_Gemm(self, node, base, where, attrs):
        x = self._x(node, where)
        if attrs.int("transA", 0):
            self._fail(where, "Gemm with transA=1 is not supported")
        w = self._const(node, 1, where, "the weight B", 2)
        if w is None:
            self._fail(where, "has no weight")
        w = w if attrs.int("transB", 0) else w.T
        alpha, beta = attrs.float("alpha", 1.0), attrs.float("beta", 1.0)
        c = self._const(node, 2, where, "the bias C")
        if c is not None and (c.ndim > 2 or c.reshape(-1).shape != (w.shape[0],)):
            self._fail(where, f"bias C of shape {c.shape} does not fit {w.shape[0]} outputs")
        bias = None if c is None else (c.reshape(-1).astype(np.float64) * beta).astype(np.float32)
        self._linear(node, base, x, (w.astype(np.float64) * alpha).astype(np.float32), bias)

    def _op_MatMul(self, node, base, where, attrs):
        x = self._x(node, where)
        w = self._const(node, 1, where, "the weight", 2)
        if w is None:
            self._fail(where, "has no weight")
        self._linear(node, base, x, w.T, None)

    def _linear(self, node, base: str, x: Act, w: np.ndarray, bias) -> None:
        self._out(node, self.emit(base, "linear", (x.node,), weight=np.ascontiguousarray(w, dtype=np.float32),
                                  bias=bias))


# -- helpers ----------------------------------------------------------------------------------------
def _where(node) -> str:
    return f"node '{_text(node.name) or (_text(node.output[0]) if node.output else '?')}' ({_text(node.op_type)})"


def _text(s) -> str:
    """A protobuf string field; the python runtime hands invalid UTF-8 over as bytes."""
    return s.decode("utf-8", "replace") if isinstance(s, bytes) else s


def _printable(msg: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def _ir_name(node) -> str:
    """The module path from an exporter scope name, else the node's own name (or its op)."""
    name = _text(node.name)
    if not name.startswith("/"):
        return name or _text(node.op_type).lower()
    parts: list[str] = []
    for scope in name.strip("/").split("/")[:-1]:  # the last component is the op (`Conv`, `Relu_1`)
        # `/features/features.3/body/body.0`: a container's child is named after its parent's attribute.
        if parts and scope.startswith(parts[-1] + "."):
            parts[-1] = scope
        else:
            parts.append(scope)
    return ".".join(parts) or _text(node.op_type).lower()


class _Attrs:
    """A node's attributes, each read with the type the op expects (a wrong type is an error)."""

    _MISSING = object()

    def __init__(self, node, path: Path, where: str):
        self.prefix = f"{path}: {where}"
        self.by_name = {}
        for a in node.attribute:
            if a.ref_attr_name:
                raise HwgenError(f"{self.prefix}: attribute '{a.name}' refers to a function attribute; not supported")
            if a.name in self.by_name:
                raise HwgenError(f"{self.prefix}: attribute '{a.name}' is given twice")
            self.by_name[a.name] = a
        self.names = list(self.by_name)

    def get(self, name: str, kind: int):
        a = self.by_name.get(name)
        if a is not None and a.type != kind:
            raise HwgenError(f"{self.prefix}: attribute '{name}' has type {_attr_type(a.type)}, expected {_attr_type(kind)}")
        return a

    def _need(self, name: str, default):
        if default is self._MISSING:
            raise HwgenError(f"{self.prefix}: attribute '{name}' is required")
        return default

    def int(self, name: str, default=_MISSING) -> int:
        a = self.get(name, AttributeProto.INT)
        return self._need(name, default) if a is None else int(a.i)

    def float(self, name: str, default=_MISSING) -> float:
        a = self.get(name, AttributeProto.FLOAT)
        if a is None:
            return self._need(name, default)
        if not math.isfinite(a.f):
            raise HwgenError(f"{self.prefix}: attribute '{name}' is not finite")
        return float(a.f)

    def str(self, name: str, default=_MISSING) -> str:
        a = self.get(name, AttributeProto.STRING)
        return self._need(name, default) if a is None else a.s.decode("utf-8", "replace")

    def ints(self, name: str, n: int, default=_MISSING, minimum: int = 1) -> tuple[int, ...]:
        """`n` integers, each at least `minimum` (hwgen reads 2-d convolutions and pools)."""
        a = self.get(name, AttributeProto.INTS)
        if a is None:
            return self._need(name, default)
        v = [int(i) for i in a.ints]
        if len(v) != n:
            raise HwgenError(f"{self.prefix}: attribute '{name}' {v} is not {n} integers (hwgen reads 2-d convolutions and pools)")
        if any(i < minimum for i in v):
            raise HwgenError(f"{self.prefix}: attribute '{name}' {v} must be at least {minimum}")
        return tuple(v)


def _type_name(kind: int) -> str:
    try:
        return TensorProto.DataType.Name(kind)
    except ValueError:
        return str(kind)


def _attr_type(kind: int) -> str:
    try:
        return AttributeProto.AttributeType.Name(kind)
    except ValueError:
        return str(kind)
