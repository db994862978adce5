"""The shipped digits checkpoint, conv layer by conv layer, on the engine in amaranth.sim.

Each layer's input is the reference's activation at that point (the host runs pooling and the
classifier); the engine's output must equal hwgen.reference's for that layer, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwgen import checkpoint, reference
from hwgen.datasets import load_digits_split
from hwgen import engine
from hwgen.gateware.engine import Engine
from hwgen.gateware.sim_memory import run_layer
from hwgen.engine import plan_graph
from hwgen.quantize import quantize_input

DIGITS = Path(__file__).resolve().parent.parent / "models" / "digits_ps4p4_w8a8.hwq"


def test_digits_convs_bit_exact_under_stalls():
    graph = checkpoint.load(DIGITS)
    plans = plan_graph(graph)
    params = engine.fit_params(plans, m_lanes=8, x_lanes=4, bus_bits=64)
    img = engine.dram_image(plans, params)
    x_test = load_digits_split()[2]
    x = quantize_input(graph, x_test[:1])
    values = reference.run_all(graph, x)
    image = bytearray(img.size)
    image[:len(img.data)] = img.data
    for plan, reg in zip(plans, img.layers):
        node = graph.node(plan.name)
        layer_in = values[node.inputs[0]][0]
        blob = engine.pack_activations(layer_in, params)
        image[reg.input:reg.input + len(blob)] = blob
        run_layer(Engine(params), image, reg.descriptor, stall=0.2, seed=len(plan.name))
        got = engine.unpack_activations(image[reg.output:reg.output + reg.output_bytes], plan.out_shape,
                                        node.quant.signed, params)
        np.testing.assert_array_equal(got, values[plan.name][0], err_msg=plan.name)
        assert np.count_nonzero(got) > 0  # a real image lights up every layer
