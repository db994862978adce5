"""Random quantized conv chains for the engine: the cases of `hwgen verify --random` and the tests.

`random_chain(seed)` draws a network of 3 or 4 conv layers whose every knob is random: weight and
activation bits, the engine's lanes and bus, channel counts (odd ones included), input sizes,
stride 1 or 2, 1x1, 3x3, and dense 5x5 or 7x7 (drawn from a stream of their own, so the other draws of
a seed stay what they were before the engine ran wide kernels), periodic schemes (PS and PSD, several periods) or dense, ReLU or a
signed output (the next layer then takes signed inputs), a first layer with 1 or 3 channels and
signed input. Two layers are the accumulator's worst case: every kept weight at the most negative
value and the bias at its extreme: the first layer (whose inputs include an all-maximum and an
all-minimum image, so its accumulator reaches the bound the generator sized it for) and one more.
The graph's output is the last conv, so the "logits" compared are that layer's integers. The
graph is built with hwgen.ir directly; the same seed gives the same chain, inputs included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.periodic import layer_mask, parse_scheme

from . import intmath
from .ir import Graph, Node, QuantInfo, Requant

SCHEMES = (None, "PS4_P4", "PSD4_P8", "PS2_P2", "PS3_P3", "PSD1_P16", "PS4_P2")


@dataclass
class Chain:
    seed: int
    graph: Graph
    engine: dict  # m_lanes, x_lanes, bus_bits for hwgen generate
    inputs: np.ndarray  # int64 (N, C, H, W)
    description: str


def _requant(rng, channels: int, acc_mag: int, act_bits: int, relu: bool) -> Requant:
    """Per-channel M, S mapping accumulators of about acc_mag onto the output range."""
    mults, shifts = [], []
    for _ in range(channels):
        m, s = intmath.quantize_multiplier(float(rng.uniform(0.4, 2.5)) * (1 << act_bits) / (2 * max(acc_mag, 1)))
        mults.append(m)
        shifts.append(s)
    lo, hi = intmath.qrange(act_bits, not relu)
    return Requant(np.array(mults, dtype=np.int64), np.array(shifts, dtype=np.int64), lo, hi)


def _layers(rng, wide, prefix: str, inp: Node, w_bits: int, a_bits: int) -> tuple[list[Node], list[str]]:
    """A chain of 3 or 4 random conv layers after `inp` (named `<prefix>conv<i>`), and their descriptions."""
    c, h, w = inp.out_shape
    nodes, desc, prev, signed = [], [], inp.name, inp.quant.signed
    n_layers = int(rng.integers(3, 5))
    # The first layer sees the all-maximum / all-minimum images: its accumulator reaches its bound.
    worst = {0, int(rng.integers(1, n_layers))}
    for i in range(n_layers):
        first = i == 0
        cout = int(rng.integers(2, 13))
        kernel = 3 if first or rng.random() < 0.75 else 1
        stride = 2 if not first and min(h, w) >= 5 and rng.random() < 0.3 else 1
        scheme = None if first or kernel == 1 else SCHEMES[int(rng.integers(len(SCHEMES)))]
        if kernel == 3 and scheme is None and wide.random() < 0.4:
            kernel = int(wide.choice([5, 7]))
        relu = bool(rng.random() < 0.7)
        wlo, whi = intmath.qrange(w_bits, True)
        if i in worst:
            wq = np.full((cout, c, kernel, kernel), wlo, dtype=np.int64)
        else:
            wq = rng.integers(wlo, whi + 1, size=(cout, c, kernel, kernel))
        if scheme is not None:
            wq = wq * layer_mask(parse_scheme(scheme).table(), cout, c)
        xlo, xhi = intmath.qrange(a_bits, signed)
        taps = max(int(np.count_nonzero(wq.reshape(cout, -1), axis=1).max()), 1)
        acc_mag = taps * max(abs(wlo), whi) * max(abs(xlo), xhi)
        if i in worst:
            bias = np.full(cout, acc_mag // 2, dtype=np.int64)
        else:
            bias = rng.integers(-acc_mag // 8, acc_mag // 8 + 1, size=cout)
        name = f"{prefix}conv{i + 1}"
        node = Node(name, "conv2d", (prev,), {"stride": stride, "padding": kernel // 2},
                    wq.astype(np.float32))
        node.quant = QuantInfo(act_bits=a_bits, out_scale=1.0, signed=not relu, weight_bits=w_bits,
                               weight=wq.astype(np.int64), weight_scale=np.ones(cout), bias=bias.astype(np.int64),
                               requant=_requant(rng, cout, acc_mag // (1 if i in worst else 4), a_bits, relu))
        nodes.append(node)
        desc.append(f"{name}: {c}->{cout} {kernel}x{kernel}/s{stride} {scheme or 'dense'}"
                    f"{' relu' if relu else ' signed-out'}{' worst-case' if i in worst else ''}")
        prev, signed, c = name, not relu, cout
        h, w = (h + 2 * (kernel // 2) - kernel) // stride + 1, (w + 2 * (kernel // 2) - kernel) // stride + 1
    return nodes, desc


def _engine_and_input(rng) -> tuple[int, int, dict, Node]:
    """The draws a chain shares with the others on its engine: bits, lanes, bus, the input's shape."""
    w_bits, a_bits = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    bus_bits = int(rng.choice([32, 64, 128]))
    engine = {"m_lanes": int(rng.choice([1, 2, 4, 8])), "x_lanes": int(rng.choice([1, 2, 4])), "bus_bits": bus_bits}
    c, h, w = int(rng.choice([1, 3])), int(rng.integers(5, 12)), int(rng.integers(5, 12))
    x = Node("x", "input", out_shape=(c, h, w))
    x.quant = QuantInfo(act_bits=a_bits, out_scale=1.0, signed=True)
    return w_bits, a_bits, engine, x


def _inputs(rng, graph: Graph, a_bits: int, images: int) -> np.ndarray:
    lo, hi = intmath.qrange(a_bits, True)
    shape = graph.input_shape
    xs = [np.full(shape, hi), np.full(shape, lo)] + [rng.integers(lo, hi + 1, size=shape) for _ in range(images)]
    return np.stack(xs).astype(np.int64)


def _header(w_bits: int, a_bits: int, engine: dict, x: Node) -> str:
    c, h, w = x.out_shape
    return f"W{w_bits}A{a_bits} lanes {engine['m_lanes']}x{engine['x_lanes']} bus {engine['bus_bits']}, input {c}x{h}x{w}"


def random_chain(seed: int, images: int = 3) -> Chain:
    rng = np.random.default_rng(seed)
    w_bits, a_bits, engine, x = _engine_and_input(rng)
    wide = np.random.default_rng([seed, 57])  # which dense 3x3 layers become 5x5 or 7x7
    nodes, desc = _layers(rng, wide, "", x, w_bits, a_bits)
    graph = Graph(f"chain{seed}", [x, *nodes], nodes[-1].name).infer_shapes()
    return Chain(seed, graph, engine, _inputs(rng, graph, a_bits, images),
                 "; ".join([_header(w_bits, a_bits, engine, x), *desc]))


def random_group(seed: int, chains: int, images: int = 3) -> Chain:
    """`chains` random chains on one engine, as one graph: one generated engine, one Verilator build
    and one simulation verify all of them (`hwgen verify --chains-per-engine`).

    The chains share what the engine is built for (weight and activation bits, lanes, bus), the
    input's shape and images, and the simulation's stall seed; each draws its own layers (count,
    channels, kernels, strides, sparsity schemes, ReLU or signed outputs, worst-case layers,
    weights, biases, requantization) from a stream of its own (stream j of the group). Each
    branches off the input and is compared layer by layer; the graph's output is the last chain's
    last layer. The engine's pattern ROM holds 64 masks: a stream whose layers' tables would not
    fit beside the chains already drawn is passed over (the description names the streams taken).
    """
    from .engine.params import MAX_PERIOD
    from .engine.plan import plan_node, rom_tables

    if chains < 1:
        raise ValueError(f"a group needs at least one chain, got {chains}")
    rng = np.random.default_rng([seed, chains])
    w_bits, a_bits, engine, x = _engine_and_input(rng)
    nodes, desc, plans, j = [], [_header(w_bits, a_bits, engine, x)], [], 0
    while len(desc) <= chains:
        more, d = _layers(np.random.default_rng([seed, chains, j]), np.random.default_rng([seed, chains, j, 57]),
                          f"k{j}_", x, w_bits, a_bits)
        graph = Graph("chain", [x, *more], more[-1].name).infer_shapes()
        new = [plan_node(graph, graph.node(n.name), m_lanes=engine["m_lanes"]) for n in more]
        if len(rom_tables(plans + new)[0]) <= MAX_PERIOD * 4:
            nodes, plans = nodes + more, plans + new
            desc.append(f"chain {j}: " + ", ".join(d))
        j += 1
    graph = Graph(f"group{seed}x{chains}", [x, *nodes], nodes[-1].name).infer_shapes()
    return Chain(seed, graph, engine, _inputs(rng, graph, a_bits, images), "; ".join(desc))
