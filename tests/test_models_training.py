from __future__ import annotations

import numpy as np
import torch

from models import periodic
from models.experiments import new_model
from models.train import Data, FitOptions, evaluate, fit


def tiny_data() -> Data:
    d = Data.digits()
    return Data(d.x_train[:256], d.y_train[:256], d.x_test, d.y_test)


def test_training_is_deterministic_and_learns():
    data = Data.digits()
    a, b = new_model(3), new_model(3)
    hist_a = fit(a, data, 2, seed=5, progress=False)
    hist_b = fit(b, data, 2, seed=5, progress=False)
    assert hist_a == hist_b
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    assert hist_a[1] < hist_a[0]
    assert evaluate(a, data.x_test, data.y_test) > 0.5  # 10 classes: chance is 0.1


def test_periodic_masks_follow_the_rule_after_training():
    data = tiny_data()
    model = new_model(0)
    scheme = periodic.parse_scheme("PSD4_P8")
    masks = periodic.apply_periodic(model, scheme)
    fit(model, data, 2, seed=0, masks=masks, progress=False, options=FitOptions(weight_decay=1e-2))
    convs = periodic.sparse_convs(model)
    assert len(convs) == 3 and set(masks) == set(convs)
    table = scheme.table()
    for conv in convs:
        w = conv.weight.detach().numpy()
        kept = w != 0
        for m in range(w.shape[0]):
            for c in range(w.shape[1]):
                rule = table[(m + c + 1) % scheme.period].astype(bool)
                # nothing outside the rule's mask, and training kept every allowed tap alive
                assert np.array_equal(kept[m, c], rule), (conv, m, c)
    first = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert np.count_nonzero(first.weight.detach().numpy()) == first.weight.numel()
