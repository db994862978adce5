"""The .hwq checkpoint: round trip, determinism, and hostile or corrupted files."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import quant_helpers as h
from hwgen import checkpoint, quantize, reference
from hwgen.errors import HwgenError


@pytest.fixture(scope="module")
def quantized():
    net = h.residual_net(5)
    return quantize.quantize_graph(net, h.random_input(net, 16, 0), 6, 7)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _edit(graph, change) -> bytes:
    """The checkpoint of `graph` with graph.json (as a dict) changed in place by `change(doc, members)`."""
    members = _members(checkpoint.to_bytes(graph))
    doc = json.loads(members["graph.json"])
    change(doc, members)
    members["graph.json"] = json.dumps(doc).encode()
    return _zip(members)


def _node(doc, name):
    return next(n for n in doc["nodes"] if n["name"] == name)


def _assert_same(a, b):
    assert (a.name, a.output) == (b.name, b.output)
    for x, y in zip(a.nodes, b.nodes, strict=True):
        assert (x.name, x.op, x.inputs, x.out_shape) == (y.name, y.op, y.inputs, y.out_shape)
        assert {k: tuple(v) if isinstance(v, tuple) else v for k, v in x.attrs.items()} == y.attrs
        for arr in ("weight", "bias"):
            u, v = getattr(x, arr), getattr(y, arr)
            assert (u is None and v is None) or (np.array_equal(u, v) and v.dtype == np.float32)
        qx, qy = x.quant, y.quant
        if qx is None:
            assert qy is None
            continue
        assert (qx.act_bits, qx.out_scale, qx.signed, qx.weight_bits, qx.input_multipliers) == \
               (qy.act_bits, qy.out_scale, qy.signed, qy.weight_bits, qy.input_multipliers)
        for arr in ("weight", "weight_scale", "bias"):
            u, v = getattr(qx, arr), getattr(qy, arr)
            assert (u is None and v is None) or (np.array_equal(u, v) and v.dtype == u.dtype)
        if qx.requant is None:
            assert qy.requant is None
        else:
            assert np.array_equal(qx.requant.multiplier, qy.requant.multiplier)
            assert np.array_equal(qx.requant.shift, qy.requant.shift)
            assert (qx.requant.lo, qx.requant.hi) == (qy.requant.lo, qy.requant.hi)


def test_round_trip_is_exact_and_runs_identically(quantized, tmp_path):
    path = tmp_path / "net.hwq"
    checkpoint.save(quantized, path)
    loaded = checkpoint.load(path)
    _assert_same(quantized, loaded)
    x = quantize.quantize_input(quantized, h.random_input(quantized, 7, 3))
    assert np.array_equal(reference.run(loaded, x), reference.run(quantized, x))


def test_float_graph_round_trip(tmp_path):
    net = h.digits_net(2)
    checkpoint.save(net, tmp_path / "f.hwq")
    loaded = checkpoint.load(tmp_path / "f.hwq")
    _assert_same(net, loaded)
    assert all(n.quant is None for n in loaded.nodes)


def test_same_graph_same_bytes(quantized, tmp_path):
    checkpoint.save(quantized, tmp_path / "a.hwq")
    checkpoint.save(checkpoint.load(tmp_path / "a.hwq"), tmp_path / "b.hwq")
    assert (tmp_path / "a.hwq").read_bytes() == (tmp_path / "b.hwq").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.hwq") as zf:
        assert zf.namelist()[0] == "graph.json"
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _bad_requant_shift(doc, members):
    ref = _node(doc, "stem")["quant"]["requant"]["shift"]
    members[ref["member"]] = np.zeros(ref["shape"], "<i4").tobytes()


def _bad_int_weight(doc, members):
    ref = _node(doc, "stem")["quant"]["weight"]
    members[ref["member"]] = np.full(ref["shape"], 40, "<i1").tobytes()  # W = 6 allows [-32, 31]


def _short_member(doc, members):
    ref = _node(doc, "stem")["weight"]
    members[ref["member"]] = members[ref["member"]][:-4]


def _missing_member(doc, members):
    del members[_node(doc, "fc1")["bias"]["member"]]


def _three_d_weight(doc, members):
    ref = _node(doc, "stem")["weight"]
    ref["shape"] = [8, 3, 9]
    members[ref["member"]] = np.zeros(ref["shape"], "<f4").tobytes()


def _object_dtype(doc, members):
    _node(doc, "stem")["weight"]["dtype"] = "|O"


def _wrong_kind_dtype(doc, members):
    _node(doc, "stem")["quant"]["weight"]["dtype"] = "<f4"


HOSTILE = {
    "version": (lambda d, m: d.update(version=99), "unsupported format version 99"),
    "format": (lambda d, m: d.update(format="other"), "not an hwgen checkpoint"),
    "unknown op": (lambda d, m: _node(d, "mp").update(op="softmax"), "node 'mp': unknown op 'softmax'"),
    "unknown key": (lambda d, m: _node(d, "mp").update(code="import os"), "unknown key\\(s\\) in node: code"),
    "unknown quant key": (lambda d, m: _node(d, "mp")["quant"].update(zero_point=3), "zero_point"),
    "unknown attr": (lambda d, m: _node(d, "mp")["attrs"].update(dilation=[1, 1]), "unknown attr\\(s\\) for maxpool2d"),
    "ceil_mode type": (lambda d, m: _node(d, "mp")["attrs"].update(ceil_mode=1), "attr ceil_mode must be true"),
    "act bits": (lambda d, m: _node(d, "stem")["quant"].update(act_bits=9), "act_bits = 9 is out of range \\[2, 8\\]"),
    "weight bits": (lambda d, m: _node(d, "stem")["quant"].update(weight_bits=1), "weight_bits = 1 is out of range"),
    "multiplier": (lambda d, m: m.__setitem__(_node(d, "stem")["quant"]["requant"]["multiplier"]["member"],
                                              np.full(8, 1 << 15, "<i4").tobytes()),
                   "requant multiplier has values in \\[32768, 32768\\]"),
    "shift": (_bad_requant_shift, "node 'stem': requant shift has values in \\[0, 0\\], outside \\[1, 47\\]"),
    "lo/hi": (lambda d, m: _node(d, "stem")["quant"]["requant"].update(hi=4096), "requant hi = 4096 is out of range"),
    "int weight range": (_bad_int_weight, "integer weight has values in \\[40, 40\\], outside \\[-32, 31\\]"),
    "size vs shape": (_short_member, "holds 860 bytes but weight <f4 \\(8, 3, 3, 3\\) needs 864"),
    "missing member": (_missing_member, "missing member 'arrays/"),
    "dtype whitelist": (_object_dtype, "dtype '\\|O'; allowed"),
    "dtype kind": (_wrong_kind_dtype, "dtype '<f4'; allowed: <i1, <i2, <i4, <i8"),
    "shape disagrees": (lambda d, m: _node(d, "b1").update(out_shape=[8, 4, 4]), "stored shape \\(8, 4, 4\\) disagrees"),
    "weight rank": (_three_d_weight, "node 'stem': conv2d weight must be a non-empty 4-d array"),
    "partial": (lambda d, m: _node(d, "mp").update(quant=None), "partially quantized"),
    "bool as int": (lambda d, m: _node(d, "stem")["quant"].update(act_bits=True), "act_bits must be an integer"),
    "negative scale": (lambda d, m: _node(d, "stem")["quant"].update(out_scale=-1.0), "out_scale must be a finite"),
    "dangling input": (lambda d, m: _node(d, "mp").update(inputs=["nowhere"]), "input 'nowhere' is not defined"),
    "add multipliers": (lambda d, m: _node(d, "add1")["quant"].update(input_multipliers=[1]),
                        "add needs input_multipliers"),
    "missing requant": (lambda d, m: _node(d, "fc1")["quant"].update(requant=None), "node 'fc1': requant is missing"),
    "empty input": (lambda d, m: _node(d, "x").update(out_shape=[0, 9, 9]), "node 'x': out_shape = 0 is below 1"),
    "huge shape": (lambda d, m: _node(d, "stem")["weight"].update(shape=[2 ** 40, 2 ** 40, 3, 3]),
                   "holds 864 bytes but weight <f4 \\(1099511627776, 1099511627776, 3, 3\\) needs"),
    "extra member": (lambda d, m: m.__setitem__("notes.txt", b"hi"), "unexpected member\\(s\\) 'notes.txt'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_corrupted_checkpoint_gives_one_clear_error(quantized, tmp_path, case):
    change, message = HOSTILE[case]
    path = tmp_path / "bad.hwq"
    path.write_bytes(_edit(quantized, change))
    with pytest.raises(HwgenError, match=message) as e:
        checkpoint.load(path)
    assert "\n" not in str(e.value) and "bad.hwq" in str(e.value)


class _Payload:
    """Unpickling this would create a file: the proof that nothing was unpickled is its absence."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_member_is_refused_and_its_payload_never_runs(quantized, tmp_path):
    target = tmp_path / "pwned"
    members = _members(checkpoint.to_bytes(quantized))
    members["data.pkl"] = pickle.dumps(_Payload(str(target)))
    (tmp_path / "a.hwq").write_bytes(_zip(members))
    with pytest.raises(HwgenError, match="unexpected member\\(s\\) 'data.pkl'"):
        checkpoint.load(tmp_path / "a.hwq")
    # A torch.save-style archive: only a pickle, no graph.json.
    (tmp_path / "b.hwq").write_bytes(_zip({"archive/data.pkl": pickle.dumps(_Payload(str(target)))}))
    with pytest.raises(HwgenError, match="no graph.json member"):
        checkpoint.load(tmp_path / "b.hwq")
    # The pickle named as an array member: read as raw bytes only, and refused for its size.
    def as_array(doc, m):
        ref = _node(doc, "stem")["weight"]
        m[ref["member"]] = pickle.dumps(_Payload(str(target)))
    (tmp_path / "c.hwq").write_bytes(_edit(quantized, as_array))
    with pytest.raises(HwgenError, match="holds .* bytes but weight"):
        checkpoint.load(tmp_path / "c.hwq")
    assert not target.exists()


@pytest.mark.parametrize("data, message", [
    (b"", "not a readable hwgen checkpoint"),
    (b"\x80\x04K\x01.", "not a readable hwgen checkpoint"),  # a bare pickle
    (b"PK\x03\x04" + bytes(60), "not a readable hwgen checkpoint"),
])
def test_not_a_zip(tmp_path, data, message):
    (tmp_path / "x.hwq").write_bytes(data)
    with pytest.raises(HwgenError, match=message):
        checkpoint.load(tmp_path / "x.hwq")


def test_truncated_file(quantized, tmp_path):
    data = checkpoint.to_bytes(quantized)
    (tmp_path / "t.hwq").write_bytes(data[: len(data) // 2])
    with pytest.raises(HwgenError, match="not a readable hwgen checkpoint"):
        checkpoint.load(tmp_path / "t.hwq")


@pytest.mark.parametrize("text, message", [
    (b"{not json", "graph.json is not valid JSON"),
    (b"\xff\xfe", "graph.json is not valid JSON"),
    (b'{"format": "hwgen.hwq", "format": "x"}', "duplicate keys"),
    (b'{"version": NaN}', "contains NaN"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON|must be an object"),
    (b"[]", "graph.json must be an object"),
])
def test_malformed_graph_json(tmp_path, text, message):
    (tmp_path / "j.hwq").write_bytes(_zip({"graph.json": text}))
    with pytest.raises(HwgenError, match=message):
        checkpoint.load(tmp_path / "j.hwq")


def test_compression_bomb_is_not_inflated(quantized, tmp_path):
    """A member that inflates to far more than its shape needs is refused from the header alone."""
    members = _members(checkpoint.to_bytes(quantized))
    doc = json.loads(members["graph.json"])
    members[_node(doc, "stem")["weight"]["member"]] = bytes(200 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    (tmp_path / "bomb.hwq").write_bytes(buf.getvalue())
    assert (tmp_path / "bomb.hwq").stat().st_size < 1 << 20
    with pytest.raises(HwgenError, match="holds 209715200 bytes but weight"):
        checkpoint.load(tmp_path / "bomb.hwq")


def test_missing_file(tmp_path):
    with pytest.raises(HwgenError, match="cannot read checkpoint"):
        checkpoint.load(tmp_path / "nope.hwq")
