"""Plans do not depend on the scale of the importance, for every solver and
both cost models, against brute force from 1e-300 to 1e300; a solver cannot
hang; stages that leave most of their budget unused are reported."""

import pathlib
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from hads_keras.knapsack import (CostTerm, GroupSpec, Problem, chain, cpsat,
                                 knapsack01, shapes, solve_problem)
from hads_keras.knapsack.drivers import low_budget_use

SCALES = [1e-300, 1e-15, 1e-12, 1.0, 1e12, 1e300]


def _scaled(p, s):
    return Problem(tuple(GroupSpec(g.name, g.importance * s, g.min_width)
                         for g in p.groups), p.terms)


def _small():
    yield shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1)
    yield shapes.ds_cnn(5, 2, (3, 2), kernel=(2, 2), seed=2)
    yield shapes.cnn(((4, 2, 2, 3, 3), (5, 2, 2, 2, 2)), (4,), n_out=3, seed=3)


@pytest.mark.parametrize("scale", SCALES)
def test_exact_cost_stage_solvers_against_brute_force_at_every_scale(scale):
    rng = np.random.default_rng(20)
    for base in _small():
        p = _scaled(base, scale)
        lo, hi = p.min_widths(), p.full_widths
        for frac in (0.3, 0.6):
            b = p.cost(lo, "macs") + frac * (p.cost(hi, "macs") - p.cost(lo, "macs"))
            bf = chain.brute_force(p, {"macs": b}, lo, hi)
            for shortcut in (True, False):
                s = chain.chain_dp(p, "macs", b, lo, hi, eps=0.01, shortcut=shortcut)
                assert p.cost(s.widths, "macs") <= b
                assert s.profit >= 0.99 * bf.profit
                assert s.bound >= bf.profit * (1 - 1e-9)
        budgets = {"macs": float(rng.uniform(0.3, 0.6)) * p.full_cost("macs")}
        bf = chain.brute_force(p, budgets, lo, hi)
        for fn in (cpsat.stage, cpsat.depthwise_ip):
            s = fn(p, budgets, lo, hi, time_limit=20)
            assert s.status == "OPTIMAL"
            assert s.profit == pytest.approx(bf.profit, rel=1e-7)
            assert s.bound >= bf.profit * (1 - 1e-7)


@pytest.mark.parametrize("scale", SCALES)
def test_equation1_solvers_against_brute_force_at_every_scale(scale):
    rng = np.random.default_rng(21)
    for _ in range(8):
        chains = []
        for _ in range(3):
            n = int(rng.integers(1, 5))
            profits = np.sort(rng.lognormal(size=n))[::-1] * scale
            chains.append(knapsack01.Chain(profits, np.full(n, float(rng.integers(1, 9)))))
        cap = float(rng.uniform(0.2, 0.8) * sum(c.weights.sum() for c in chains))
        opt = knapsack01.brute_force(chains, cap).profit
        for sol in (knapsack01.fptas(chains, cap, 0.01),
                    knapsack01.ortools_knapsack(chains, cap, time_limit=10),
                    knapsack01.cpsat(chains, cap, time_limit=10)):
            assert sum(c.weights[:k, 0].sum() for c, k in zip(chains, sol.counts)) <= cap
            assert sol.profit >= 0.99 * opt
            assert sol.bound >= opt * (1 - 1e-9)
        assert knapsack01.ortools_knapsack(chains, cap).profit == pytest.approx(opt, rel=1e-9)
        assert knapsack01.dantzig_bound(chains, cap) >= opt * (1 - 1e-12)


_SOLVERS = [("exact", "fptas"), ("exact", "cp-sat"), ("exact", "ip"),
            ("exact", "brute_force"), ("paper", "fptas"), ("paper", "knapsack"),
            ("paper", "cp-sat"), ("paper", "brute_force")]


@pytest.mark.parametrize("costs,solver", _SOLVERS)
def test_every_solver_gives_the_same_plan_at_every_scale(costs, solver):
    """Scaling all importance by c > 0 changes no slicing point (bottom-up,
    top-down; joint for exact costs), and the budget is used as at scale 1."""
    p = shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1)
    methods = ["bottom_up", "top_down"] + (["joint"] if costs == "exact"
                                           and solver == "fptas" else [])
    targets = {"macs": [1.0, 0.75, 0.5, 0.25]}
    for method in methods:
        ref = solve_problem(p, targets, method=method, costs=costs, solver=solver,
                            time_limit=20)
        for s in SCALES:
            r = solve_problem(_scaled(p, s), targets, method=method, costs=costs,
                              solver=solver, time_limit=20)
            assert r.widths == ref.widths, (method, s)
            assert r.total_objective() == pytest.approx(ref.total_objective() * s,
                                                        rel=1e-9)
            for a, b in zip(r.stages, ref.stages):
                assert a.budget_use("macs") == b.budget_use("macs")


def test_paper_model_shapes_keep_their_plan_from_1e_300_to_1e300():
    """The issue's case: DNN S at 1e-15 kept the minimum widths (1-2 % of
    the budget) with the default solver; knapsack was 2.7 % short at 1e-12."""
    p = shapes.paper_models(seed=0)["DNN-S"]
    targets = {"macs": [1.0, 0.75, 0.5, 0.25]}
    for costs, solver in (("exact", None), ("paper", "knapsack")):
        ref = solve_problem(p, targets, costs=costs, solver=solver, time_limit=10)
        for s in (1e-300, 1e-15, 1e-12, 1e300):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no low-budget-use warning
                r = solve_problem(_scaled(p, s), targets, costs=costs,
                                  solver=solver, time_limit=10)
            assert r.widths == ref.widths
    assert min(st.budget_use("macs") for st in ref.stages[1:]) > 0.5


def test_exact_dp_needs_integer_importance_and_says_when_it_is_too_large():
    p = shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1, integer=True)
    targets = {"macs": [1.0, 0.5, 0.25]}
    for costs in ("exact", "paper"):
        ref = solve_problem(p, targets, costs=costs, solver="dp")
        assert solve_problem(_scaled(p, 1000.0), targets, costs=costs,
                             solver="dp").widths == ref.widths
        with pytest.raises(ValueError, match="integer"):
            solve_problem(_scaled(p, 1e-300), targets, costs=costs, solver="dp")
        with pytest.raises(ValueError, match="too large|profit levels"):
            solve_problem(_scaled(p, 1e300), targets, costs=costs, solver="dp")


def test_all_zero_importance_is_a_clear_error():
    p = _scaled(shapes.dnn((5, 4), n_in=7, n_out=3), 0.0)
    with pytest.raises(ValueError, match="zero for every unit"):
        solve_problem(p, {"macs": [0.5]})


def test_negative_importance_names_the_group_for_both_cost_models():
    with pytest.raises(ValueError, match="Group 'fc1'.*>= 0"):
        GroupSpec("fc1", [3.0, 1.0, -0.5])


def test_a_stage_that_wastes_its_budget_is_reported():
    p = shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1)
    full = p.full_widths
    budgets = [{"macs": p.full_cost("macs")}, {"macs": 0.6 * p.full_cost("macs")}]
    W = np.vstack([full, p.min_widths()])   # what the broken solvers returned
    (k, use, group, width, wider), = low_budget_use(p, W, budgets, "exact")[:1]
    assert k == 1 and use < 0.5 and wider > width
    good = solve_problem(p, {"macs": [1.0, 0.6]})
    assert low_budget_use(p, good.width_matrix(), budgets, "exact") == []


def test_solve_problem_warns_when_a_solver_stops_at_the_smallest_widths(monkeypatch):
    from hads_keras.knapsack import drivers
    p = shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1)

    def smallest(problem, budgets, lo, hi, **kw):
        return chain.StageSolution(np.asarray(lo), problem.objective(lo), "OPTIMAL", 0.0)

    monkeypatch.setattr(drivers, "solve_stage", smallest)
    with pytest.warns(RuntimeWarning, match="Subnetwork 1 uses only .* of its budget"):
        solve_problem(p, {"macs": [1.0, 0.6]})


def test_ip_solver_builds_its_model_and_stops_within_its_time_limit():
    """The issue's reproducer (coefficient 1 first: `1 * e` is `e` in
    OR-Tools 9.15, and `+=` grew the expression into itself forever)."""
    # The child imports only the knapsack package (no Keras, so CP-SAT runs
    # in that process and its time limit is the one that counts).
    pkg_dir = str(pathlib.Path(knapsack01.__file__).parents[1])
    code = f"PKG_DIR = {pkg_dir!r}\n" + textwrap.dedent("""
        import sys, types
        pkg = types.ModuleType("hads_keras")
        pkg.__path__ = [PKG_DIR]
        sys.modules["hads_keras"] = pkg
        from hads_keras.knapsack import CostTerm, GroupSpec, Problem, solve_problem
        p = Problem((GroupSpec("g0", [4., 3, 2, 1]), GroupSpec("g1", [4., 3, 2, 1])),
                    (CostTerm("first", "macs", 1, ("g0",)),
                     CostTerm("g1", "macs", 3, ("g0", "g1")),
                     CostTerm("logits", "macs", 2, ("g1",))))
        for solver in ("ip", "cp-sat", "brute_force"):
            r = solve_problem(p, {"macs": [1.0, 0.5]}, solver=solver, time_limit=5)
            print(solver, r.total_objective(), r.stages[1].cost["macs"])
        print("tensorflow" in sys.modules)
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                             text=True, timeout=120,
                             env={**__import__("os").environ,
                                  "HADS_CPSAT_SUBPROCESS": "0"})
    except subprocess.TimeoutExpired:
        pytest.fail("solver='ip' did not return within 120 s (time_limit=5)")
    assert out.returncode == 0, out.stderr[-2000:]
    *lines, tf_loaded = out.stdout.splitlines()
    assert tf_loaded == "False"
    rows = dict((line.split()[0], line.split()[1:]) for line in lines)
    assert rows["ip"][0] == rows["brute_force"][0] == rows["cp-sat"][0]
    assert float(rows["ip"][1]) <= 30


def test_cpsat_expressions_do_not_alias_shared_parts():
    from ortools.sat.python import cp_model

    from hads_keras.knapsack.cpsat import _Linear
    m = cp_model.CpModel()
    x = [m.NewBoolVar(f"x{i}") for i in range(3)]
    width = _Linear().add_const(2).add(x[0], 1).add(x[1], 1)
    before = str(width.expr())
    cost = _Linear().add_linear(width, 1).add_linear(width, 3).add(x[2], 1)
    assert str(width.expr()) == before
    assert cost.coefs == {x[0].Index(): 4, x[1].Index(): 4, x[2].Index(): 1}
    assert cost.const == 8


def test_the_cpsat_child_is_stopped_at_its_deadline(monkeypatch):
    """A call that does not answer within time_limit (+ margin) is stopped
    with a TimeoutError instead of holding the caller (here: a sleep)."""
    import time

    from hads_keras.knapsack import _isolate
    monkeypatch.setattr(_isolate, "DEADLINE_MARGIN", 0.2)
    monkeypatch.setattr(_isolate, "START_MARGIN", 10.0)
    with pytest.raises(TimeoutError, match="sleep: no answer within time_limit=0.5"):
        _isolate._call(time.sleep, (600,), {}, time_limit=0.5)
    assert _isolate._worker is None  # the next call starts a fresh child
    assert _isolate._call(abs, (-3,), {}, time_limit=5) == 3


def test_joint_gives_cp_sat_only_what_is_left_of_time_limit(monkeypatch):
    from hads_keras.knapsack import drivers
    seen = {}
    real = drivers.cpsat.joint

    def recording(*args, **kwargs):
        seen["time_limit"] = kwargs["time_limit"]
        return real(*args, **kwargs)

    monkeypatch.setattr(drivers.cpsat, "joint", recording)
    p = shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=1)
    solve_problem(p, {"macs": [1.0, 0.6, 0.3]}, method="joint", time_limit=3.0)
    assert 0 < seen["time_limit"] < 3.0
