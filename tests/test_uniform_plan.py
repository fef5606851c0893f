"""hads_keras.uniform_plan, the width-multiplier baseline, under the budgets
`solve` takes: MAC targets, latency targets in a table, a memory limit."""

import numpy as np
import pytest

import families
import hads_keras as hads
from hads_keras import latency, memory


def _latency_table(model):
    """Instructions ~ 3 per MAC plus 50 per output channel: not proportional
    to MACs, so the latency plan differs from the MAC plan."""
    macs = {t.layer: t for t in hads.costs.cost_terms(model, ("macs",))}

    def measure(layer, widths):
        return 3.0 * macs[layer].coef * float(np.prod(widths)) + 50.0 * widths[-1]
    return latency.build_table(model, "toy-m4", "instructions", measure, points=4,
                               constant=300.0)


@pytest.fixture(scope="module")
def model():
    return families.ds_cnn(hads=True)


def _widths(plan, k):
    widths = plan.subnetwork_widths(k)
    assert widths == {g: plan.widths(g)[k] for g in plan.groups}
    return widths


def _ratios(plan, k):
    """Per group: width / full width of subnetwork k."""
    full = plan.full_widths
    return {g: plan.widths(g)[k] / full[g] for g in plan.groups}


def _brute_force_uniform(model, fits):
    """The widths of the largest multiplier r on a grid of 1e-4 steps whose
    widths max(1, floor(r * w)) satisfy `fits`: the reference the bisection
    must find."""
    full = hads.costs.full_widths(model)
    best = None
    for r in np.arange(0.0, 1.0 + 1e-9, 1e-4):
        widths = {g: max(1, int(np.floor(r * w + 1e-9))) for g, w in full.items()}
        if fits(widths):
            best = widths
    return best


def test_mac_targets_as_before(model):
    plan = hads.uniform_plan(model, [0.75, 0.5])
    assert plan.num_subnetworks == 3  # the full network in front
    full = plan.costs[0]["macs"]
    assert [c["macs"] <= t * full for c, t in zip(plan.costs, (1.0, 0.75, 0.5))] == [True] * 3
    macs = lambda w: hads.costs.evaluate(hads.costs.cost_terms(model, ("macs",)), w)["macs"]
    assert _widths(plan, 1) == _brute_force_uniform(model, lambda w: macs(w) <= 0.75 * full)


def test_latency_targets_meet_the_table_and_use_it(model):
    table = _latency_table(model)
    full = table.cost(hads.costs.full_widths(model))
    plan = hads.uniform_plan(model, latency_targets=[1.0, 0.6, 0.3], latency_table=table)
    assert plan.num_subnetworks == 3
    for k, target in enumerate((1.0, 0.6, 0.3)):
        assert plan.costs[k]["latency"] == pytest.approx(table.cost(_widths(plan, k)))
        assert plan.costs[k]["latency"] <= target * full * (1 + 1e-12)
    assert _widths(plan, 2) == _brute_force_uniform(
        model, lambda w: table.cost(w) <= 0.3 * full)
    # Absolute budgets in the table's unit give the same plan.
    absolute = hads.uniform_plan(
        model, latency_targets=[1.0, f"{0.6 * full} instructions", 0.3 * full],
        latency_table=table)
    assert [_widths(absolute, k) for k in range(3)] == [_widths(plan, k) for k in range(3)]


def test_mac_and_latency_targets_together_hold_both(model):
    table = _latency_table(model)
    full_latency = table.cost(hads.costs.full_widths(model))
    plan = hads.uniform_plan(model, [1.0, 0.5], latency_targets=[1.0, 0.3],
                             latency_table=table)
    assert plan.costs[1]["macs"] <= 0.5 * plan.costs[0]["macs"]
    assert plan.costs[1]["latency"] <= 0.3 * full_latency


def test_memory_limit_below_the_full_network_gives_a_reduced_plan(model):
    full_bytes = memory.planned_arena(model)
    limit = int(0.6 * full_bytes)
    plan = hads.uniform_plan(model, [1.0, 0.5], memory_limit=limit)
    assert plan.reduced and plan.num_subnetworks == 2
    for k in range(2):
        assert memory.planned_arena(model, _widths(plan, k)) <= limit
        assert plan.costs[k]["memory"] == memory.planned_arena(model, _widths(plan, k))
    ratios = set(_ratios(plan, 0).values())
    assert max(ratios) - min(ratios) < 0.2   # one multiplier for every group
    # A limit the full network fits leaves it in front.
    plan = hads.uniform_plan(model, [0.5], memory_limit=full_bytes)
    assert not plan.reduced and plan.num_subnetworks == 2


def test_memory_limit_alone_is_one_subnetwork(model):
    limit = int(0.5 * memory.planned_arena(model))
    plan = hads.uniform_plan(model, memory_limit=limit)
    assert plan.num_subnetworks == 1 and plan.costs[0]["memory"] <= limit


def test_multiple_of_aligns_every_width(model):
    plan = hads.uniform_plan(model, [1.0, 0.75, 0.5], multiple_of=4)
    full = plan.full_widths
    for g in plan.groups:
        for w in plan.widths(g)[1:]:
            assert w == full[g] or (w % 4 == 0 and w >= 4), (g, plan.widths(g))
    assert plan.costs[2]["macs"] <= 0.5 * plan.costs[0]["macs"]
    assert any(plan.widths(g)[2] == 4 for g in plan.groups)
    with pytest.raises(ValueError, match="multiple_of=4"):
        hads.uniform_plan(model, [1.0, 0.1], multiple_of=4)


def test_bad_budgets_are_refused(model):
    table = _latency_table(model)
    with pytest.raises(ValueError, match="strictly decreasing"):
        hads.uniform_plan(model, latency_targets=[1.0, 0.5, 0.5], latency_table=table)
    with pytest.raises(ValueError, match="differ in length"):
        hads.uniform_plan(model, [1.0, 0.5], latency_targets=[1.0, 0.5, 0.2],
                          latency_table=table)
    with pytest.raises(ValueError, match="latency_table"):
        hads.uniform_plan(model, latency_targets=[1.0, 0.5])
    with pytest.raises(ValueError, match="below the smallest uniform network"):
        hads.uniform_plan(model, [1.0, 1e-6])
    with pytest.raises(ValueError, match="give mac_targets"):
        hads.uniform_plan(model)
