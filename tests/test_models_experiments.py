from __future__ import annotations

import json

from models import experiments as ex
from models.train import Data


def test_results_table_rows_and_files(tmp_path):
    d = Data.digits()
    data = Data(d.x_train[:384], d.y_train[:384], d.x_test, d.y_test)
    budget = ex.Budget(epochs=1, prune_epochs=1, retrain_epochs=1, qat_epochs=1)
    rows = ex.results_table(data, budget=budget, bits=(8, 3), progress=False)
    assert [r["method"] for r in rows] == ["dense", "periodic", "pattern", "pattern", "unstructured"]
    assert [round(r["density"], 6) for r in rows] == [1.0, round(4 / 9, 6), round(1 / 3, 6), round(1 / 3, 6),
                                                      round(1 / 3, 6)]
    for r in rows:
        for b in (8, 3):
            assert r[f"w{b}a{b}"] == r[f"w{b}a{b}_qat"]  # training reports what the checkpoint computes
    table = ex.format_table(rows)
    assert table.count("\n") == 6 and "W3A3 (int ref)" in table and "NO" not in table
    ex.write_table(rows, tmp_path / "r.json", seed=0, budget=budget)
    assert json.loads((tmp_path / "r.json").read_text())["rows"] == rows
    ex.write_table(rows, tmp_path / "r.md", seed=0, budget=budget)
    assert (tmp_path / "r.md").read_text().startswith("| method |")
