"""Property-based fuzzing of the three loaders (.pt2, .onnx, .hwq) through `hwgen inspect`.

From one valid file of each kind, hypothesis derives corrupted ones: flipped bytes, truncations,
overwritten zip header fields, JSON values of other types and values, tensor shapes, duplicated
nodes. Whatever the file, `hwgen inspect` must exit 0 (the file is still a model) or 2 with exactly
one line on stderr: never a traceback (exit 3 is an internal error), never over 10 s or 1 GB.

`make test` runs about a hundred derandomized cases; `make soak` runs the `slow` variants, over a
thousand random ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from hwgen import checkpoint, quantize
from hwgen.cli import main
from hwgen.ingest import load_model
from ingest_helpers import export

MAX_SECONDS = 10.0
MAX_BYTES = 1 << 30
FAST = settings(max_examples=6, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SOAK = settings(max_examples=70, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Seed(nn.Module):
    """Small, but with most ops: conv, ReLU6, depthwise conv, ceil_mode pooling, concat, mean, linear."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.act, self.pool = nn.ReLU6(), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.c = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.pool(self.b(self.act(self.a(x))))
        return self.fc(torch.cat([x, torch.relu(self.c(x))], 1).mean((2, 3)))


class Seeds(dict):
    """The seed files by kind; a short repr keeps hypothesis's failure reports readable."""

    def __repr__(self):
        return "seeds"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-seeds")
    torch.manual_seed(0)
    model = Seed().eval()
    pt2 = export(model, (1, 8, 8), d / "seed.pt2")
    onnx_path = d / "seed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(onnx_path), dynamo=False)
    graph = load_model(pt2)
    hwq = d / "seed.hwq"
    checkpoint.save(quantize.quantize_graph(graph, np.random.default_rng(0).normal(size=(8, 1, 8, 8)), 8, 8), hwq)
    return Seeds(pt2=pt2.read_bytes(), onnx=onnx_path.read_bytes(), hwq=hwq.read_bytes())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-cases")


def check_case(workdir, kind: str, data: bytes) -> None:
    """`hwgen inspect` on `data`: exit 0, or 2 with one line; within the time and memory bounds."""
    path = workdir / f"case.{kind}"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["inspect", str(path), "--json", "-"])
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    lines = err.getvalue().strip().splitlines()
    assert rc in (0, 2), (rc, err.getvalue())
    if rc == 2:
        assert len(lines) == 1 and lines[0].startswith("hwgen inspect: error: "), err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert elapsed < MAX_SECONDS, elapsed
    assert peak < MAX_BYTES, peak


# -- mutations ---------------------------------------------------------------------------------------


def flip_bytes(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, value in flips:
        b[pos % len(b)] = value
    return bytes(b)


def zip_header_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of every size, offset, count, CRC and method field of the zip's headers."""
    fields = []
    for sig, layout in ((b"PK\x03\x04", [(8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)]),
                        (b"PK\x01\x02", [(10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (42, 4)]),
                        (b"PK\x05\x06", [(8, 2), (10, 2), (12, 4), (16, 4)])):
        at = data.find(sig)
        while at >= 0:
            fields += [(at + off, width) for off, width in layout if at + off + width <= len(data)]
            at = data.find(sig, at + 1)
    return fields


def rewrite_members(data: bytes, edit) -> bytes:
    """A zip rebuilt member by member; `edit(name, bytes)` returns the new bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
    return out.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
    | st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 40, 2 ** 63, -2 ** 63]) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


def edit_json_path(doc, draw, value_strategy):
    """Replace one value somewhere in `doc` (a walk of random depth) with a drawn value."""
    parent, key = None, None
    node = doc
    for _ in range(draw(st.integers(0, 12))):
        if isinstance(node, dict) and node:
            k = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            k = draw(st.integers(0, len(node) - 1))
        else:
            break
        parent, key, node = node, k, node[k]
    if parent is None:
        return draw(value_strategy)
    parent[key] = draw(value_strategy)
    return doc


def json_members(kind: str, name: str) -> bool:
    return name.endswith(".json")


def zipped_json_edit(data: bytes, kind: str, draw, value_strategy) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = sorted(n for n in z.namelist() if json_members(kind, n))
    target = draw(st.sampled_from(names))

    def edit(name, raw):
        if name != target:
            return raw
        return json.dumps(edit_json_path(json.loads(raw), draw, value_strategy)).encode()
    return rewrite_members(data, edit)


size_values = st.sampled_from([0, -1, 1, 3, 7, 2 ** 16, 2 ** 16 + 1, 2 ** 28, 2 ** 31, 2 ** 40, 2 ** 63 - 1])


def zipped_shape_edit(data: bytes, kind: str, draw) -> bytes:
    """Sizes, strides, offsets and shapes (the integers that decide allocations) set to hostile values."""
    def edit(name, raw):
        if not name.endswith(".json"):
            return raw
        doc = json.loads(raw)
        for holder, key in _int_lists(doc, {"sizes", "strides", "shape", "out_shape", "storage_offset"}):
            if draw(st.booleans()):
                lst = holder[key]
                if isinstance(lst, list) and lst:
                    i = draw(st.integers(0, len(lst) - 1))
                    v = draw(size_values)
                    lst[i] = {"as_int": v} if isinstance(lst[i], dict) else v
                elif isinstance(lst, dict):
                    holder[key] = {"as_int": draw(size_values)}
        return json.dumps(doc).encode()
    return rewrite_members(data, edit)


def _int_lists(doc, keys):
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k in keys:
                    yield node, k
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


def zipped_duplicate(data: bytes, kind: str, draw) -> bytes:
    """One node of the graph duplicated in place (same outputs: a second definition)."""
    def edit(name, raw):
        if not (name.endswith("models/model.json") or name == "graph.json"):
            return raw
        doc = json.loads(raw)
        nodes = doc["graph_module"]["graph"]["nodes"] if kind == "pt2" else doc["nodes"]
        i = draw(st.integers(0, len(nodes) - 1))
        nodes.insert(draw(st.integers(0, len(nodes))), json.loads(json.dumps(nodes[i])))
        return json.dumps(doc).encode()
    return rewrite_members(data, edit)


def onnx_edit(data: bytes, draw) -> bytes:
    """Dims, attributes, node order and duplicates of an ONNX model, through its protobuf."""
    model = onnx.ModelProto.FromString(data)
    g = model.graph
    what = draw(st.sampled_from(["dims", "input_dims", "attr", "duplicate", "drop", "swap"]))
    if what == "dims" and g.initializer:
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        if t.dims:
            t.dims[draw(st.integers(0, len(t.dims) - 1))] = draw(size_values)
    elif what == "input_dims":
        dims = g.input[0].type.tensor_type.shape.dim
        dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(size_values)
    elif what == "attr":
        nodes = [n for n in g.node if n.attribute]
        if nodes:
            n = draw(st.sampled_from(nodes))
            a = n.attribute[draw(st.integers(0, len(n.attribute) - 1))]
            if a.ints:
                a.ints[draw(st.integers(0, len(a.ints) - 1))] = draw(size_values)
            elif a.type == onnx.AttributeProto.INT:
                a.i = draw(size_values)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = draw(st.floats(width=32))
    elif what == "duplicate":
        g.node.append(g.node[draw(st.integers(0, len(g.node) - 1))])
    elif what == "drop" and len(g.node) > 1:
        del g.node[draw(st.integers(0, len(g.node) - 1))]
    elif what == "swap" and len(g.node) > 1:
        i, j = draw(st.integers(0, len(g.node) - 1)), draw(st.integers(0, len(g.node) - 1))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i])
        b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    return model.SerializeToString()


def mutate(seeds, kind: str, strategy: str, draw) -> bytes:
    data = seeds[kind]
    if strategy == "flip":
        flips = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=8))
        return flip_bytes(data, flips)
    if strategy == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "onnx":
        return onnx_edit(data, draw)
    if strategy == "zip_header":
        fields = zip_header_fields(data)
        off, width = draw(st.sampled_from(fields))
        value = draw(st.integers(0, (1 << (8 * width)) - 1))
        return data[:off] + value.to_bytes(width, "little") + data[off + width:]
    if strategy == "json_type":
        return zipped_json_edit(data, kind, draw, json_values)
    if strategy == "json_number":
        return zipped_json_edit(data, kind, draw, size_values | st.floats(allow_nan=True) | st.integers())
    if strategy == "shapes":
        return zipped_shape_edit(data, kind, draw)
    if strategy == "duplicate":
        return zipped_duplicate(data, kind, draw)
    raise AssertionError(strategy)


ZIP_STRATEGIES = ["flip", "truncate", "zip_header", "json_type", "json_number", "shapes", "duplicate"]
ONNX_STRATEGIES = ["flip", "truncate", "structure"]
CASES = [(k, s) for k in ("pt2", "hwq") for s in ZIP_STRATEGIES] + [("onnx", s) for s in ONNX_STRATEGIES]


def test_seeds_load(seeds, workdir):
    for kind, data in seeds.items():
        check_case(workdir, kind, data)


@pytest.mark.parametrize("kind, strategy", CASES)
@FAST
@given(data=st.data())
def test_corrupted_file_exits_0_or_2_in_one_line(seeds, workdir, kind, strategy, data):
    check_case(workdir, kind, mutate(seeds, kind, strategy, data.draw))


@pytest.mark.slow
@pytest.mark.parametrize("kind, strategy", CASES)
@SOAK
@given(data=st.data())
def test_soak_corrupted_file_exits_0_or_2_in_one_line(seeds, workdir, kind, strategy, data):
    check_case(workdir, kind, mutate(seeds, kind, strategy, data.draw))


def test_unknown_compression_method_is_one_line(seeds, workdir):
    # found by the soak: a member's method field set to 1 (shrink), which zipfile cannot read
    data = seeds["pt2"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        central = z.start_dir  # zipfile reads each member's method from its central-directory entry
    at = data.find(b"PK\x01\x02", central)
    while at >= 0:
        check_case(workdir, "pt2", data[:at + 10] + (1).to_bytes(2, "little") + data[at + 12:])
        at = data.find(b"PK\x01\x02", at + 1)


def test_zip_header_fields_are_found(seeds):
    # the mutation must reach every header kind, or the zip_header cases test nothing
    fields = zip_header_fields(seeds["pt2"])
    assert len(fields) > 30 and struct.unpack_from("<I", seeds["pt2"], 0)[0] == 0x04034B50
