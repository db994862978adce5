"""The cocotb test of `hwgen.gateware.dsp.Multiplier` pairs on the MULT18X18D model (tests/test_sim_dsp.py).

The design under test has, for each pair `i`, inputs `a{i}`, `b{i}` and output `p{i}`. The job (a JSON
file named by `JOB_ENV`) lists each pair's operand stream as raw two's complement bit patterns; every
cycle the bench applies the next operands at the falling clock edge and records every output's raw
bits there, and writes the records to the job's `results` file. The comparison with Python's
multiply is the test's: this bench only drives and samples.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

JOB_ENV = "HWGEN_MULT_JOB"
CLOCK_NS = 10


@cocotb.test()
async def products(dut):
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    streams = job["operands"]  # per pair: [[a, b], ...], one per cycle
    dut.rst.value = 0
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    outputs = [[] for _ in streams]
    for cycle in range(len(streams[0])):
        await FallingEdge(dut.clk)
        for i, stream in enumerate(streams):
            outputs[i].append(getattr(dut, f"p{i}").value.to_unsigned())
            a, b = stream[cycle]
            getattr(dut, f"a{i}").value = a
            getattr(dut, f"b{i}").value = b
    Path(job["results"]).write_text(json.dumps(outputs))
