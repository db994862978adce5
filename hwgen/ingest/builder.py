"""What every format translator shares: a value table that grows an IR graph, and batch-norm folding.

A translator walks a file's ops in order. Each tensor name it meets is bound to an `Act` (the
output of an IR node built so far), a `Const` (a parameter or a constant derived from one) or an
`Unusable` (an output hwgen does not model, such as batch-norm statistics or max-pool indices).
`GraphBuilder` keeps that table, emits IR nodes with unique names, and counts the outstanding uses
of every IR node's output, because folding a batch norm into a layer is only correct when the
batch norm is that layer's single consumer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import HwgenError
from ..ir import Graph, Node, pool_out_size


@dataclass
class Act:
    """An activation tensor: the output of IR node `node`."""

    node: str


@dataclass
class Const:
    """A constant tensor (parameter, buffer, initializer, or a transpose of one)."""

    array: np.ndarray
    what: str


@dataclass
class Unusable:
    """An output hwgen does not model (e.g. batch-norm statistics, max-pool indices)."""

    what: str


class GraphBuilder:
    """The IR nodes built so far and the file's tensor names bound to them.

    `uses` counts, per tensor name of the file, how many times ops (and the graph output) read it.
    """

    def __init__(self, name: str, uses: dict[str, int]):
        self.name = name
        self.nodes: list[Node] = []
        self.values: dict[str, object] = {}
        self.uses = uses
        # Outstanding uses of each IR node's output, across aliases (see the module docstring).
        self.pending: dict[str, int] = {}
        self.input_shape: tuple[int, ...] | None = None

    def unique(self, base: str) -> str:
        taken = {n.name for n in self.nodes}
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def emit(self, base: str, op: str, inputs: tuple[str, ...], **kw) -> Node:
        node = Node(self.unique(base), op, inputs, **kw)
        self.nodes.append(node)
        return node

    def bind(self, tensor: str, node: Node) -> None:
        """`tensor` is the output of the new IR node `node`."""
        self.values[tensor] = Act(node.name)
        self.pending[node.name] = self.uses.get(tensor, 0)

    def alias(self, tensor: str, value, where: str) -> None:
        """`tensor` is another name for `value` (an op that passes its input through)."""
        if isinstance(value, Act):
            self.pending[value.node] += self.uses.get(tensor, 0) - 1
        elif not isinstance(value, (Const, Unusable)):
            raise HwgenError(f"{where}: expected a tensor argument")
        self.values[tensor] = value

    def act(self, v, where: str) -> Act:
        if isinstance(v, Act):
            return v
        raise HwgenError(f"{where}: expected an activation input")

    def shape(self, node_name: str) -> tuple[int, ...]:
        """The output shape of an IR node built so far (for ops whose mapping depends on it)."""
        g = Graph(self.name, list(self.nodes), node_name)
        g.infer_shapes(self.input_shape)
        return g.node(node_name).out_shape

    def spatial_shape(self, x: Act, where: str) -> tuple[int, int, int]:
        shape = self.shape(x.node)
        if len(shape) != 3:
            raise HwgenError(f"{where}: needs a (C, H, W) input, got {shape}")
        return shape

    def clip(self, tensor: str, x: Act, lo: float, hi: float, base: str, where: str) -> None:
        """`tensor` = clamp(x, lo, hi): a ReLU for [0, inf), x itself for (-inf, inf), else a clip node."""
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise HwgenError(f"{where}: clamp bounds ({lo:g}, {hi:g}) are not an interval")
        if (lo, hi) == (-math.inf, math.inf):
            return self.alias(tensor, x, where)
        if (lo, hi) == (0.0, math.inf):
            return self.bind(tensor, self.emit(base, "relu", (x.node,)))
        self.bind(tensor, self.emit(base, "clip", (x.node,), attrs=dict(lo=lo, hi=hi)))

    def check_floor_pooling(self, x: Act, kernel, stride, padding, where: str) -> None:
        """Average pooling with ceil_mode, accepted where it has the floor mode's shape: a partial
        last window would have its own divisor, which no single integer requant reproduces."""
        _, h, w = self.spatial_shape(x, where)
        if any(pool_out_size(n, k, s, p, True) != pool_out_size(n, k, s, p)
               for n, k, s, p in zip((h, w), kernel, stride, padding)):
            raise HwgenError(f"{where}: average pooling with ceil_mode whose last window overhangs {h}x{w} "
                             "is not supported (max pooling is)")

    def finish(self, output: Act) -> Graph:
        return Graph(self.name, self.nodes, output.node).infer_shapes(self.input_shape)

    def fold_batchnorm(self, x: Act, tensor: str, where: str, mean: np.ndarray, var: np.ndarray,
                       gamma: np.ndarray | None, beta: np.ndarray | None, eps: float, name: str = "batchnorm") -> None:
        """Fold an eval-mode batch norm of `x` into the conv/linear layer that produced it.

        In float64, stored as float32: `W' = W * g / sqrt(v + eps)`, `b' = (b - mean) * g / sqrt(v + eps) + beta`.
        `tensor` (the batch norm's output) becomes another name for the layer's output. A batch norm
        that follows no conv/linear layer, or one whose output other ops read too, becomes its own
        per-channel affine node instead: a depthwise 1x1 conv2d named `name`.
        """
        prev = self.nodes[[n.name for n in self.nodes].index(x.node)]
        foldable = prev.op in ("conv2d", "linear") and self.pending.get(prev.name, 0) == 1
        m = prev.weight.shape[0] if foldable else self.shape(x.node)[0]
        gamma = np.ones(m) if gamma is None else gamma
        beta = np.zeros(m) if beta is None else beta
        mean, var, gamma, beta = (np.asarray(a, dtype=np.float64) for a in (mean, var, gamma, beta))
        if any(a.shape != (m,) for a in (mean, var, gamma, beta)):
            raise HwgenError(f"{where}: batch-norm parameters do not have the {m} channels of '{prev.name}'")
        if not math.isfinite(eps) or (var + eps <= 0).any():
            raise HwgenError(f"{where}: batch-norm variance + eps must be positive")
        scale = gamma / np.sqrt(var + eps)
        if not foldable:
            if len(self.shape(x.node)) != 3:
                raise HwgenError(f"{where}: a batch norm of flat features must follow a linear layer to be folded")
            affine = self.emit(name, "conv2d", (x.node,),
                               attrs=dict(kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=m),
                               weight=scale.reshape(m, 1, 1, 1).astype(np.float32),
                               bias=(beta - mean * scale).astype(np.float32))
            return self.bind(tensor, affine)
        bias = prev.bias.astype(np.float64) if prev.bias is not None else np.zeros(m)
        shape = (m,) + (1,) * (prev.weight.ndim - 1)
        prev.weight = (prev.weight.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
        prev.bias = ((bias - mean) * scale + beta).astype(np.float32)
        self.values[tensor] = x
        self.pending[prev.name] = self.uses.get(tensor, 0)
