"""Cost terms beyond bilinear: quadratic self terms (coef * s_g ** 2) and
peak resources (max over operators), every solver against brute force."""

import dataclasses

import numpy as np
import pytest

from hads_keras.knapsack import (CostTerm, GroupSpec, PeakTerm, Problem, chain,
                                 cpsat, resolve_targets, shapes, solve_problem)
from hads_keras.knapsack.problem import allowed_widths


def _with_quadratic(p, integer_coef=True):
    """``p`` plus a quadratic self term on every other group."""
    extra = tuple(CostTerm(f"sq_{g.name}", "macs", 3 if integer_coef else 2.5,
                           (g.name, g.name))
                  for g in p.groups[::2])
    return dataclasses.replace(p, terms=p.terms + extra)


def _small(integer):
    yield _with_quadratic(shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1,
                                     integer=integer))
    yield _with_quadratic(shapes.ds_cnn(5, 2, (3, 2), kernel=(2, 2), seed=2,
                                        integer=integer), integer_coef=False)


def _bounds(rng, p):
    lo, hi = [], []
    for g in p.groups:
        a = allowed_widths(g)
        i, j = sorted(rng.integers(0, a.size, size=2))
        lo.append(a[0] if rng.uniform() < 0.5 else a[i])
        hi.append(a[-1] if rng.uniform() < 0.5 else a[j])
    return np.array(lo), np.array(hi)


def _budget(rng, p, lo, hi, r="macs"):
    return p.cost(lo, r) + (p.cost(hi, r) - p.cost(lo, r)) * rng.uniform()


def test_quadratic_self_term_costs_coef_times_width_squared():
    g = GroupSpec("a", [3.0, 2.0, 1.0])
    p = Problem((g,), (CostTerm("self", "macs", 2.0, ("a", "a")),
                       CostTerm("lin", "macs", 5.0, ("a",))))
    assert p.cost([3], "macs") == 2.0 * 9 + 5.0 * 3
    const, w = p.unit_weights("macs")  # equation 1: coef * full per unit
    assert const == 0 and w.tolist() == [2.0 * 3 + 5.0]
    assert p.is_chain()


def test_quadratic_chain_dp_exact_and_within_eps_of_brute_force():
    rng = np.random.default_rng(20)
    for integer, eps in ((True, 0.0), (False, 0.1), (False, 0.01)):
        for p in _small(integer):
            for _ in range(10):
                lo, hi = _bounds(rng, p)
                b = _budget(rng, p, lo, hi)
                opt = chain.brute_force(p, {"macs": b}, lo, hi).profit
                for shortcut in (True, False):
                    s = chain.chain_dp(p, "macs", b, lo, hi, eps=eps,
                                       shortcut=shortcut)
                    assert p.cost(s.widths, "macs") <= b
                    assert s.profit >= (1 - eps) * opt - 1e-9
                    assert s.profit <= opt + 1e-9
                    if eps == 0:
                        assert s.profit == opt and s.status == "OPTIMAL"


def test_quadratic_cpsat_stage_ip_and_joint_equal_brute_force():
    rng = np.random.default_rng(21)
    for p in _small(integer=False):
        lo, hi = _bounds(rng, p)
        budgets = {"macs": _budget(rng, p, lo, hi),
                   "params": _budget(rng, p, lo, hi, "params")}
        bf = chain.brute_force(p, budgets, lo, hi)
        for fn in (cpsat.stage, cpsat.depthwise_ip):
            s = fn(p, budgets, lo, hi, time_limit=20)
            assert s.status == "OPTIMAL"
            assert s.profit == pytest.approx(bf.profit, rel=1e-7)
            assert all(p.cost(s.widths, r) <= b for r, b in budgets.items())
    p = next(_small(integer=False))
    r = solve_problem(p, {"macs": [0.6, 0.3]}, method="joint", time_limit=20)
    assert r.details["cp_sat_status"] == "OPTIMAL"
    for k in (1, 2):  # joint is at least as good as each heuristic
        assert r.stages[k].cost["macs"] <= r.stages[k].budget["macs"]
    assert r.total_objective() >= max(r.details["heuristics"].values()) - 1e-9
