"""A fused ReLU6 / hardtanh runs in the engine's requantizer (its descriptor's lo/hi): the generated
Verilog, in Verilator under hostile DRAM timing, matches the integer reference on every element."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hwgen import quantize, sim_target, simulate
from hwgen.ingest import load_model
from ingest_helpers import export


def test_fused_clips_run_in_the_engine_bit_exactly(tmp_path, cache):
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.Hardtanh(-0.5, 0.5), nn.Conv2d(8, 4, 3, padding=1)).eval()
    graph = load_model(export(model, (3, 8, 8), tmp_path / "m.pt2"))
    x = np.random.default_rng(0).normal(size=(16, 3, 8, 8)).astype(np.float32) * 4
    # scales wider than the clips, so their bounds sit strictly inside the 8-bit ranges
    scales = {"0": 12.0 / 255, "2": 2.0 / 127}
    q = quantize.quantize_graph(graph, x, 8, 8, act_scales=scales)
    r0, r2 = q.node("0").quant.requant, q.node("2").quant.requant
    assert (r0.lo, r0.hi) == (0, 128) and (r2.lo, r2.hi) == (-32, 32)
    xq = quantize.quantize_input(q, x[:3])
    target = sim_target.from_graph(q, tmp_path / "gen", m_lanes=4, x_lanes=4)
    report = simulate.run_network(target, xq, None, seed=3, workdir=tmp_path / "sim", cache_dir=cache)
    assert report.error is None, report.error
    assert [lr.name for lr in report.layers] == ["0", "2", "4"]
    for lr in report.layers:
        assert lr.error is None and lr.mismatches == 0 and lr.images == 3, (lr.name, lr.error, lr.notes)
    assert report.logits_match
