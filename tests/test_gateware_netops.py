"""The network-op unit (hwgen.gateware.netops) in amaranth.sim against hwgen.reference.

Random shapes (odd heights and widths, rows of one or several beats, partial last beats), bits
A = 2..8 (A = 3/4 and 2 packed 2 and 4 per byte), signed and unsigned maps, random Ma, Mb, M, S,
lo/hi (ReLU included), rounding half up and half even, and random stalls on every stream: the
output map read back from memory equals the reference's, every field (padding fields are 0), and
the unit moves exactly the compulsory bytes (each input field a window uses and each output once).
Units built with every op and with the op under test alone (`NetOps(ops=...)`).
"""

from __future__ import annotations

import numpy as np
import pytest

from hwgen import intmath, reference
from hwgen.engine import EngineParams, activation_bytes, netop, pack_activations, unpack_activations
from hwgen.engine.network import netop_unit
from hwgen.errors import HwgenError
from hwgen.gateware.netops import NetOps
from hwgen.gateware.sim_memory import run_layer
from hwgen.ir import Graph, Node, QuantInfo, Requant

OPS = ("add", "maxpool2", "avgpool2", "gap", "linear")


def op_graph(rng, op: str, c: int, h: int, w: int, a_bits: int, signed: bool) -> Graph:
    """input -> one network op with random integer parameters (the shapes of hwgen.quantize's)."""
    x = Node("x", "input", out_shape=(c, h, w))
    x.quant = QuantInfo(act_bits=a_bits, out_scale=1.0, signed=signed)
    half_even = bool(rng.integers(2))
    relu = bool(rng.integers(2))
    lo, hi = intmath.qrange(a_bits, not relu)
    rounding = "half_even" if half_even else "half_up"
    if op == "linear":  # the classifier: flatten, then raw logits (requant None) of W-bit weights
        flat = Node("flat", "flatten", ("x",))
        flat.quant = QuantInfo(a_bits, 1.0, signed)
        m, w_bits = int(rng.integers(1, 12)), int(rng.integers(2, 9))
        wlo, whi = intmath.qrange(w_bits, True)
        node = Node("op", "linear", ("flat",), weight=np.zeros((m, c * h * w), np.float32))
        node.quant = QuantInfo(a_bits, 1.0, True, weight_bits=w_bits,
                               weight=rng.integers(wlo, whi + 1, size=(m, c * h * w)),
                               bias=rng.integers(-(1 << 20), 1 << 20, size=m))
        return Graph("netop_case", [x, flat, node], "op").infer_shapes()
    if op == "add":  # the second operand signed or not on its own (a ResNet's identity shortcut: unsigned)
        shift = int(rng.integers(8, 24))
        ma, mb = (int(v) for v in rng.integers(1, 1 << intmath.MULT_BITS, size=2))
        rq = Requant(np.ones(c, np.int64), np.full(c, shift), lo, hi, rounding)
        y = Node("y", "input", out_shape=(c, h, w))
        y.quant = QuantInfo(act_bits=a_bits, out_scale=1.0, signed=bool(rng.integers(2)))
        node = Node("op", "add", ("x", "y"))
        node.quant = QuantInfo(a_bits, 1.0, not relu, requant=rq, input_multipliers=[ma, mb])
        return Graph("netop_case", [x, y, node], "op").infer_shapes()
    elif op == "maxpool2":
        node = Node("op", "maxpool2d", ("x",), {"kernel": 2, "stride": 2, "padding": 0})
        node.quant = QuantInfo(a_bits, 1.0, signed)
    else:
        kernel = (h, w) if op == "gap" else (2, 2)
        taps = kernel[0] * kernel[1]
        mult, shift = intmath.quantize_multiplier(float(rng.uniform(0.3, 1.5)) / taps)
        rq = Requant(np.full(c, mult), np.full(c, shift), lo, hi, rounding)
        node = Node("op", "avgpool2d", ("x",), {"kernel": kernel, "stride": kernel if op == "gap" else 2,
                                                "padding": 0})
        node.quant = QuantInfo(a_bits, 1.0, not relu, requant=rq)
    return Graph("netop_case", [x, node], "op").infer_shapes()


def run_op(graph: Graph, params: EngineParams, inputs: list[np.ndarray], *, stall: float, seed: int, chunk: int,
           ops=OPS):
    node = graph.node("op")
    linear = node.op == "linear"
    out_shape = tuple(node.out_shape) if len(node.out_shape) == 3 else (node.out_shape[0], 1, 1)
    blobs = [pack_activations(x, params) for x in inputs]
    if linear:
        blobs.append(netop.linear_block(graph, "op", params))
    addrs = [sum(len(b) for b in blobs[:i]) for i in range(len(blobs))]
    out_addr = sum(len(b) for b in blobs)
    out_bytes = netop.logits_bytes(out_shape[0], params) if linear else activation_bytes(out_shape, params)
    image = bytearray(out_addr + out_bytes)
    for addr, blob in zip(addrs, blobs):
        image[addr:addr + len(blob)] = blob
    image[out_addr:] = b"\xa5" * (len(image) - out_addr)  # stale bytes: every output byte must be written
    fields = netop.netop_fields(graph, "op", params, a_addr=0, b_addr=addrs[-1] if len(addrs) > 1 else 0,
                                out_addr=out_addr, chunk=chunk)
    unit = NetOps(params, chunk=chunk, ops=ops)
    traffic = run_layer(unit, image, None, stall=stall, seed=seed,
                        inputs=[(unit.descriptor.as_value(), int.from_bytes(netop.pack(**fields), "little"))])
    raw = bytes(image[out_addr:])
    if linear:
        got = netop.unpack_logits(raw, out_shape[0], params)
    else:
        got = unpack_activations(raw, out_shape, bool(node.quant.signed), params)
    return got, raw, traffic, netop.moved_bytes(fields, params) - len(raw) - 64, len(raw)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", range(3))
def test_netop_equals_reference_under_stalls(op, seed):
    check_random_op(op, seed)


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", range(3, 53))
def test_netop_soak(op, seed):
    """make soak: 200 more random cases."""
    check_random_op(op, seed)


def check_random_op(op: str, seed: int) -> None:
    rng = np.random.default_rng(100 * OPS.index(op) + seed)
    a_bits = int(rng.choice([5, 6, 8] if op == "linear" else [2, 3, 4, 5, 8, 8]))  # linear: one byte each
    signed = bool(rng.integers(2))
    bus_bits = int(rng.choice([32, 64]))
    params = EngineParams(bus_bits=bus_bits, act_bits=a_bits)
    c = int(rng.integers(1, 5))
    h, w = int(rng.integers(2, 8)), int(rng.integers(2, 3 * params.beat_elems))
    chunk = int(rng.integers(max(1, params.row_beats(w)), 6))
    graph = op_graph(rng, op, c, h, w, a_bits, signed)
    ranges = [intmath.qrange(a_bits, bool(graph.node(name).quant.signed)) for name in graph.node("op").inputs]
    inputs = [rng.integers(lo, hi + 1, size=(c, h, w)) for lo, hi in ranges[:2 if op == "add" else 1]]
    # odd seeds: a unit built with the ops the graph uses only (the others' datapaths left out; a 2x2
    # average pool of a 2x2 map is GAP), as a build gets it; even: every op it can have
    every = tuple(o for o in OPS if o != "linear" or params.act_field_bits == 8)
    got, raw, traffic, in_bytes, out_bytes = run_op(graph, params, inputs, stall=0.4, seed=seed, chunk=chunk,
                                                    ops=netop_unit(graph, params).ops if seed % 2 else every)
    if op == "linear":
        want = reference.run(graph, inputs[0][None])[0]
        np.testing.assert_array_equal(got, want)
        # each logit's beat: the int32 in bytes 0-3, the rest 0; input and weight blocks read once each
        bb = params.beat_bytes
        assert raw == b"".join(int(v).to_bytes(4, "little", signed=True) + bytes(bb - 4) for v in want)
        plane = activation_bytes((c, h, w), params)
        assert (traffic.read_bytes, traffic.write_bytes) == (plane + len(want) * (bb + plane), out_bytes)
        return
    want = reference.run_layer(graph, "op", [x[None] for x in inputs] if op == "add" else inputs[0][None])[0]
    np.testing.assert_array_equal(got, want.reshape(got.shape))
    # padding fields are written 0: the bytes equal the packed reference map's
    assert raw == pack_activations(want.reshape(got.shape), params)
    if op in ("maxpool2", "avgpool2"):  # an odd height's last row is in no window: not read
        assert in_bytes == c * 2 * (h // 2) * params.row_beats(w) * params.beat_bytes
    else:
        assert in_bytes == len(inputs) * activation_bytes((c, h, w), params)
    assert (traffic.read_bytes, traffic.write_bytes) == (in_bytes, out_bytes)


def test_netop_refusals():
    params = EngineParams(bus_bits=64, act_bits=8)
    rng = np.random.default_rng(0)
    graph = op_graph(rng, "maxpool2", 1, 4, 40, 8, False)
    with pytest.raises(HwgenError, match="does not fit the network-op unit"):
        netop.pack_netop(graph, "op", params, a_addr=0, out_addr=0, chunk=4)
    graph.node("op").attrs["kernel"] = (3, 3)
    with pytest.raises(HwgenError, match="2x2 windows at stride 2"):
        netop.plan_netop(graph, "op")
    with pytest.raises(HwgenError, match="at least 2 activations per bus beat"):
        NetOps(EngineParams(bus_bits=8, act_bits=8))
    with pytest.raises(HwgenError, match="chunk"):
        NetOps(params, chunk=0)
    with pytest.raises(HwgenError, match="ops must be some of"):
        NetOps(params, ops=("conv",))
    graph = op_graph(rng, "gap", 1, 4, 4, 8, False)
    with pytest.raises(HwgenError, match=r"^node 'op': this build's network-op unit has no gap \(it was generated "
                                         r"with add, maxpool2\)$"):
        netop.pack_netop(graph, "op", params, a_addr=0, out_addr=0, chunk=4, ops=("add", "maxpool2"))
