"""Bad input through the public API gives a clear error naming the argument,
group or field (issue 15, item 4: one test per row), never a raw
KeyError/TypeError or a silent wrong plan."""

import json

import numpy as np
import pytest

import families
import hads_keras as hads


@pytest.fixture(scope="module")
def dnn():
    return families.dnn(hads=True)


def _scores(model):
    return hads.random_importance(model, seed=0)


def test_all_zero_importance_is_a_clear_error(dnn):
    zeros = {g: np.zeros_like(v) for g, v in _scores(dnn).items()}
    with pytest.raises(ValueError, match="zero for every unit of every group"):
        hads.solve(dnn, zeros, mac_targets=[1.0, 0.5])


def test_importance_scale_does_not_change_the_plan(dnn):
    """The issue's case: scores * 1e-300 gave 8 % MACs for a 50 % target."""
    scores = _scores(dnn)
    ref = hads.solve(dnn, scores, mac_targets=[1.0, 0.5])
    for scale in (1e-300, 1e-15, 1e300):
        plan = hads.solve(dnn, {g: v * scale for g, v in scores.items()},
                          mac_targets=[1.0, 0.5])
        assert plan.costs == ref.costs
        assert all(plan.widths(g) == ref.widths(g) for g in plan.groups)
    assert ref.costs[1]["macs"] > 0.45 * ref.costs[0]["macs"]


def test_apply_refuses_an_already_nested_model(dnn):
    plan = hads.solve(dnn, _scores(dnn), mac_targets=[1.0, 0.5])
    nested = hads.apply(dnn, plan)
    x = families.inputs_for(dnn)
    before = [nested.predict(x, verbose=0) for _ in range(1)]
    with pytest.raises(ValueError, match="already a nested model"):
        hads.apply(nested, plan)
    # Refused, so the nested model computes as before.
    np.testing.assert_array_equal(nested.predict(x, verbose=0), before[0])


@pytest.mark.parametrize("costs", ["exact", "paper"])
def test_negative_importance_names_the_group_for_both_cost_models(dnn, costs):
    scores = _scores(dnn)
    scores["fc2"] = scores["fc2"] - 0.5
    with pytest.raises(ValueError, match="group 'fc2' is negative"):
        hads.solve(dnn, scores, mac_targets=[1.0, 0.5], costs=costs)


def test_a_target_above_one_below_any_network_is_neither_fraction_nor_budget(dnn):
    with pytest.raises(ValueError, match="1.5 is neither a fraction in \\(0, 1\\] "
                                         "of the full cost nor a plausible absolute"):
        hads.solve(dnn, _scores(dnn), mac_targets=[1.5, 0.5])


@pytest.mark.parametrize("targets,message", [
    ("0.75,0.5", "got the string '0.75,0.5'; split it first"),
    (0.5, "got float 0.5; for one budget write \\[0.5\\]"),
    ([1.0, "0.5"], "mac_targets\\[1\\] = '0.5' is not a number"),
])
def test_targets_that_are_not_a_list_of_numbers(dnn, targets, message):
    with pytest.raises(TypeError, match=message):
        hads.solve(dnn, _scores(dnn), mac_targets=targets)


def test_min_width_is_checked_before_solving_naming_the_group(dnn):
    with pytest.raises(ValueError, match="min_width must be an integer >= 1"):
        hads.solve(dnn, _scores(dnn), mac_targets=[1.0, 0.5], min_width=0)
    with pytest.raises(ValueError, match="min_width=100 exceeds group 'fc2', which "
                                         "has 20 units"):
        hads.solve(dnn, _scores(dnn), mac_targets=[1.0, 0.5], min_width=100)


@pytest.mark.parametrize("limit", [-1, 0, float("nan"), "5"])
def test_time_limit_must_be_positive(dnn, limit):
    with pytest.raises(ValueError, match="time_limit must be a positive number"):
        hads.solve(dnn, _scores(dnn), mac_targets=[1.0, 0.5], time_limit=limit)


def _plan_dict():
    return hads.Plan(families.PLANS["dnn"], costs=[{"macs": 4}] * 4,
                     order={"fc1": list(range(24))}, info={"method": "hand"}).to_dict()


def _edit(path, value):
    data = _plan_dict()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize("path,value,message", [
    (("groups", 0, "widths"), KeyError, "groups\\[0\\] has no 'widths'"),
    (("groups", 0, "name"), KeyError, "groups\\[0\\] has no 'name'"),
    (("groups", 0, "widths"), 24, "groups\\[0\\] \\('fc1'\\): 'widths' must be a list"),
    (("groups", 0, "widths"), None, "groups\\[0\\] \\('fc1'\\): 'widths' must be a list"),
    (("groups",), {"fc1": [24, 12]}, "'groups' must be a list"),
    (("format_version",), "1", "'format_version' must be an integer"),
    (("costs",), [5, 6, 7, 8], "costs\\[0\\] must be a dict"),
    (("costs",), {"macs": 5}, "'costs' must be a list"),
    (("info",), ["a", "b"], "'info' must be an object"),
    (("groups", 1, "name"), "fc1", "group 'fc1' appears twice"),
    (("num_subnetworks",), 3, "'num_subnetworks' is 3 but every group has 4"),
])
def test_malformed_plan_json_names_the_field(path, value, message):
    text = json.dumps(_edit(path, value))
    with pytest.raises(ValueError, match="not a valid HADS plan: .*" + message):
        hads.Plan.from_json(text)


def test_plan_file_that_is_not_json(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid HADS plan: not JSON"):
        hads.Plan.load(path)


def test_plan_with_an_order_names_the_wrong_width_or_group():
    data = _edit(("groups", 0, "widths"), [30, 18, 12, 5])  # fc1 has 24 units
    with pytest.raises(ValueError, match="Group 'fc1': subnetwork 0's slicing point "
                                         "is 30 but the unit order lists 24 units"):
        hads.Plan.from_dict(data)
    data = _edit(("groups", 0, "name"), "fc_1")  # the order still says fc1
    with pytest.raises(ValueError, match="order names group 'fc1', which has no "
                                         "slicing points in this plan"):
        hads.Plan.from_dict(data)


def test_plan_info_with_numpy_values_is_converted_and_saves(tmp_path):
    plan = hads.Plan(families.PLANS["dnn"],
                     info={"eps": np.float32(0.5), "n": np.int64(3),
                           "targets": {"macs": np.array([1.0, 0.5])}})
    assert type(plan.info["eps"]) is float and type(plan.info["n"]) is int
    assert plan.info["targets"]["macs"] == [1.0, 0.5]
    plan.save(tmp_path / "plan.json")
    assert hads.Plan.load(tmp_path / "plan.json").info == plan.info
    with pytest.raises(ValueError, match="info\\['model'\\]: object .* cannot be saved"):
        hads.Plan(families.PLANS["dnn"], info={"model": object()})
