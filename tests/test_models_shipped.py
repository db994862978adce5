from __future__ import annotations

import pytest

from models import experiments as ex
from models.periodic import parse_scheme
from models.train import Data, evaluate


@pytest.fixture(scope="module")
def data() -> Data:
    return Data.digits()


def test_shipped_checkpoint_is_periodic_w8a8_and_within_1_5_points_of_its_dense_twin(data):
    from hwgen.ingest import load_model
    from hwgen.sparsity import detect

    assert ex.SHIPPED.stat().st_size < 1_000_000
    graph = load_model(ex.SHIPPED)
    convs = [n for n in graph.layers() if n.op == "conv2d"]
    table = parse_scheme(ex.SHIP_SCHEME).table()
    for node in convs[1:]:
        info = detect(node)
        assert (info.kind, info.period, info.offset) == ("periodic", 4, 1)
        assert [p for p in table.tolist()] == [list(map(list, p)) for p in info.patterns]
    assert detect(convs[0]).kind == "dense"
    assert {n.quant.weight_bits for n in graph.layers()} == {8} and graph.input.quant.act_bits == 8
    twin = ex.train_float("dense", data, progress=False).model  # the float dense twin, same recipe
    gap = evaluate(twin, data.x_test, data.y_test) - ex.checkpoint_accuracy(ex.SHIPPED, data)
    assert gap <= ex.SHIP_MAX_GAP


@pytest.mark.slow
def test_ship_recipe_reproduces_the_done_when(tmp_path, data):
    report = ex.ship(tmp_path / "ship.hwq", data, progress=False)
    assert report["integer_reference"] == report["qat"]
    assert report["gap_points"] <= 100 * ex.SHIP_MAX_GAP
    assert abs(report["density"] - 4 / 9) < 1e-12
