"""hads_keras.solve: model + importance -> plan, budgets checked on extracted models."""

import keras
import numpy as np
import pytest

import families
import hads_keras as hads
from test_foundation import _independent_macs


def _scores(model, seed=0):
    return hads.random_importance(model, seed=seed)


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
@pytest.mark.parametrize("method", ["bottom_up", "top_down"])
def test_plans_respect_budgets_on_the_extracted_subnetworks(family, method):
    model = families.BUILDERS[family](hads=True)
    targets = [1.0, 0.75, 0.5, 0.25]
    plan = hads.solve(model, _scores(model), mac_targets=targets, method=method)
    assert plan.num_subnetworks == 4
    nested = hads.apply(model, plan)
    full = _independent_macs(hads.extract_subnetwork(nested, 0))
    for k, target in enumerate(targets):
        macs = _independent_macs(hads.extract_subnetwork(nested, k))
        assert macs == plan.costs[k]["macs"]
        assert macs <= target * full
    assert "importance" in plan.info["report"]


def test_solve_keeps_the_most_important_units_and_apply_permutes_by_them():
    model = families.dnn(hads=True)
    scores = _scores(model, seed=2)
    plan = hads.solve(model, scores, mac_targets=[0.5])
    assert plan.num_subnetworks == 2
    np.testing.assert_array_equal(plan.order["fc1"], np.argsort(-scores["fc1"], kind="stable"))
    nested = hads.apply(model, plan)
    x = families.inputs_for(model)
    np.testing.assert_allclose(nested.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    kept = plan.widths("fc1")[1]
    best = set(np.argsort(-scores["fc1"])[:kept].tolist())
    sub_kernel = hads.extract_subnetwork(nested, 1).get_layer("fc1").kernel.numpy()
    full_kernel = model.get_layer("fc1").kernel.numpy()
    for column in sub_kernel.T:
        matches = [j for j in range(full_kernel.shape[1]) if np.array_equal(full_kernel[:, j], column)]
        assert matches and matches[0] in best


def test_taylor_beats_random_on_importance_kept():
    model = families.cnn(hads=True)
    taylor = hads.l1_importance(model)
    plan = hads.solve(model, taylor, mac_targets=[1.0, 0.5])
    kept = sum(np.sort(taylor[g])[::-1][:plan.widths(g)[1]].sum() for g in plan.groups)
    random_plan = hads.solve(model, _scores(model), mac_targets=[1.0, 0.5])
    kept_random = sum(taylor[g][random_plan.order[g][:random_plan.widths(g)[1]]].sum()
                      for g in random_plan.groups)
    assert kept >= kept_random


def test_solve_rejects_bad_importance_naming_the_group():
    model = families.dnn(hads=True)
    scores = _scores(model)
    bad = dict(scores, fc1=scores["fc1"][:-1])
    with pytest.raises(ValueError, match="fc1"):
        hads.solve(model, bad, mac_targets=[0.5])
    bad = dict(scores, fc2=np.full(20, np.nan))
    with pytest.raises(ValueError, match="fc2"):
        hads.solve(model, bad, mac_targets=[0.5])
    with pytest.raises(ValueError, match="logits"):
        hads.solve(model, dict(scores, logits=np.ones(12)), mac_targets=[0.5])


@pytest.mark.parametrize("targets,message", [
    ([1.0, 0.8, 0.9], "decreasing"),
    ([0.75, -0.25], "positive|> 0|\\(0, 1\\]"),
    ([0.0001], "smallest"),
])
def test_solve_rejects_bad_targets(targets, message):
    model = families.dnn(hads=True)
    with pytest.raises(ValueError, match=message):
        hads.solve(model, _scores(model), mac_targets=targets)
