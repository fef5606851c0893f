"""Exact (bilinear) costs: chain DP, CP-SAT stage, the depthwise IP, the
joint nested solver and the drivers, against brute force."""

import itertools
import json

import numpy as np
import pytest

from hads_keras.knapsack import chain, cpsat, shapes, solve_problem
from hads_keras.knapsack.problem import allowed_widths


def _small_problems(integer):
    yield shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1, integer=integer)
    yield shapes.ds_cnn(5, 2, (3, 2), kernel=(2, 2), seed=2, integer=integer)
    yield shapes.cnn(((4, 2, 2, 3, 3), (5, 2, 2, 2, 2)), (4,), n_out=3, seed=3,
                     integer=integer)
    yield shapes.dnn((6, 6), n_in=5, n_out=2, seed=4, integer=integer, min_width=0)


def _random_bounds(rng, p, multiple_of=1):
    lo, hi = [], []
    for g in p.groups:
        a = allowed_widths(g, multiple_of)
        i, j = sorted(rng.integers(0, a.size, size=2))
        if rng.uniform() < 0.5:
            i = 0
        if rng.uniform() < 0.5:
            j = a.size - 1
        lo.append(a[i])
        hi.append(a[j])
    return np.array(lo), np.array(hi)


def _random_budget(rng, p, lo, hi, r="macs"):
    cmin, cmax = p.cost(lo, r), p.cost(hi, r)
    return cmin + (cmax - cmin) * rng.uniform(0, 1)


@pytest.mark.parametrize("multiple_of", [1, 2])
def test_chain_dp_exact_equals_brute_force(multiple_of):
    rng = np.random.default_rng(10)
    for p in _small_problems(integer=True):
        for _ in range(15):
            lo, hi = _random_bounds(rng, p, multiple_of)
            b = _random_budget(rng, p, lo, hi)
            bf = chain.brute_force(p, {"macs": b}, lo, hi, multiple_of)
            dp = chain.chain_dp(p, "macs", b, lo, hi, eps=0, multiple_of=multiple_of)
            assert dp.profit == bf.profit
            assert dp.status == "OPTIMAL"
            assert p.cost(dp.widths, "macs") <= b
            assert np.all(dp.widths >= lo) and np.all(dp.widths <= hi)
            assert all(w in allowed_widths(g, multiple_of)
                       for g, w in zip(p.groups, dp.widths))


@pytest.mark.parametrize("eps", [0.5, 0.1, 0.01])
def test_chain_dp_within_one_minus_eps(eps):
    rng = np.random.default_rng(11)
    for p in _small_problems(integer=False):
        for _ in range(12):
            lo, hi = _random_bounds(rng, p)
            b = _random_budget(rng, p, lo, hi)
            opt = chain.brute_force(p, {"macs": b}, lo, hi).profit
            for shortcut in (True, False):  # False: always the rounded DP
                ap = chain.chain_dp(p, "macs", b, lo, hi, eps=eps, shortcut=shortcut)
                assert p.cost(ap.widths, "macs") <= b
                assert ap.profit >= (1 - eps) * opt - 1e-9
                assert ap.bound >= opt - 1e-9 * max(1, opt)


def test_chain_dp_guarantee_on_a_rounding_heavy_instance():
    """Large eps on a wide problem, so the rounding actually bites."""
    p = shapes.dnn((12, 12), n_in=9, n_out=4, seed=5)
    rng = np.random.default_rng(12)
    for _ in range(10):
        b = _random_budget(rng, p, p.min_widths(), p.full_widths)
        opt = chain.brute_force(p, {"macs": b}, p.min_widths(), p.full_widths).profit
        ap = chain.chain_dp(p, "macs", b, p.min_widths(), p.full_widths, eps=0.3,
                            shortcut=False)
        assert opt >= ap.profit >= 0.7 * opt - 1e-9


def test_cpsat_stage_and_depthwise_ip_equal_brute_force():
    rng = np.random.default_rng(13)
    probs = list(_small_problems(integer=False))[:2]
    for p in probs:
        for _ in range(2):
            lo, hi = _random_bounds(rng, p)
            budgets = {"macs": _random_budget(rng, p, lo, hi),
                       "params": _random_budget(rng, p, lo, hi, "params")}
            if p.cost(lo, "params") > budgets["params"] or \
                    p.cost(lo, "macs") > budgets["macs"]:
                continue
            bf = chain.brute_force(p, budgets, lo, hi)
            for fn in (cpsat.stage, cpsat.depthwise_ip):
                s = fn(p, budgets, lo, hi, time_limit=20)
                assert s.status == "OPTIMAL"
                assert s.profit == pytest.approx(bf.profit, rel=1e-7)
                for r, b in budgets.items():
                    assert p.cost(s.widths, r) <= b


def _dnn_macs_by_hand(widths, n_in, n_out):
    dims = [n_in, *widths, n_out]
    return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


@pytest.mark.parametrize("method", ["bottom_up", "top_down"])
@pytest.mark.parametrize("costs", ["exact", "paper"])
def test_plans_are_nested_and_respect_every_budget(method, costs):
    p = shapes.dnn((144, 144, 144), seed=6)
    targets = [1.0, 0.75, 0.5, 0.25]
    r = solve_problem(p, {"macs": targets}, method=method, costs=costs,
                      solver="knapsack" if costs == "paper" else None, time_limit=2)
    W = r.width_matrix()
    assert W.shape == (4, 3)
    assert np.all(W[0] == 144)
    assert np.all(np.diff(W, axis=0) <= 0)  # nested: widths never grow
    full = _dnn_macs_by_hand([144] * 3, 490, 12)
    for k, frac in enumerate(targets):
        macs = _dnn_macs_by_hand(W[k], 490, 12)   # counted independently
        assert macs <= frac * full
        assert r.stages[k].cost["macs"] == macs
    text = str(r)
    assert "importance %" in text and "dense_0" in text
    d = json.loads(r.to_json())
    assert d["widths"]["dense_0"] == list(W[:, 0])
    assert d["stages"][3]["cost"]["macs"] == r.stages[3].cost["macs"]


def test_multiple_of_and_two_resources():
    p = shapes.ds_cnn(24, 3, (5, 5), seed=7)
    r = solve_problem(p, {"macs": [0.6, 0.3], "params": [0.7, 0.4]},
                      multiple_of=4, method="bottom_up", time_limit=20)
    assert r.solver == "cp-sat"
    W = r.width_matrix()
    assert np.all(W[1:] % 4 == 0)
    for k, (fm, fp) in enumerate([(1, 1), (0.6, 0.7), (0.3, 0.4)]):
        assert p.cost(W[k], "macs") <= fm * p.full_cost("macs")
        assert p.cost(W[k], "params") <= fp * p.full_cost("params")


@pytest.mark.parametrize("name", ["DNN-S", "DS-CNN-S", "CNN-S"])
def test_exact_costs_use_the_budget_better_than_equation1(name):
    p = shapes.paper_models(seed=8)[name]
    t = {"macs": [1.0, 0.75, 0.5, 0.25]}
    ex = solve_problem(p, t, method="bottom_up", costs="exact")
    eq = solve_problem(p, t, method="bottom_up", costs="paper", solver="fptas")
    # Equation 1 plans are feasible for the exact costs, so the exact-cost
    # plan keeps at least about as much importance, and uses more budget.
    assert ex.total_objective() >= (1 - 0.01) * eq.total_objective()
    assert ex.total_objective() > eq.total_objective()
    use = lambda r: np.mean([s.budget_use("macs") for s in r.stages[1:]])
    assert use(ex) > use(eq)
    assert ex.stages[-1].budget_use("macs") > 0.95 > eq.stages[-1].budget_use("macs")


def _nested_brute_force(p, fracs):
    """Best nested plan by enumeration (tiny problems only)."""
    doms = [allowed_widths(g) for g in p.groups]
    combos = [np.array(c) for c in itertools.product(*doms)]
    full = p.full_cost("macs")
    best = -np.inf

    def rec(k, upper, acc):
        nonlocal best
        if k == len(fracs):
            best = max(best, acc)
            return
        for c in combos:
            if np.all(c <= upper) and p.cost(c, "macs") <= fracs[k] * full:
                rec(k + 1, c, acc + p.objective(c))

    rec(0, p.full_widths, 0.0)
    return best


def test_joint_matches_nested_brute_force_and_beats_heuristics():
    p = shapes.dnn((4, 5), n_in=3, n_out=2, seed=9)
    fracs = [0.7, 0.45, 0.2]
    t = {"macs": fracs}
    j = solve_problem(p, t, method="joint", time_limit=20)
    bu = solve_problem(p, t, method="bottom_up", eps=0.001)
    td = solve_problem(p, t, method="top_down", eps=0.001)
    opt = _nested_brute_force(p, fracs)
    assert j.total_objective() == pytest.approx(opt)
    assert j.total_objective() >= bu.total_objective() - 1e-9
    assert j.total_objective() >= td.total_objective() - 1e-9
    assert j.bound >= opt - 1e-6 * opt and j.gap < 1e-6
    # The relaxation (every stage alone, no nesting) bounds the nested optimum.
    assert j.details["relaxation_bound"] >= opt - 1e-6 * opt
    assert np.all(np.diff(j.width_matrix(), axis=0) <= 0)


def test_joint_never_worse_than_heuristics_on_a_paper_shape():
    p = shapes.paper_models(seed=10)["DS-CNN-S"]
    t = {"macs": [1.0, 0.75, 0.5, 0.25]}
    j = solve_problem(p, t, method="joint", time_limit=5)
    for m in ("bottom_up", "top_down"):
        h = solve_problem(p, t, method=m)
        assert j.total_objective() >= h.total_objective() - 1e-9
    assert j.bound >= j.total_objective()
    for s in j.stages:
        assert s.cost["macs"] <= s.budget["macs"]
