from __future__ import annotations

import numpy as np
import pytest
import torch

from hwgen import reference
from hwgen.errors import HwgenError
from hwgen.quantize import quantize_input
from models import periodic
from models.experiments import new_model
from models.qat import QATNet, fold_batchnorm
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


def test_fold_batchnorm_matches_eval_forward():
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(fold_batchnorm(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


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
            assert not qg.node(_node_of(net, mine)).quant.weight[zero].any()
    # and QAT moved the weights and learned scales (the test could fail if it were a no-op)
    assert any(not torch.equal(mine.weight, orig.weight) for mine, orig in net.source.items())


def _node_of(net: QATNet, layer) -> str:
    i = list(net.layers).index(layer)
    return net.graph().nodes[i + 1].name


def test_qat_gradients_flow_to_every_layer(data, trained):
    net = QATNet(trained[0], 8, 8, data.x_train)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(data.x_train[:64]), data.y_train[:64])
    loss.backward()
    for layer in net.weighted():
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_qat_rejects_non_chain_models(data):
    with pytest.raises(HwgenError, match="unsupported layer BasicBlock"):
        QATNet(ResNet18(10, in_channels=1, width=4), 8, 8, data.x_train)
    with pytest.raises(HwgenError, match="weight bits"):
        QATNet(new_model(0), 9, 8, data.x_train)


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
