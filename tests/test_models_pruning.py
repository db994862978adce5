from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from models import pattern_pruning as pp
from models import unstructured
from models.experiments import new_model
from models.periodic import CENTRE, sparse_convs
from models.train import Data, fit


@pytest.fixture(scope="module")
def data() -> Data:
    d = Data.digits()
    return Data(d.x_train[:256], d.y_train[:256], d.x_test[:64], d.y_test[:64])


@pytest.fixture(scope="module")
def dense(data):
    model = new_model(1)
    fit(model, data, 1, seed=1, progress=False)
    return model


def test_candidate_patterns():
    cands = pp.candidate_patterns(4)
    assert cands.shape == (56, 9)
    assert np.all(cands.sum(1) == 4) and np.all(cands[:, CENTRE] == 1)
    assert len({c.tobytes() for c in cands}) == 56


def test_projection_is_the_best_library_pattern():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 5, 3, 3))
    lib = pp.candidate_patterns(4)[[0, 7, 20, 55]].reshape(4, 3, 3)
    proj = pp.project_weight(w, lib, connectivity=0.3)
    assert np.count_nonzero(proj.pattern == -1) == 9  # round(0.3 * 30)
    for m in range(6):
        for c in range(5):
            energies = [(w[m, c] ** 2 * p).sum() for p in lib]
            if proj.pattern[m, c] >= 0:
                assert energies[proj.pattern[m, c]] == max(energies)
                assert np.array_equal(proj.mask[m, c], lib[proj.pattern[m, c]])
            else:
                assert not proj.mask[m, c].any()
    kept = [max((w[m, c] ** 2 * p).sum() for p in lib) for m in range(6) for c in range(5)]
    pruned = [kept[i] for i in np.flatnonzero(proj.pattern.ravel() == -1)]
    survivors = [kept[i] for i in np.flatnonzero(proj.pattern.ravel() >= 0)]
    assert max(pruned) <= min(survivors)


@pytest.mark.parametrize("solver", ["admm", "iterative"])
def test_pattern_pruning_lands_on_the_library(data, dense, solver):
    model = copy.deepcopy(dense)
    args = dict(k=6, taps=4, connectivity=0.25, seed=0, progress=False)
    if solver == "admm":
        masks, library = pp.admm_prune(model, data, admm_epochs=1, retrain_epochs=1, **args)
    else:
        masks, library = pp.iterative_prune(model, data, rounds=2, epochs_per_round=1, **args)
    assert library.shape == (6, 3, 3) and np.all(library[:, 1, 1] == 1) and np.all(library.sum((1, 2)) == 4)
    shapes = {p.astype(np.uint8).tobytes() for p in library}
    for conv in sparse_convs(model):
        w = conv.weight.detach().numpy()
        m, c = w.shape[:2]
        kept = (masks[conv].numpy() != 0)
        pruned_kernels = 0
        for i in range(m):
            for j in range(c):
                if not kept[i, j].any():
                    pruned_kernels += 1
                    assert not w[i, j].any()
                    continue
                assert kept[i, j].astype(np.uint8).tobytes() in shapes
                assert kept[i, j, 1, 1]
                assert not w[i, j][~kept[i, j]].any()  # nothing grew back outside the pattern
        assert pruned_kernels == round(0.25 * m * c)


def test_pattern_library_counts_votes():
    conv = torch.nn.Conv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 0, 0] = 5  # every kernel's largest off-centre taps: 0, 1, 2
        conv.weight[:, :, 0, 1] = 4
        conv.weight[:, :, 0, 2] = 3
        conv.weight[0, 0] = torch.tensor([[0, 0, 0], [0, 1, 0], [9, 8, 7.0]])
    lib = pp.pattern_library([conv], k=1)
    assert lib[0].tolist() == [[1, 1, 1], [0, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_reaches_target_sparsity(data, dense, scope):
    model = copy.deepcopy(dense)
    masks = unstructured.magnitude_prune(model, data, 0.7, scope=scope, rounds=2, epochs_per_round=1,
                                         progress=False)
    convs = sparse_convs(model)
    total = sum(c.weight.numel() for c in convs)
    zeros = sum(int((masks[c] == 0).sum()) for c in convs)
    if scope == "global":
        assert zeros == round(0.7 * total)
    else:
        assert all(int((masks[c] == 0).sum()) == round(0.7 * c.weight.numel()) for c in convs)
    for c in convs:
        assert not c.weight.detach()[masks[c] == 0].any()
    first = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert torch.count_nonzero(first.weight) == first.weight.numel()


def test_bad_rates_are_rejected(dense):
    with pytest.raises(ValueError):
        unstructured.magnitude_masks(sparse_convs(dense), 1.0)
    with pytest.raises(ValueError):
        pp.project_weight(np.zeros((2, 2, 3, 3)), pp.candidate_patterns(4)[:2].reshape(2, 3, 3), 1.0)
