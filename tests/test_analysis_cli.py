"""`hwgen analyze` end to end: the shipped checkpoint, .pt2 exports, outputs, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis_helpers import export_sparse
from hwgen.analysis import analyze
from hwgen.analysis.formats import FORMATS
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.ingest import load_model

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "digits_ps4p4_w8a8.hwq"


def run_cli(tmp_path, *extra, tag="a"):
    out = {k: tmp_path / f"{tag}.{k}" for k in ("json", "csv", "png")}
    code = main(["analyze", str(SHIPPED), "--json", str(out["json"]), "--csv", str(out["csv"]),
                 "--plot", str(out["png"]), *extra])
    return code, out


def test_shipped_checkpoint_json_schema_and_totals(tmp_path, capsys):
    code, out = run_cli(tmp_path)
    assert code == 0
    table = capsys.readouterr().out
    assert "DRAM KiB dense" in table and "total" in table
    doc = json.loads(out["json"].read_text())
    layers = doc["layers"]
    assert [l["name"] for l in layers] == ["conv1", "conv2", "conv3", "conv4", "classifier"]
    for l in layers:
        # inspect's fields, extended
        assert {"in_shape", "out_shape", "weight_shape", "macs", "effectual_macs", "sparsity"} <= set(l)
        assert set(l["storage_bits"]) == set(FORMATS)
        assert set(l["dram_bytes"]) == {"weights", "metadata", "tables", "descriptor", "inputs", "outputs", "psums",
                                        "total"}
        assert {"weights", "inputs", "outputs", "total"} <= set(l["compulsory_bytes"])
        assert set(l["energy_pj"]) == {"dram", "sram", "mac", "total"}
        assert l["cycles"] > 0 and l["mapping"]["order"]
        assert l["dram_bytes"]["total"] == sum(v for k, v in l["dram_bytes"].items() if k != "total")
        assert l["dram_bytes"]["total"] >= l["compulsory_bytes"]["total"]
    by = {l["name"]: l for l in layers}
    assert by["conv1"]["format"] == "dense" and by["conv1"]["storage_bits"]["periodic"] is None
    assert by["conv2"]["sparsity"]["kind"] == "periodic" and by["conv2"]["format"] == "periodic"
    assert by["conv2"]["storage_bits"]["periodic"] < by["conv2"]["storage_bits"]["pattern"] < by["conv2"]["storage_bits"]["dense"]
    assert by["classifier"]["act_bits"]["out"] == 32  # the logits are int32 accumulators
    totals = doc["totals"]
    for key in ("dram_bytes", "compulsory_bytes"):
        for k, v in totals[key].items():
            assert v == sum(l[key][k] for l in layers)
    assert totals["cycles"] == sum(l["cycles"] for l in layers)
    assert out["csv"].read_text().count("\n") == 1 + len(layers)
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_outputs_are_byte_identical_across_runs(tmp_path, capsys):
    _, a = run_cli(tmp_path, "--glb-kib", "4", tag="a")
    _, b = run_cli(tmp_path, "--glb-kib", "4", tag="b")
    for k in a:
        assert a[k].read_bytes() == b[k].read_bytes(), k
    assert json.loads(a["json"].read_text())["glb_kib"] == 4


def test_compare_mode(tmp_path, capsys):
    code = main(["analyze", str(SHIPPED), "--compare", "dense,csr8,pattern,periodic", "--json", str(tmp_path / "c.json")])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {l.split()[0]: l.split() for l in lines if l.split() and l.split()[0] in FORMATS}
    assert list(rows) == ["dense", "csr8", "pattern", "periodic"]
    dram = {f: float(r[3]) for f, r in rows.items()}
    assert dram["periodic"] <= dram["pattern"] < dram["dense"]
    doc = json.loads((tmp_path / "c.json").read_text())
    assert list(doc["compare"]) == ["dense", "csr8", "pattern", "periodic"]


def test_engine_preset_reports_the_engine_schedule(tmp_path, capsys):
    from hwgen import engine
    from hwgen.engine import plan_graph, schedule

    graph = load_model(SHIPPED)
    a = analyze(graph, arch="engine")
    plans = plan_graph(graph)
    scheds = schedule.network_schedule(plans, engine.fit_params(plans))
    assert [r.layer.name for r in a.layers] == [p.name for p in plans]  # conv layers; the classifier is on the host
    for r, s in zip(a.layers, scheds):
        assert r.dram_bytes["weights"] == s.bytes["weights"] and r.dram_bytes["inputs"] == s.bytes["inputs"]
        assert r.dram_bytes["outputs"] == s.bytes["outputs"]
        assert r.dram_bytes["total"] == sum(s.bytes.values()) and r.cycles == s.cycles
    dense = analyze(graph, arch="engine", fmt="dense")
    assert dense.totals["dram_bytes"]["weights"] > a.totals["dram_bytes"]["weights"]
    with pytest.raises(HwgenError, match="generated engine: it runs its own tiling, so it takes no mapping"):
        analyze(graph, arch="engine", mapping="m.yaml")
    # a format without an engine datapath: the generic model on the engine's memories
    csr8 = analyze(graph, arch="engine", fmt="csr8")
    assert csr8.arch.engine is None and "generic model" in csr8.arch.name
    assert csr8.arch.glb_kib == a.arch.glb_kib  # the engine's own input buffer
    assert main(["analyze", str(SHIPPED), "--arch", "engine", "--compare", "dense,csr8,pattern,periodic"]) == 0
    rows = {l.split()[0]: l.split() for l in capsys.readouterr().out.splitlines() if l.split()[:1] in (["csr8"],
                                                                                                    ["pattern"])}
    # the engine keeps its periodic layers in its own table format: only its dense layers count as kept dense
    kept_dense = sum(r.format == "dense" for r in a.layers)
    assert 0 < kept_dense < len(a.layers) and rows["pattern"][-1] == f"{kept_dense}/{len(a.layers)}"
    assert rows["csr8"][-1].startswith("0/")


@pytest.mark.parametrize("args, message", [
    (["--compare", "dense,zip"], "unknown format 'zip'"),
    (["--glb-kib", "0"], "--glb-kib must be a positive number"),
    (["--arch", "nope"], "unknown arch 'nope'"),
    (["--glb-kib", "0.001"], "more than the 0.001 KiB global buffer"),
])
def test_bad_options_exit_2_with_one_line(args, message, capsys):
    assert main(["analyze", str(SHIPPED), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_missing_model_exits_2(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "none.pt2")]) == 2


@pytest.mark.parametrize("sparsity, kind, fmt", [
    ("PS4_P4", "periodic", "periodic"),
    ("pattern", "pattern", "pattern"),
    ("unstructured", "unstructured", None),
])
def test_pt2_exports_of_each_sparsity(tmp_path, sparsity, kind, fmt):
    path = tmp_path / "m.pt2"
    export_sparse("digits-cnn", sparsity, path)
    a = analyze(load_model(path), glb_kib=64, weight_bits=4, act_bits=6)
    sparse = [r for r in a.layers if r.layer.kind != "dense"]
    assert [r.layer.name for r in sparse] == [r.layer.name for r in a.layers[1:4]]  # 3x3 convs after the first
    for r in sparse:
        assert r.layer.kind == kind and r.layer.weight_bits == 4 and r.layer.in_bits == 6
        if fmt:
            assert r.format == fmt
        else:
            assert r.format in ("bitmask", "csr4", "csr8")
        assert r.storage[r.format].bits < r.storage["dense"].bits == r.layer.n_weights * 4


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet18-cifar", "vgg16-tiny"])
@pytest.mark.parametrize("sparsity", ["PSD1_P16", "pattern", "unstructured"])
def test_zoo_exports(tmp_path, capsys, model, sparsity):
    path = tmp_path / "m.pt2"
    export_sparse(model, sparsity, path)
    assert main(["analyze", str(path), "--json", str(tmp_path / "a.json"), "--compare", "dense,csr8,pattern,periodic"]) == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    kinds = {l["sparsity"]["kind"] for l in doc["layers"]}
    assert {"PSD1_P16": "periodic"}.get(sparsity, sparsity) in kinds
    assert doc["totals"]["dram_bytes"]["total"] < doc["compare"]["dense"]["dram_bytes"]["total"]
