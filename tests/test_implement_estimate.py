"""The pre-placement timing estimate (hwgen.implement.estimate) on small netlists in Yosys's JSON form:
arrivals through LUTs, a carry chain and a fan-out, the summary at a frequency, the comparison with a
routed report; and on a real synth_ecp5 netlist, that a deeper chain of logic arrives later."""

from __future__ import annotations

import json
import math

import pytest

from hwgen import tools
from hwgen.implement import estimate as est
from hwgen.implement import fpga


def ff(name, q=None, di=None):
    conns = {"CLK": [1], "LSR": ["0"], "CE": ["1"]}
    dirs = {"CLK": "input", "LSR": "input", "CE": "input"}
    if q is not None:
        conns["Q"], dirs["Q"] = [q], "output"
    if di is not None:
        conns["DI"], dirs["DI"] = [di], "input"
    return name, {"type": "TRELLIS_FF", "connections": conns, "port_directions": dirs}


def cell(name, kind, inputs: dict, outputs: dict):
    return name, {"type": kind, "connections": {**inputs, **outputs},
                  "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}}


def route(fanout):
    return est.ROUTE_BASE + est.ROUTE_PER_FANOUT_DOUBLING * math.log2(fanout)


# a -> LUT -> LUT -> c, and a -> carry entry -> carry sum -> d; b feeds the first LUT only
MODULE = {"cells": dict([
    ff("core.engine.a_TRELLIS_FF_Q", q=2), ff("core.engine.b_TRELLIS_FF_Q", q=3),
    cell("core.engine.x_LUT4_Z", "LUT4", {"A": [2], "B": [3], "C": ["0"], "D": ["0"]}, {"Z": [4]}),
    cell("core.engine.y_LUT4_Z", "LUT4", {"A": [4], "B": ["0"], "C": ["0"], "D": ["0"]}, {"Z": [5]}),
    ff("core.engine.c_TRELLIS_FF_Q", di=5),
    cell("core.engine.s_CCU2C", "CCU2C", {"A0": [2], "CIN": ["0"]}, {"COUT": [6], "S0": [8]}),
    cell("core.engine.t_CCU2C", "CCU2C", {"A0": ["0"], "CIN": [6]}, {"S0": [7]}),
    ff("core.engine.d_TRELLIS_FF_Q", di=7),
])}
C_ARRIVAL = est.FF_CLK_TO_Q + route(2) + est.LUT + route(1) + est.LUT + route(1)
# the COUT -> CIN net is the carry chain's own wire: no routing delay
D_ARRIVAL = est.FF_CLK_TO_Q + route(2) + est.CARRY_ENTRY + est.CARRY_SUM + route(1)


def test_arrivals_through_luts_and_a_carry_chain():
    ends = {(name, port): (t, src) for name, port, t, src in est.arrivals(MODULE)}
    t, src = ends["core.engine.c_TRELLIS_FF_Q", "DI"]
    # a's Q has two loads (the LUT and the carry cell), b's one: a's path is the later one
    assert t == pytest.approx(C_ARRIVAL) and src == "core.engine.a_TRELLIS_FF_Q"
    t, src = ends["core.engine.d_TRELLIS_FF_Q", "DI"]
    assert t == pytest.approx(D_ARRIVAL) and src == "core.engine.a_TRELLIS_FF_Q"
    # the latest path into c, cell by cell, with the arrival at each output
    path = next(e[4] for e in est.arrivals(MODULE, paths=True) if e[:2] == ("core.engine.c_TRELLIS_FF_Q", "DI"))
    assert [c for c, _ in path] == ["core.engine.a_TRELLIS_FF_Q", "core.engine.x_LUT4_Z", "core.engine.y_LUT4_Z"]
    assert [t for _, t in path] == pytest.approx([est.FF_CLK_TO_Q, est.FF_CLK_TO_Q + route(2) + est.LUT,
                                                  C_ARRIVAL - route(1)], abs=1e-3)
    # a constant enable or reset is no path
    assert ("core.engine.c_TRELLIS_FF_Q", "CE") not in ends and ("core.engine.c_TRELLIS_FF_Q", "LSR") not in ends


def test_a_combinational_loop_is_cut_not_followed_forever():
    module = {"cells": dict([
        ff("core.engine.a_TRELLIS_FF_Q", q=2),
        cell("core.engine.p_LUT4_Z", "LUT4", {"A": [2], "B": [5], "C": ["0"], "D": ["0"]}, {"Z": [4]}),
        cell("core.engine.q_LUT4_Z", "LUT4", {"A": [4], "B": ["0"], "C": ["0"], "D": ["0"]}, {"Z": [5]}),
        ff("core.engine.c_TRELLIS_FF_Q", di=5),
    ])}
    (name, port, t, src, path), = [e for e in est.arrivals(module, paths=True) if e[1] == "DI"]
    # a -> p -> q, the loop's way back into p counted once, at the walk's cut
    assert src == "core.engine.a_TRELLIS_FF_Q" and [c for c, _ in path][0] == src and t > est.FF_CLK_TO_Q + 2 * est.LUT


def test_summary_at_a_frequency_between_the_two_arrivals():
    period = (C_ARRIVAL + D_ARRIVAL) / 2
    e = est.estimate(MODULE, 1000 / period, block=fpga.block, signal=fpga.signal)
    assert e["failing"] == 1 and e["tns_ns"] == pytest.approx(period - C_ARRIVAL, abs=1e-3)
    assert e["worst_ns"] == pytest.approx(C_ARRIVAL, abs=1e-3)
    assert e["sources"] == [{"block": "core.engine", "signal": "a", "failing": 1, "worst_ns": round(C_ARRIVAL, 3)}]
    assert e["worst_path"]["end"] == "core.engine.c_TRELLIS_FF_Q.DI" and len(e["worst_path"]["cells"]) == 3
    assert est.estimate(MODULE, 1000 / (C_ARRIVAL + 0.01), block=fpga.block, signal=fpga.signal)["failing"] == 0


def test_compare_with_a_routed_report():
    def net(driver, cell, port, delay):
        return {"driver": driver, "event": "posedge clk", "port": "Q",
                "endpoints": [{"cell": cell, "port": port, "event": "posedge clk", "delay": [0.1, delay]}]}
    # nextpnr calls a flip-flop's direct data input M; the routed order agrees with the estimate: r = 1
    report = {"detailed_net_timings": [net("x", "core.engine.c_TRELLIS_FF_Q", "DI", 5.0),
                                       net("t", "core.engine.d_TRELLIS_FF_Q", "M", 3.0)]}
    c = est.compare(MODULE, report)
    assert c["matched"] == 2 and c["r"] == 1.0 and c["mean_routed_ns"] == 4.0
    report["detailed_net_timings"][1]["endpoints"][0]["delay"] = [0.1, 7.0]
    assert est.compare(MODULE, report)["r"] == -1.0


def test_a_deeper_cone_arrives_later_in_a_real_netlist(tmp_path):
    """synth_ecp5 on two registered reductions: the XOR of 64 register bits (a LUT tree several levels
    deep) against that of 4 (one LUT)."""
    (tmp_path / "t.v").write_text("""
module t(input wire clk, input wire [63:0] d, output reg wide, output reg narrow);
    reg [63:0] q;
    always @(posedge clk) begin
        q <= d;
        wide <= ^q;
        narrow <= ^q[3:0];
    end
endmodule
""")
    yosys = tools.command("yosys", "the estimate test")
    tools.yosys_run(yosys, ["-p", "read_verilog t.v; synth_ecp5 -top t -json t.json"], tmp_path)
    module = json.loads((tmp_path / "t.json").read_text())["modules"]["t"]
    ends = {}
    for name, port, t, src in est.arrivals(module):
        if port == "DI":
            ends[name] = (t, src)
    wide = next(t for name, (t, _) in ends.items() if name.startswith("wide"))
    narrow = next(t for name, (t, _) in ends.items() if name.startswith("narrow"))
    # 64 inputs need three LUT4 levels, 4 inputs one
    assert wide >= narrow + 2 * (est.LUT + est.ROUTE_BASE)
    assert all(src is not None and src.startswith("q") for name, (_, src) in ends.items()
               if name.startswith(("wide", "narrow")))
