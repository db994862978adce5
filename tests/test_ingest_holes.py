"""Regression tests for the holes fuzzing found: sizes past the limits, counts in exact integers,
duplicate definitions, empty outputs and unknown archive versions in a `.pt2`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.ingest import load_model
from hwgen.ir import MAX_DIM, MAX_ELEMENTS, Graph, Node, macs
from ingest_helpers import export, rewrite_zip

HUGE = 1099511627776  # 2**40


@pytest.fixture(scope="module")
def small_pt2(tmp_path_factory):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    return export(model, (1, 6, 6), tmp_path_factory.mktemp("holes") / "m.pt2")


def _edit_program(src, dst, change):
    def edit(name, data):
        if not name.endswith("models/model.json"):
            return data
        doc = json.loads(data)
        change(doc["graph_module"])
        return json.dumps(doc).encode()
    return rewrite_zip(src, dst, edit)


def _cli_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["inspect", "analyze"])
def test_huge_input_shape_is_refused_naming_the_limit(small_pt2, capsys, command):
    err = _cli_error(capsys, command, str(small_pt2), "--input-shape", f"1,{HUGE},{HUGE}")
    assert f"over the limit of {MAX_DIM}" in err
    err = _cli_error(capsys, command, str(small_pt2), "--input-shape", "1,16384,32768")
    assert f"over the limit of {MAX_ELEMENTS:,}" in err


def test_pt2_declaring_a_huge_input_is_refused(small_pt2, tmp_path):
    def huge(gm):
        (user,) = [s["user_input"]["arg"]["as_tensor"]["name"] for s in gm["signature"]["input_specs"]
                   if "user_input" in s]
        gm["graph"]["tensor_values"][user]["sizes"] = [{"as_int": d} for d in (1, 1, HUGE, HUGE)]
    with pytest.raises(HwgenError, match=f"over the limit of {MAX_DIM}"):
        load_model(_edit_program(small_pt2, tmp_path / "huge.pt2", huge))


def test_onnx_declaring_a_huge_input_is_refused(tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, HUGE, HUGE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = tmp_path / "huge.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(HwgenError, match=f"over the limit of {MAX_DIM}"):
        load_model(path)


def test_mac_counts_are_exact_integers_beyond_float_precision():
    # Within the limits, padding lets a kernel outgrow its input: a broadcast weight costs no memory.
    weight = np.broadcast_to(np.float32(1), (32768, 65536, 1024, 1024))
    g = Graph("big", [Node("input", "input", out_shape=(65536, 64, 64)),
                      Node("conv", "conv2d", ("input",), dict(padding=512), weight=weight)], "conv").infer_shapes()
    want = 32768 * 65536 * 1024 * 1024 * 65 * 65
    assert want > 2 ** 63 and macs(g, g.node("conv")) == want
    assert isinstance(macs(g, g.node("conv")), int)


def test_flatten_of_the_largest_allowed_activation_is_exact():
    g = Graph("flat", [Node("input", "input", out_shape=(4, MAX_DIM, MAX_DIM // 4)),
                       Node("flat", "flatten", ("input",))], "flat")
    with pytest.raises(HwgenError, match="values, over the limit"):
        g.infer_shapes()
    g.infer_shapes((4, 4096, 4096))
    assert g.node("flat").out_shape == (4 * 4096 * 4096,) and math.prod(g.input_shape) <= MAX_ELEMENTS


def test_pt2_defining_a_node_twice_is_refused(small_pt2, tmp_path):
    def duplicate(gm):
        nodes = gm["graph"]["nodes"]
        nodes.insert(1, json.loads(json.dumps(nodes[0])))
    with pytest.raises(HwgenError, match="which is already defined"):
        load_model(_edit_program(small_pt2, tmp_path / "dup.pt2", duplicate))


def test_pt2_redefining_a_parameter_is_refused(small_pt2, tmp_path):
    def shadow(gm):
        param = gm["signature"]["input_specs"][0]["parameter"]["arg"]["name"]
        gm["graph"]["nodes"][0]["outputs"] = [{"as_tensor": {"name": param}}]
    with pytest.raises(HwgenError, match="already defined"):
        load_model(_edit_program(small_pt2, tmp_path / "shadow.pt2", shadow))


@pytest.mark.parametrize("outputs, message", [([], "empty output list"),
                                              ([{"as_tensor": {"name": "conv2d"}}], "disagree")])
def test_pt2_output_list_must_name_the_program_output(small_pt2, tmp_path, outputs, message):
    def change(gm):
        gm["graph"]["outputs"] = outputs
    with pytest.raises(HwgenError, match=message):
        load_model(_edit_program(small_pt2, tmp_path / "out.pt2", change))


@pytest.mark.parametrize("version", [b"1", b"999", b"", b"\xff"])
def test_pt2_unknown_archive_version_is_refused(small_pt2, tmp_path, version):
    path = rewrite_zip(small_pt2, tmp_path / "v.pt2", lambda n, d: version if n.endswith("/archive_version") else d)
    with pytest.raises(HwgenError, match="archive_version|not UTF-8"):
        load_model(path)


def test_pt2_without_archive_version_still_loads(small_pt2, tmp_path):
    path = rewrite_zip(small_pt2, tmp_path / "old.pt2", lambda n, d: None if n.endswith("/archive_version") else d)
    assert [n.op for n in load_model(path).nodes] == ["input", "conv2d", "relu", "flatten", "linear"]
