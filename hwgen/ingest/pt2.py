"""`torch.export` programs (`.pt2`) -> the hwgen IR, without executing anything from the file.

The program's graph is read from its JSON serialization (see `archive.Pt2Archive`) and each aten op
is mapped onto the IR: convolutions (any kernel, stride, padding, dilation, groups), linear layers
(also in their decomposed `permute` + `addmm` form), ReLU, max/average pooling (adaptive and global
average pooling become a fixed-kernel `avgpool2d` when they reduce to one), residual additions and
flattening reshapes. Batch norm is folded into the convolution (or linear layer) it follows. Ops
that only move or copy data (dropout in eval mode, clone, contiguous, ...) disappear. Anything else
is refused, naming the node and the op.

IR nodes are named after the module that produced them (`features.0`, `features.3.body.0`), taken
from the op's `nn_module_stack`; ops outside any module keep the program's node name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import HwgenError
from ..ir import Graph
from .archive import Pt2Archive
from .builder import Act, Const, GraphBuilder, Unusable

# Ops whose output is their first input (in eval mode); keyed by aten name without overload.
_IDENTITY_OPS = {"dropout", "dropout_", "feature_dropout", "feature_dropout_", "alpha_dropout", "clone",
                 "contiguous", "alias", "detach", "detach_", "lift_fresh_copy", "_to_copy"}
# Side-effect-free checks torch.export inserts; they produce nothing hwgen needs.
_ASSERT_OPS = {"_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size",
               "_assert_async"}


def load_pt2(path: str | Path, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Read a `torch.export.save` archive into a shape-checked IR graph."""
    archive = Pt2Archive(path)
    program = archive.program()
    try:
        return _Translator(archive, program).graph(input_shape)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        # Structure the serializer never writes: a damaged or hand-made program.
        raise HwgenError(f"{archive.path}: malformed program JSON ({type(e).__name__}: {e})") from None


class _Translator(GraphBuilder):
    def __init__(self, archive: Pt2Archive, program: dict):
        self.archive = archive
        gm = program["graph_module"]
        self.json_graph = gm["graph"]
        self.signature = gm["signature"]
        super().__init__(archive.path.stem, self._count_uses())
        self.lazy: dict[str, tuple[str, str]] = {}  # value -> (payload kind, fqn), read on first use

    # -- driver -----------------------------------------------------------------------------------
    def graph(self, input_shape) -> Graph:
        self._bind_inputs()
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if self.input_shape is None:
            raise HwgenError(f"{self.archive.path}: the program's input shape is not fixed (symbolic); pass --input-shape C,H,W")
        out = self._output_value()  # before translating: a training-mode program fails here, clearly
        self._check_definitions(out)
        for jn in self.json_graph["nodes"]:
            self._translate(jn)
        return self.finish(self._act(out, "the program output"))

    def _check_definitions(self, out: str) -> None:
        """Every tensor is defined once, and the graph's own output list names the program output.

        A second definition would leave a dead copy behind that inspect and analyze would count.
        """
        defined = set(self.lazy) | set(self.values)
        for jn in self.json_graph["nodes"]:
            names = [t["name"] for o in jn["outputs"] for t in
                     ([o["as_tensor"]] if "as_tensor" in o else o.get("as_tensors", []))]
            for name in names:
                if name in defined:
                    raise HwgenError(f"{self.archive.path}: node '{jn.get('name')}' defines tensor '{name}', "
                                     "which is already defined")
                defined.add(name)
        outputs = self.json_graph["outputs"]
        if not isinstance(outputs, list) or not outputs:
            raise HwgenError(f"{self.archive.path}: the program's graph has an empty output list")
        if [_tensor_names(o) for o in outputs] != [[out]]:
            raise HwgenError(f"{self.archive.path}: the graph's outputs disagree with the signature's output '{out}'")

    def _count_uses(self) -> dict[str, int]:
        uses: dict[str, int] = {}
        for jn in self.json_graph["nodes"]:
            for a in jn["inputs"]:
                for name in _tensor_names(a["arg"]):
                    uses[name] = uses.get(name, 0) + 1
        for spec in self.signature["output_specs"]:
            for v in spec.values():
                for name in _tensor_names(v["arg"]):
                    uses[name] = uses.get(name, 0) + 1
        return uses

    def _bind_inputs(self) -> None:
        user = []
        for spec in self.signature["input_specs"]:
            (kind, body), = spec.items()
            if kind == "parameter":
                self.lazy[body["arg"]["name"]] = ("weights", body["parameter_name"])
            elif kind == "buffer":
                self.lazy[body["arg"]["name"]] = ("weights", body["buffer_name"])
            elif kind == "tensor_constant":
                self.lazy[body["arg"]["name"]] = ("constants", body["tensor_constant_name"])
            elif kind == "user_input":
                if "as_tensor" not in body["arg"]:
                    raise HwgenError(f"{self.archive.path}: hwgen reads programs whose inputs are tensors")
                user.append(body["arg"]["as_tensor"]["name"])
            else:
                raise HwgenError(f"{self.archive.path}: program input of kind '{kind}' is not supported")
        if len(user) != 1:
            raise HwgenError(f"{self.archive.path}: the program takes {len(user)} tensor inputs; hwgen needs exactly one")
        node = self.emit("input", "input", ())
        self.bind(user[0], node)
        sizes = self.json_graph["tensor_values"][user[0]]["sizes"]
        if all(isinstance(s, dict) and isinstance(s.get("as_int"), int) for s in sizes) and len(sizes) in (2, 4):
            self.input_shape = tuple(int(s["as_int"]) for s in sizes[1:])  # drop the batch dimension

    def _output_value(self) -> str:
        outs = []
        for spec in self.signature["output_specs"]:
            (kind, body), = spec.items()
            if kind in ("buffer_mutation", "parameter_mutation"):
                raise HwgenError(f"{self.archive.path}: the program updates its buffers (batch-norm statistics?); "
                                 "export the model in eval mode: model.eval()")
            if kind != "user_output":
                raise HwgenError(f"{self.archive.path}: program output of kind '{kind}' is not supported")
            outs.append(body["arg"])
        if len(outs) != 1 or "as_tensor" not in outs[0]:
            raise HwgenError(f"{self.archive.path}: hwgen needs a program with exactly one tensor output")
        return outs[0]["as_tensor"]["name"]

    # -- values -----------------------------------------------------------------------------------
    def _value(self, name: str):
        if name not in self.values and name in self.lazy:
            kind, fqn = self.lazy.pop(name)
            self.values[name] = Const(self.archive.tensor(kind, fqn), fqn)
        if name not in self.values:
            raise HwgenError(f"{self.archive.path}: tensor '{name}' is used before it is defined")
        return self.values[name]

    def _act(self, name: str, where: str) -> Act:
        v = self._value(name)
        if isinstance(v, Act):
            return v
        what = v.what if isinstance(v, (Const, Unusable)) else name
        raise HwgenError(f"{where}: expected an activation, got {what}")

    # -- ops --------------------------------------------------------------------------------------
    def _translate(self, jn: dict) -> None:
        op, overload = _op_name(jn)
        args = {a["name"]: a["arg"] for a in jn["inputs"]}
        base = _module_path(jn) or jn.get("name") or op
        where = f"node '{base}' ({op})"

        def arg(key, default=None):
            return self._decode(args[key], where) if key in args else default

        if op in _ASSERT_OPS:
            return
        if op.endswith("_") and not op.startswith("_") and self._is_constant(jn["inputs"][0]["arg"]):
            # e.g. num_batches_tracked.add_(1): batch-norm bookkeeping of a training-mode export
            raise HwgenError(f"{where}: updates a parameter or buffer in place; export the model in eval mode: model.eval()")
        if op == "getitem":
            seq = arg("input") if "input" in args else self._decode(jn["inputs"][0]["arg"], where)
            idx = self._decode(jn["inputs"][1]["arg"], where)
            if not isinstance(seq, list) or not isinstance(idx, int) or not 0 <= idx < len(seq):
                raise HwgenError(f"{where}: unsupported getitem")
            return self._alias(jn, seq[idx], where)
        if op in _IDENTITY_OPS:
            if op.startswith(("dropout", "feature_dropout", "alpha_dropout")) and arg("train", False):
                raise HwgenError(f"{where}: dropout in training mode; export the model in eval mode")
            return self._alias(jn, self._decode(jn["inputs"][0]["arg"], where), where)
        handler = getattr(self, f"_op_{op.strip('_')}", None)
        if handler is None:
            raise HwgenError(f"{where}: op aten.{op}.{overload} is not supported by the hwgen IR")
        handler(jn, base, where, arg)

    def _is_constant(self, a: dict) -> bool:
        names = _tensor_names(a)
        return bool(names) and (names[0] in self.lazy or isinstance(self.values.get(names[0]), Const))

    def _alias(self, jn: dict, value, where: str) -> None:
        self.alias(_output_names(jn)[0], value, where)

    def _new_act(self, jn: dict, node) -> None:
        self.bind(_output_names(jn)[0], node)
        for extra in _output_names(jn)[1:]:
            self.values[extra] = Unusable(f"output '{extra}' of {_op_name(jn)[0]}")

    def _const(self, v, where: str, what: str, ndim: int | None = None) -> np.ndarray:
        if not isinstance(v, Const):
            raise HwgenError(f"{where}: {what} must be a constant tensor (a parameter)")
        if ndim is not None and v.array.ndim != ndim:
            raise HwgenError(f"{where}: {what} '{v.what}' has shape {v.array.shape}, expected {ndim} dimensions")
        if 0 in v.array.shape:
            raise HwgenError(f"{where}: {what} '{v.what}' is empty")
        return v.array

    def _bias(self, v, where: str, channels: int) -> np.ndarray | None:
        if v is None:
            return None
        b = self._const(v, where, "bias", 1)
        if b.shape != (channels,):
            raise HwgenError(f"{where}: bias has shape {b.shape}, expected ({channels},)")
        return b

    def _op_conv2d(self, jn, base, where, arg):
        self._conv(jn, base, where, arg, transposed=False)

    def _op_convolution(self, jn, base, where, arg):
        self._conv(jn, base, where, arg, transposed=bool(arg("transposed", False)))

    def _conv(self, jn, base, where, arg, transposed: bool):
        if transposed:
            raise HwgenError(f"{where}: transposed convolution is not supported by the hwgen IR")
        x = self.act(arg("input"), where)
        w = self._const(arg("weight"), where, "weight", 4)
        stride = _ints(arg("stride", [1]), 2, where, "stride")
        dilation = _ints(arg("dilation", [1]), 2, where, "dilation")
        groups = arg("groups", 1)
        padding = arg("padding", [0])
        if isinstance(padding, str):
            padding = _string_padding(padding, w.shape[2:], stride, dilation, where)
        padding = _ints(padding, 2, where, "padding", 0)
        node = self.emit(base, "conv2d", (x.node,),
                         attrs=dict(kernel=tuple(w.shape[2:]), stride=stride, padding=padding,
                                    dilation=dilation, groups=int(groups)),
                         weight=w.copy(), bias=self._bias(arg("bias"), where, w.shape[0]))
        self._new_act(jn, node)

    def _op_linear(self, jn, base, where, arg):
        x = self.act(arg("input"), where)
        w = self._const(arg("weight"), where, "weight", 2)
        self._linear(jn, base, where, x, w, arg("bias"))

    def _op_addmm(self, jn, base, where, arg):
        if arg("beta", 1) != 1 or arg("alpha", 1) != 1:
            raise HwgenError(f"{where}: addmm with beta/alpha other than 1 is not supported")
        x = self.act(arg("mat1"), where)
        wt = self._const(arg("mat2"), where, "weight", 2)
        self._linear(jn, base, where, x, wt.T, arg("self"))

    def _op_mm(self, jn, base, where, arg):
        x = self.act(arg("self"), where)
        wt = self._const(arg("mat2"), where, "weight", 2)
        self._linear(jn, base, where, x, wt.T, None)

    def _linear(self, jn, base, where, x: Act, w: np.ndarray, bias) -> None:
        node = self.emit(base, "linear", (x.node,), weight=np.ascontiguousarray(w, dtype=np.float32),
                         bias=self._bias(bias, where, w.shape[0]))
        self._new_act(jn, node)

    def _op_t(self, jn, base, where, arg):
        a = self._const(self._decode(jn["inputs"][0]["arg"], where), where, "the transposed tensor", 2)
        self.values[_output_names(jn)[0]] = Const(a.T, "transposed constant")

    def _op_permute(self, jn, base, where, arg):
        a = self._const(arg("self"), where, "the permuted tensor")
        dims = arg("dims")
        if not isinstance(dims, list) or sorted(d % max(a.ndim, 1) for d in dims) != list(range(a.ndim)):
            raise HwgenError(f"{where}: bad permutation {dims}")
        self.values[_output_names(jn)[0]] = Const(np.transpose(a, [d % a.ndim for d in dims]), "permuted constant")

    def _op_transpose(self, jn, base, where, arg):
        a = self._const(arg("self"), where, "the transposed tensor")
        d0, d1 = arg("dim0"), arg("dim1")
        self.values[_output_names(jn)[0]] = Const(np.swapaxes(a, d0, d1), "transposed constant")

    def _op_batch_norm(self, jn, base, where, arg):
        if arg("training", False):
            raise HwgenError(f"{where}: batch norm in training mode; export the model in eval mode")
        self._fold_bn(jn, base, where, arg)

    def _op_native_batch_norm(self, jn, base, where, arg):
        self._op_batch_norm(jn, base, where, arg)

    def _op_native_batch_norm_legit_no_training(self, jn, base, where, arg):
        self._fold_bn(jn, base, where, arg)

    def _fold_bn(self, jn, base, where, arg) -> None:
        x = self.act(arg("input"), where)
        gamma, beta = arg("weight"), arg("bias")
        self.fold_batchnorm(x, _output_names(jn)[0], where,
                            mean=self._const(arg("running_mean"), where, "running_mean", 1),
                            var=self._const(arg("running_var"), where, "running_var", 1),
                            gamma=None if gamma is None else self._const(gamma, where, "weight", 1),
                            beta=None if beta is None else self._const(beta, where, "bias", 1),
                            eps=float(arg("eps", 1e-5)), name=base)
        for extra in _output_names(jn)[1:]:
            self.values[extra] = Unusable(f"batch-norm statistic '{extra}'")

    def _op_relu(self, jn, base, where, arg):
        x = self.act(self._decode(jn["inputs"][0]["arg"], where), where)
        self._new_act(jn, self.emit(base, "relu", (x.node,)))

    def _op_hardtanh(self, jn, base, where, arg):
        self._clip(jn, base, where, self.act(arg("self"), where), arg("min_val", -1.0), arg("max_val", 1.0))

    def _op_clamp(self, jn, base, where, arg):
        self._clip(jn, base, where, self.act(arg("self"), where), arg("min"), arg("max"))

    def _op_clamp_min(self, jn, base, where, arg):
        self._clip(jn, base, where, self.act(arg("self"), where), arg("min"), None)

    def _op_clamp_max(self, jn, base, where, arg):
        self._clip(jn, base, where, self.act(arg("self"), where), None, arg("max"))

    def _clip(self, jn, base, where, x: Act, lo, hi) -> None:
        """ReLU6, hardtanh, clamp: a ReLU when the range is [0, inf), else a clip node."""
        bounds = []
        for v, default in ((lo, -math.inf), (hi, math.inf)):
            if v in ("Infinity", "-Infinity"):  # how the serializer writes infinite floats
                v = float(v)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)):
                raise HwgenError(f"{where}: clamp bounds must be constant numbers, got {v!r}")
            bounds.append(default if v is None else float(v))
        self.clip(_output_names(jn)[0], x, *bounds, base, where)

    def _op_sigmoid(self, jn, base, where, arg):
        x = self.act(self._decode(jn["inputs"][0]["arg"], where), where)
        self._new_act(jn, self.emit(base, "sigmoid", (x.node,)))

    def _op_silu(self, jn, base, where, arg):
        x = self.act(self._decode(jn["inputs"][0]["arg"], where), where)
        self._new_act(jn, self.emit(base, "silu", (x.node,)))

    def _op_cat(self, jn, base, where, arg):
        xs = arg("tensors")
        if not isinstance(xs, list) or not all(isinstance(v, Act) for v in xs):
            raise HwgenError(f"{where}: concatenation of anything but activations is not supported")
        if len(xs) == 1:  # DenseNet's first layer concatenates a list of one: the tensor itself
            return self._alias(jn, xs[0], where)
        rank = len(self.shape(xs[0].node)) + 1
        if arg("dim", 0) not in (1, 1 - rank):
            raise HwgenError(f"{where}: concatenation along dim {arg('dim', 0)} is not supported (only channels, dim 1)")
        self._new_act(jn, self.emit(base, "concat", tuple(v.node for v in xs)))

    def _op_max_pool2d(self, jn, base, where, arg):
        x = self.act(arg("self"), where)
        kernel = _ints(arg("kernel_size"), 2, where, "kernel_size")
        stride = _ints(arg("stride") or list(kernel), 2, where, "stride")
        if _ints(arg("dilation", [1]), 2, where, "dilation") != (1, 1):
            raise HwgenError(f"{where}: dilated max pooling is not supported")
        node = self.emit(base, "maxpool2d", (x.node,),
                         attrs=dict(kernel=kernel, stride=stride, padding=_ints(arg("padding", [0]), 2, where, "padding", 0),
                                    ceil_mode=bool(arg("ceil_mode", False))))
        self._new_act(jn, node)

    def _op_max_pool2d_with_indices(self, jn, base, where, arg):
        self._op_max_pool2d(jn, base, where, arg)

    def _op_avg_pool2d(self, jn, base, where, arg):
        x = self.act(arg("self"), where)
        kernel = _ints(arg("kernel_size"), 2, where, "kernel_size")
        stride = _ints(arg("stride") or list(kernel), 2, where, "stride")
        padding = _ints(arg("padding", [0]), 2, where, "padding", 0)
        if arg("ceil_mode", False):
            self.check_floor_pooling(x, kernel, stride, padding, where)
        if arg("divisor_override") is not None:
            raise HwgenError(f"{where}: average pooling with divisor_override is not supported")
        if padding != (0, 0) and not arg("count_include_pad", True):
            raise HwgenError(f"{where}: padded average pooling must count the padding (count_include_pad=True)")
        self._new_act(jn, self.emit(base, "avgpool2d", (x.node,),
                                    attrs=dict(kernel=kernel, stride=stride, padding=padding)))

    def _op_adaptive_avg_pool2d(self, jn, base, where, arg):
        x = self.act(arg("self") if arg("self") is not None else arg("input"), where)
        out = _ints(arg("output_size"), 2, where, "output_size")
        _, h, w = self.spatial_shape(x, where)
        if out[0] < 1 or out[1] < 1 or h % out[0] or w % out[1]:
            raise HwgenError(f"{where}: adaptive average pooling of {h}x{w} to {out[0]}x{out[1]} is not a fixed-kernel pooling")
        kernel = (h // out[0], w // out[1])
        self._new_act(jn, self.emit(base, "avgpool2d", (x.node,),
                                    attrs=dict(kernel=kernel, stride=kernel, padding=(0, 0))))

    def _op_mean(self, jn, base, where, arg):
        x = self.act(arg("self"), where)
        _, h, w = self.spatial_shape(x, where)
        dims = arg("dim")
        if not isinstance(dims, list) or sorted(d % 4 for d in dims) != [2, 3]:
            raise HwgenError(f"{where}: mean over dims {dims} is not a global average pooling")
        pool = self.emit(base, "avgpool2d", (x.node,), attrs=dict(kernel=(h, w), stride=(h, w), padding=(0, 0)))
        if not arg("keepdim", False):
            pool = self.emit(f"{pool.name}.flatten", "flatten", (pool.name,))
        self._new_act(jn, pool)

    def _op_add(self, jn, base, where, arg):
        a, b = arg("self"), arg("other")
        if arg("alpha", 1) != 1:
            raise HwgenError(f"{where}: add with alpha != 1 is not supported")
        if not isinstance(a, Act) or not isinstance(b, Act):
            raise HwgenError(f"{where}: only the addition of two activations (a residual add) is supported")
        self._new_act(jn, self.emit(base, "add", (a.node, b.node)))

    def _op_flatten(self, jn, base, where, arg):
        x = self.act(arg("self"), where)
        shape = self.shape(x.node)
        start, end = arg("start_dim", 0), arg("end_dim", -1)
        if start != 1 or end not in (-1, len(shape)):
            raise HwgenError(f"{where}: flatten({start}, {end}) must flatten everything but the batch")
        self._flatten(jn, base, where, x, shape)

    def _op_view(self, jn, base, where, arg):
        x = self.act(arg("self"), where)
        shape = self.shape(x.node)
        size = arg("size") if arg("size") is not None else arg("shape")
        if not isinstance(size, list) or len(size) != 2 or size[1] not in (-1, int(np.prod(shape))):
            raise HwgenError(f"{where}: reshape of {shape} to {size} is not a flatten (batch, features)")
        self._flatten(jn, base, where, x, shape)

    _op_reshape = _op_view
    _op_unsafe_view = _op_view

    def _flatten(self, jn, base, where, x: Act, shape) -> None:
        if len(shape) == 1:
            return self._alias(jn, x, where)  # already flat
        self._new_act(jn, self.emit(base, "flatten", (x.node,)))

    def _decode(self, a: dict, where: str):
        if not isinstance(a, dict) or len(a) != 1:
            raise HwgenError(f"{where}: malformed argument")
        (kind, v), = a.items()
        if kind == "as_tensor":
            return self._value(v["name"])
        if kind == "as_tensors":
            return [self._value(t["name"]) for t in v]
        if kind == "as_none":
            return None
        if kind in ("as_int", "as_float", "as_bool", "as_string"):
            return v
        if kind in ("as_ints", "as_floats", "as_bools"):
            return list(v)
        if kind == "as_scalar_type" or kind == "as_memory_format" or kind == "as_layout" or kind == "as_device":
            return v
        raise HwgenError(f"{where}: argument of kind '{kind}' (symbolic shapes?) is not supported")


# -- JSON helpers -------------------------------------------------------------------------------------
def _op_name(jn: dict) -> tuple[str, str]:
    """('conv2d', 'default') from 'torch.ops.aten.conv2d.default'; ('getitem', '') from '_operator.getitem'."""
    target = jn["target"]
    if not isinstance(target, str):
        raise TypeError("node target is not a string")
    if target.startswith("torch.ops.aten."):
        parts = target[len("torch.ops.aten."):].split(".")
        return parts[0], (parts[1] if len(parts) > 1 else "default")
    if target == "_operator.getitem":
        return "getitem", ""
    return target, ""


def _output_names(jn: dict) -> list[str]:
    names = []
    for o in jn["outputs"]:
        if "as_tensor" in o:
            names.append(o["as_tensor"]["name"])
        elif "as_tensors" in o:
            names.extend(t["name"] for t in o["as_tensors"])
        else:
            names.append(f"<non-tensor output of {jn.get('name')}>")
    if not names:
        raise HwgenError(f"node '{jn.get('name')}': op has no output")
    return names


def _tensor_names(a: dict) -> list[str]:
    if not isinstance(a, dict):
        return []
    if "as_tensor" in a:
        return [a["as_tensor"]["name"]]
    if "as_tensors" in a:
        return [t["name"] for t in a["as_tensors"]]
    return []


def _module_path(jn: dict) -> str:
    """The innermost module's path from `nn_module_stack` ('key,path,type;...'), or ''."""
    stack = (jn.get("metadata") or {}).get("nn_module_stack") or ""
    if not isinstance(stack, str) or not stack:
        return ""
    fields = stack.split(";")[-1].split(",")
    return fields[1] if len(fields) >= 3 else ""


def _ints(v, n: int, where: str, what: str, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not v or len(v) not in (1, n) or not all(isinstance(i, int) for i in v):
        raise HwgenError(f"{where}: {what} {v!r} is not {n} integers")
    if any(i < minimum for i in v):
        raise HwgenError(f"{where}: {what} {v!r} must be at least {minimum}")
    return tuple(int(i) for i in (v * n if len(v) == 1 else v))


def _string_padding(mode: str, kernel, stride, dilation, where: str) -> list[int]:
    if mode == "valid":
        return [0, 0]
    if mode == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise HwgenError(f"{where}: padding='same' with an even kernel pads asymmetrically; not supported")
        return [total[0] // 2, total[1] // 2]
    raise HwgenError(f"{where}: unknown padding mode '{mode}'")
