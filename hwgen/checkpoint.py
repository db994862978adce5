"""The `.hwq` checkpoint: a `Graph` (float, or quantized with its `QuantInfo`) in a plain zip.

Layout (format "hwgen.hwq", version 1; see docs/quantization.md):
  graph.json         the graph: name, output, and per node name, op, inputs, attrs, out_shape,
                     weight, bias, quant (scalars inline, arrays as references);
  arrays/NNNN.bin    one raw little-endian array per reference `{"member", "dtype", "shape"}`.
Members are written in a fixed order with fixed timestamps, so the same graph gives the same bytes.

Loading reads only `graph.json` (json) and the referenced members (`numpy.frombuffer`): nothing in
the file is ever executed or unpickled. Everything is validated (format and version, members,
dtypes, sizes, ops, attrs, keys, bit widths, integer ranges, M and S, shapes) and any problem is
one `HwgenError` line naming the file and the node.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import intmath
from .errors import HwgenError
from .ir import OPS, WEIGHTED_OPS, Graph, Node, QuantInfo, Requant

FORMAT = "hwgen.hwq"
VERSION = 1
GRAPH_MEMBER = "graph.json"
MAX_GRAPH_JSON = 64 << 20  # a graph description, not data: anything larger is not ours
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# Stored dtypes: floats as float32 except the weight scales (float64, used in exact arithmetic
# downstream); integers as narrow as their contract allows. Loading widens to the IR's dtypes.
_STORE = {"weight": "<f4", "bias": "<f4", "q_weight": "<i1", "weight_scale": "<f8", "q_bias": "<i4",
          "multiplier": "<i4", "shift": "<i4"}
_FLOAT_DTYPES = {"<f4", "<f8"}
_INT_DTYPES = {"<i1", "<i2", "<i4", "<i8"}
_NODE_KEYS = {"name", "op", "inputs", "attrs", "out_shape", "weight", "bias", "quant"}
_QUANT_KEYS = {"act_bits", "out_scale", "signed", "weight_bits", "weight", "weight_scale", "bias", "requant",
               "input_multipliers"}
_REQUANT_KEYS = {"multiplier", "shift", "lo", "hi"}
_REF_KEYS = {"member", "dtype", "shape"}
_ATTRS = {"conv2d": {"kernel", "stride", "padding", "dilation", "groups"},
          "maxpool2d": {"kernel", "stride", "padding", "ceil_mode"}, "avgpool2d": {"kernel", "stride", "padding"},
          "clip": {"lo", "hi"}}
_REQUANT_OPS = ("conv2d", "linear", "avgpool2d", "add", "concat", "clip")


# -- saving ---------------------------------------------------------------------------------------


class _Writer:
    def __init__(self):
        self.members: list[tuple[str, bytes]] = []

    def array(self, a: np.ndarray | None, dtype: str) -> dict | None:
        if a is None:
            return None
        data = np.ascontiguousarray(a, dtype=np.dtype(dtype))
        name = f"arrays/{len(self.members):04d}.bin"
        self.members.append((name, data.tobytes()))
        return {"member": name, "dtype": dtype, "shape": list(data.shape)}


def _json_attr(key: str, v):
    if key in ("lo", "hi"):  # clip bounds; JSON has no infinity: an open side is null
        return float(v) if math.isfinite(v) else None
    if key == "ceil_mode":
        return bool(v)
    return list(map(int, v)) if isinstance(v, (tuple, list)) else int(v)


def _json_attrs(attrs: dict) -> dict:
    return {k: _json_attr(k, v) for k, v in attrs.items()}


def _quant_json(q: QuantInfo, w: _Writer) -> dict:
    r = q.requant
    return {
        "act_bits": int(q.act_bits), "out_scale": float(q.out_scale), "signed": bool(q.signed),
        "weight_bits": None if q.weight_bits is None else int(q.weight_bits),
        "weight": w.array(q.weight, _STORE["q_weight"]),
        "weight_scale": w.array(q.weight_scale, _STORE["weight_scale"]),
        "bias": w.array(q.bias, _STORE["q_bias"]),
        "requant": None if r is None else {"multiplier": w.array(r.multiplier, _STORE["multiplier"]),
                                           "shift": w.array(r.shift, _STORE["shift"]),
                                           "lo": int(r.lo), "hi": int(r.hi),
                                           # written only when not the default, so files of
                                           # `hwgen quantize` keep their bytes
                                           **({} if r.rounding == "half_up" else {"rounding": r.rounding})},
        "input_multipliers": None if q.input_multipliers is None else [int(m) for m in q.input_multipliers],
    }


def to_bytes(graph: Graph) -> bytes:
    """The `.hwq` file of `graph`, as bytes (deterministic)."""
    import io

    w = _Writer()
    nodes = [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": _json_attrs(n.attrs),
              "out_shape": [int(d) for d in n.out_shape],
              "weight": w.array(n.weight, _STORE["weight"]), "bias": w.array(n.bias, _STORE["bias"]),
              "quant": None if n.quant is None else _quant_json(n.quant, w)} for n in graph.nodes]
    doc = {"format": FORMAT, "version": VERSION, "name": graph.name, "output": graph.output, "nodes": nodes}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in [(GRAPH_MEMBER, json.dumps(doc, indent=1).encode())] + w.members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return buf.getvalue()


def save(graph: Graph, path) -> None:
    """Write `graph` to `path` as an `.hwq` checkpoint."""
    Path(path).write_bytes(to_bytes(graph))


# -- loading --------------------------------------------------------------------------------------


class _Reader:
    """Validating access to one checkpoint: every error names the file (and the node)."""

    def __init__(self, zf: zipfile.ZipFile, label: str):
        self.zf = zf
        self.label = label
        self.used: set[str] = set()
        self.where = ""

    def fail(self, msg: str):
        raise HwgenError(f"{self.label}: {self.where}{msg}")

    def keys(self, obj, allowed: set[str], what: str) -> dict:
        if not isinstance(obj, dict):
            self.fail(f"{what} must be an object")
        extra, missing = set(obj) - allowed, allowed - set(obj)
        if extra:
            self.fail(f"unknown key(s) in {what}: {', '.join(sorted(extra))}")
        if missing:
            self.fail(f"missing key(s) in {what}: {', '.join(sorted(missing))}")
        return obj

    def int_(self, v, what: str, lo: int | None = None, hi: int | None = None) -> int:
        if type(v) is not int:
            self.fail(f"{what} must be an integer, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(f"{what} = {v} is out of range [{lo}, {hi}]" if hi is not None else f"{what} = {v} is below {lo}")
        return v

    def bits(self, v, what: str) -> int:
        return self.int_(v, what, intmath.MIN_BITS, intmath.MAX_BITS)

    def scale(self, v, what: str) -> float:
        if type(v) not in (int, float) or not math.isfinite(v) or v <= 0:
            self.fail(f"{what} must be a finite positive number, got {v!r}")
        return float(v)

    def shape(self, v, what: str, smallest: int = 0) -> tuple[int, ...]:
        if not isinstance(v, list):
            self.fail(f"{what} must be a list of integers")
        return tuple(self.int_(d, what, smallest) for d in v)

    def array(self, ref, kind: str, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """A referenced array, checked and widened: kind 'f' -> float (f4 stays f4), 'i' -> int64."""
        if ref is None:
            return None
        ref = self.keys(ref, _REF_KEYS, f"{what} reference")
        member, dtype = ref["member"], ref["dtype"]
        allowed = _FLOAT_DTYPES if kind == "f" else _INT_DTYPES
        if dtype not in allowed:
            self.fail(f"{what} has dtype {dtype!r}; allowed: {', '.join(sorted(allowed))}")
        dims = self.shape(ref["shape"], f"{what} shape")
        if shape is not None and dims != shape:
            self.fail(f"{what} has shape {dims}, expected {shape}")
        if not isinstance(member, str) or member == GRAPH_MEMBER:
            self.fail(f"{what} names an invalid member {member!r}")
        if member in self.used:
            self.fail(f"{what} reuses member {member!r}")
        try:
            info = self.zf.getinfo(member)
        except KeyError:
            self.fail(f"missing member {member!r} ({what})")
        self.used.add(member)
        size = math.prod(dims) * np.dtype(dtype).itemsize
        if info.file_size != size:
            self.fail(f"member {member!r} holds {info.file_size} bytes but {what} {dtype} {dims} needs {size}")
        with self.zf.open(info) as f:
            data = f.read(size + 1)  # never more than the shape allows, whatever the header says
        if len(data) != size:
            self.fail(f"member {member!r} holds {len(data)} bytes but {what} {dtype} {dims} needs {size}")
        a = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(dims)
        if kind == "f":
            if not np.isfinite(a).all():
                self.fail(f"{what} contains NaN or infinite values")
            return a.astype(np.float64 if dtype == "<f8" else np.float32)
        return a.astype(np.int64)

    def int_array(self, ref, what: str, shape, lo: int, hi: int) -> np.ndarray:
        a = self.array(ref, "i", what, shape)
        if a is None:
            self.fail(f"{what} is missing")
        if a.size and (int(a.min()) < lo or int(a.max()) > hi):
            self.fail(f"{what} has values in [{int(a.min())}, {int(a.max())}], outside [{lo}, {hi}]")
        return a


def _parse_json(raw: bytes, r: _Reader):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            r.fail(f"{GRAPH_MEMBER} has duplicate keys")
        return dict(pairs)

    def no_constants(name):
        r.fail(f"{GRAPH_MEMBER} contains {name}, which is not a number")

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        r.fail(f"{GRAPH_MEMBER} is not valid JSON ({type(e).__name__})")


def _attrs(r: _Reader, op: str, attrs) -> dict:
    allowed = _ATTRS.get(op, set())
    if not isinstance(attrs, dict):
        r.fail("attrs must be an object")
    extra = set(attrs) - allowed
    if extra:
        r.fail(f"unknown attr(s) for {op}: {', '.join(sorted(extra))}")
    if op in ("maxpool2d", "avgpool2d") and "kernel" not in attrs:
        r.fail(f"{op} needs a kernel attr")
    out = {}
    if op == "clip" and set(attrs) != _ATTRS["clip"]:
        r.fail("clip needs lo and hi attrs")
    for k, v in attrs.items():
        low = 0 if k == "padding" else 1
        if k in ("lo", "hi"):
            if v is not None and (type(v) not in (int, float) or not math.isfinite(v)):
                r.fail(f"attr {k} must be a finite number or null, got {v!r}")
            out[k] = float(v) if v is not None else (-math.inf if k == "lo" else math.inf)
        elif k == "ceil_mode":
            if v is not True:
                r.fail(f"attr ceil_mode must be true when given, got {v!r}")
            out[k] = True
        elif k == "groups":
            out[k] = r.int_(v, f"attr {k}", 1)
        elif isinstance(v, list) and len(v) == 2:
            out[k] = tuple(r.int_(d, f"attr {k}", low) for d in v)
        else:
            r.fail(f"attr {k} must be a pair of integers, got {v!r}")
    return out


def _requant(r: _Reader, obj, q_bits: int, signed: bool, channels: int) -> Requant:
    rounding = "half_up"  # the default is never written, so an explicit one must be another
    if isinstance(obj, dict) and "rounding" in obj:
        obj = dict(obj)
        rounding = obj.pop("rounding")
        if rounding not in intmath.ROUNDINGS[1:]:
            r.fail(f"requant rounding must be one of {', '.join(map(repr, intmath.ROUNDINGS[1:]))} when given, "
                   f"got {rounding!r}")
    obj = r.keys(obj, _REQUANT_KEYS, "requant")
    m = r.int_array(obj["multiplier"], "requant multiplier", (channels,), 0, (1 << intmath.MULT_BITS) - 1)
    s = r.int_array(obj["shift"], "requant shift", (channels,), 1, intmath.MAX_SHIFT)
    lo_a, hi_a = intmath.qrange(q_bits, signed)
    lo = r.int_(obj["lo"], "requant lo", lo_a, hi_a)
    hi = r.int_(obj["hi"], "requant hi", lo, hi_a)
    return Requant(m, s, lo, hi, rounding)


def _quant(r: _Reader, obj, node: Node, is_head: bool) -> QuantInfo:
    obj = r.keys(obj, _QUANT_KEYS, "quant")
    a_bits = r.bits(obj["act_bits"], "act_bits")
    scale = r.scale(obj["out_scale"], "out_scale")
    signed = obj["signed"]
    if type(signed) is not bool:
        r.fail(f"signed must be true or false, got {signed!r}")
    q = QuantInfo(a_bits, scale, signed)
    weighted = node.op in WEIGHTED_OPS
    for key in ("weight_bits", "weight", "weight_scale", "bias"):
        if (obj[key] is None) == weighted:
            r.fail(f"quant {key} must be {'given' if weighted else 'null'} for {node.op}")
    if weighted:
        q.weight_bits = r.bits(obj["weight_bits"], "weight_bits")
        channels = node.weight.shape[0]
        q.weight = r.int_array(obj["weight"], "integer weight", node.weight.shape, *intmath.qrange(q.weight_bits, True))
        q.weight_scale = r.array(obj["weight_scale"], "f", "weight_scale", (channels,)).astype(np.float64)
        if not (q.weight_scale > 0).all():
            r.fail("weight_scale must be positive")
        q.bias = r.int_array(obj["bias"], "integer bias", (channels,), *intmath.qrange(intmath.BIAS_BITS, True))
    # Only the classifier may leave its accumulators unrequantized (they are the logits).
    can_requant = node.op in _REQUANT_OPS
    if obj["requant"] is None and can_requant and not is_head:
        r.fail(f"requant is missing for {node.op}")
    if obj["requant"] is not None and not can_requant:
        r.fail(f"requant must be null for {node.op}")
    if obj["requant"] is not None:
        q.requant = _requant(r, obj["requant"], a_bits, signed, node.out_shape[0])
    mults = obj["input_multipliers"]
    if node.op == "add":
        if not isinstance(mults, list) or len(mults) != 2:
            r.fail("add needs input_multipliers: a list of two integers")
        q.input_multipliers = [r.int_(m, "input multiplier", 0, (1 << intmath.MULT_BITS) - 1) for m in mults]
    elif mults is not None:
        r.fail(f"input_multipliers must be null for {node.op}")
    return q


def _node(r: _Reader, obj) -> tuple[Node, object]:
    obj = r.keys(obj, _NODE_KEYS, "node")
    name = obj["name"]
    if not isinstance(name, str) or not name:
        r.fail(f"node name must be a non-empty string, got {name!r}")
    r.where = f"node '{name}': "
    op = obj["op"]
    if op not in OPS:
        r.fail(f"unknown op {op!r}")
    inputs = obj["inputs"]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        r.fail("inputs must be a list of node names")
    if op == "input" and inputs:
        r.fail("the input node takes no inputs")
    weighted = op in WEIGHTED_OPS
    if (obj["weight"] is None) == weighted:
        r.fail(f"weight must be {'given' if weighted else 'null'} for {op}")
    if not weighted and obj["bias"] is not None:
        r.fail(f"bias must be null for {op}")
    weight = r.array(obj["weight"], "f", "weight")
    if weight is not None:
        weight = weight.astype(np.float32)
        want = 4 if op == "conv2d" else 2
        if weight.ndim != want or 0 in weight.shape:
            r.fail(f"{op} weight must be a non-empty {want}-d array, got shape {weight.shape}")
    bias = r.array(obj["bias"], "f", "bias", None if weight is None else (weight.shape[0],))
    node = Node(name, op, tuple(inputs), _attrs(r, op, obj["attrs"]), weight,
                None if bias is None else bias.astype(np.float32), r.shape(obj["out_shape"], "out_shape", 1))
    r.where = ""
    return node, obj["quant"]


def _graph(r: _Reader, doc) -> Graph:
    doc = r.keys(doc, {"format", "version", "name", "output", "nodes"}, GRAPH_MEMBER)
    if doc["format"] != FORMAT:
        r.fail(f"not an hwgen checkpoint (format {doc['format']!r})")
    if doc["version"] != VERSION:
        r.fail(f"unsupported format version {doc['version']!r} (this hwgen reads version {VERSION})")
    if not isinstance(doc["name"], str) or not isinstance(doc["output"], str):
        r.fail("graph name and output must be strings")
    if not isinstance(doc["nodes"], list) or not doc["nodes"]:
        r.fail("nodes must be a non-empty list")
    parsed = [_node(r, n) for n in doc["nodes"]]
    stored_shapes = {n.name: n.out_shape for n, _ in parsed}
    try:
        graph = Graph(doc["name"], [n for n, _ in parsed], doc["output"]).infer_shapes()
    except HwgenError as e:
        r.fail(str(e))
    for n in graph.nodes:
        if n.out_shape != stored_shapes[n.name]:
            r.fail(f"node '{n.name}': stored shape {stored_shapes[n.name]} disagrees with the computed {n.out_shape}")
    quants = [q for _, q in parsed]
    if any(q is None for q in quants) and any(q is not None for q in quants):
        r.fail("partially quantized graph: either every node has quant or none does")
    if quants[0] is not None:
        head = graph.node(graph.output)
        head_ok = head.op == "linear" and not graph.consumers(head.name)
        for n, obj in zip(graph.nodes, quants):
            r.where = f"node '{n.name}': "
            n.quant = _quant(r, obj, n, n is head and head_ok)
        r.where = ""
    unused = sorted(set(r.zf.namelist()) - r.used - {GRAPH_MEMBER})
    if unused:
        r.fail(f"unexpected member(s) {', '.join(repr(u) for u in unused[:3])}: not part of an hwgen checkpoint")
    return graph


def from_bytes(data: bytes, label: str = "checkpoint") -> Graph:
    """Parse and validate an `.hwq` file given as bytes."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            r = _Reader(zf, label)
            names = zf.namelist()
            if len(names) != len(set(names)):
                r.fail("zip has duplicate member names")
            if GRAPH_MEMBER not in names:
                r.fail(f"not an hwgen checkpoint (no {GRAPH_MEMBER} member)")
            info = zf.getinfo(GRAPH_MEMBER)
            if info.file_size > MAX_GRAPH_JSON:
                r.fail(f"{GRAPH_MEMBER} is {info.file_size} bytes, larger than the {MAX_GRAPH_JSON} allowed")
            with zf.open(info) as f:
                raw = f.read(MAX_GRAPH_JSON + 1)
            if len(raw) > MAX_GRAPH_JSON:
                r.fail(f"{GRAPH_MEMBER} is larger than the {MAX_GRAPH_JSON} bytes allowed")
            return _graph(r, _parse_json(raw, r))
    except HwgenError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OSError, ValueError) as e:
        raise HwgenError(f"{label}: not a readable hwgen checkpoint ({type(e).__name__}: {str(e)[:100]})") from None


def load(path) -> Graph:
    """Read and validate an `.hwq` checkpoint; never executes or unpickles anything from it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise HwgenError(f"cannot read checkpoint '{path}': {e.strerror or e}") from None
    return from_bytes(data, f"checkpoint '{path.name}'")
