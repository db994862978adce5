from __future__ import annotations

import numpy as np
import pytest
import torch

from hwgen import reference
from hwgen.errors import HwgenError
from hwgen.quantize import quantize_input
from models import periodic
from models.experiments import new_model
from models.qat import QATNet
from models.train import Data, fit
from models.zoo import ResNet18


@pytest.fixture(scope="module")
def data() -> Data:
    d = Data.digits()
    return Data(d.x_train[:320], d.y_train[:320], d.x_test, d.y_test)


@pytest.fixture(scope="module")
def trained(data):
    model = new_model(2)
    masks = periodic.apply_periodic(model, "PS4_P4")
    fit(model, data, 1, seed=2, masks=masks, progress=False)
    return model, masks


@pytest.mark.parametrize("bits", [8, 4])
def test_qat_forward_equals_integer_reference(data, trained, bits):
    model, masks = trained
    net = QATNet(model, bits, bits, data.x_train)
    fit(net, data, 1, lr=1e-3, seed=3, masks=net.carry_masks(masks), progress=False)
    before = net.act_scales()
    qg = net.quantized_graph()
    logits = reference.run(qg, quantize_input(qg, data.x_test.numpy()))
    assert np.array_equal(net.integer_logits(data.x_test), logits)  # exact, not just the argmax
    assert net.act_scales() == before  # eval mode does not move the scales
    # the masks survived QAT, in float and in the integer weights
    for mine, orig in net.source.items():
        if orig in masks:
            zero = masks[orig].numpy() == 0
            assert not mine.weight.detach().numpy()[zero].any()
            assert not qg.node(net.layer_names[list(net.layers).index(mine)]).quant.weight[zero].any()
    # and QAT moved the weights and learned scales (the test could fail if it were a no-op)
    assert any(not torch.equal(mine.weight, orig.weight) for mine, orig in net.source.items())


def test_qat_gradients_flow_to_every_layer(data, trained):
    net = QATNet(trained[0], 8, 8, data.x_train)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(data.x_train[:64]), data.y_train[:64])
    loss.backward()
    for layer in net.weighted():
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_qat_rejects_bad_bits(data):
    with pytest.raises(HwgenError, match="weight bits"):
        QATNet(new_model(0), 9, 8, data.x_train)


@pytest.mark.parametrize("bits", [8, 3])
def test_residual_qat_equals_integer_reference_including_the_add(bits):
    """ResNet-18 (width 4): the QAT forward, residual adds included, is the integer reference."""
    torch.manual_seed(5)
    model = ResNet18(4, in_channels=3, width=4)
    masks = periodic.apply_periodic(model, "PSD1_P16")
    x, y = torch.rand(48, 3, 16, 16), torch.randint(0, 4, (48,))
    net = QATNet(model, bits, bits, x)
    fit(net, Data(x, y, x, y), 1, lr=1e-3, seed=1, masks=net.carry_masks(masks), progress=False)
    qg = net.quantized_graph()
    adds = [n for n in qg.nodes if n.op == "add"]
    assert len(adds) == 8 and all(n.quant.input_multipliers[0] != n.quant.input_multipliers[1] for n in adds)
    every = reference.run_all(qg, quantize_input(qg, x.numpy()))
    assert np.array_equal(net.integer_logits(x), every[qg.output])
    assert any(every[n.name].max() == n.quant.requant.hi for n in adds)  # the add's clamp is exercised
    assert len(net.carry_masks(masks)) == len(masks) == 16  # every 3x3 conv after the first


def test_exported_checkpoint_computes_what_qat_computes(tmp_path, data, trained):
    """The .pt2 -> ingest -> quantize_graph(act_scales) -> .hwq route gives the QAT logits exactly."""
    from hwgen import checkpoint
    from models.qat import export

    model, masks = trained
    net = QATNet(model, 6, 5, data.x_train, name="digits_test")
    fit(net, data, 1, lr=1e-3, seed=4, masks=net.carry_masks(masks), progress=False)
    path = tmp_path / "digits.hwq"
    written = export(net, path)
    loaded = checkpoint.load(path)
    x_int = quantize_input(loaded, data.x_test.numpy())
    assert np.array_equal(reference.run(loaded, x_int), net.integer_logits(data.x_test))
    assert np.array_equal(reference.run(written, x_int), reference.run(loaded, x_int))
    assert [n.quant.weight_bits for n in loaded.layers()] == [6] * 5
    assert loaded.input.quant.act_bits == 5
