"""Cost terms beyond bilinear: quadratic self terms (coef * s_g ** 2) and
peak resources (max over operators), every solver against brute force."""

import dataclasses

import numpy as np
import pytest

from hads_keras.knapsack import (CostTerm, GroupSpec, PeakTerm, Problem, chain,
                                 cpsat, resolve_targets, shapes, solve_problem)
from hads_keras.knapsack.problem import allowed_widths
from hads_keras.knapsack.table import TableTerm


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


def _with_memory(p, pair=True, n_in=7):
    """``p`` plus a peak resource "memory": per operator the bytes of its
    live input and output (4 per unit) and, if ``pair``, a scratch buffer
    of s_in * s_out bytes; one constant operator (the input)."""
    names = p.names
    ops = [PeakTerm("input", "memory", (CostTerm("input", "memory", 4 * n_in),)),
           PeakTerm(names[0], "memory", (CostTerm(names[0], "memory", 4 * n_in),
                                         CostTerm(names[0], "memory", 4,
                                                  (names[0],))))]
    for a, b in zip(names[:-1], names[1:]):
        terms = [CostTerm(b, "memory", 4, (a,)), CostTerm(b, "memory", 4, (b,))]
        if pair:
            terms.append(CostTerm(b, "memory", 1, (a, b)))
        ops.append(PeakTerm(b, "memory", tuple(terms)))
    return dataclasses.replace(p, peaks=tuple(ops))


def _memory_limit(rng, p, lo, hi):
    return p.cost(lo, "memory") + (p.cost(hi, "memory") - p.cost(lo, "memory")) \
        * rng.uniform(0.2, 0.9)


def test_peak_cost_is_the_largest_operator_sum():
    p = _with_memory(shapes.dnn((5, 4), n_in=7, n_out=3))
    assert p.resources == ["macs", "params", "memory"]
    assert p.peak_resources == ["memory"] and p.is_peak("memory")
    # operators at widths (5, 2): input 28, dense_0 28 + 20, dense_1 20 + 8 + 10
    assert p.cost([5, 2], "memory") == 48
    assert p.cost([5, 4], "memory") == max(28, 48, 20 + 16 + 20)
    assert p.full_cost("memory") == 56


def test_chain_dp_with_a_peak_limit_equals_brute_force():
    rng = np.random.default_rng(22)
    for integer, eps in ((True, 0.0), (False, 0.05)):
        for p in (_with_memory(shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=3,
                                          integer=integer)),
                  _with_memory(shapes.dnn((6, 3, 5), n_in=7, n_out=2, seed=4,
                                          integer=integer), pair=False)):
            for _ in range(10):
                lo, hi = _bounds(rng, p)
                limit = _memory_limit(rng, p, lo, hi)
                b = _budget(rng, p, lo, hi)
                opt = chain.brute_force(p, {"macs": b, "memory": limit}, lo, hi)
                s = chain.chain_dp(p, "macs", b, lo, hi, eps=eps,
                                   limits={"memory": limit})
                assert p.cost(s.widths, "memory") <= limit
                assert p.cost(s.widths, "macs") <= b
                assert opt.profit + 1e-9 >= s.profit >= (1 - eps) * opt.profit - 1e-9
                # the limit alone (no additive budget): exact
                only = chain.chain_dp(p, None, None, lo, hi, eps=eps,
                                      limits={"memory": limit})
                bf = chain.brute_force(p, {"memory": limit}, lo, hi)
                assert only.profit == pytest.approx(bf.profit, rel=1e-12)
                assert only.status == "OPTIMAL"


def test_cpsat_stage_with_a_peak_limit_equals_brute_force():
    rng = np.random.default_rng(23)
    p = _with_memory(shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=5))
    for _ in range(2):
        lo, hi = _bounds(rng, p)
        budgets = {"macs": _budget(rng, p, lo, hi),
                   "params": _budget(rng, p, lo, hi, "params"),
                   "memory": _memory_limit(rng, p, lo, hi)}
        bf = chain.brute_force(p, budgets, lo, hi)
        s = cpsat.stage(p, budgets, lo, hi, time_limit=20)
        assert s.status == "OPTIMAL"
        assert s.profit == pytest.approx(bf.profit, rel=1e-7)


def test_a_peak_limit_with_one_budget_uses_the_chain_dp_and_binds():
    p = _with_memory(shapes.dnn((24, 24, 24), n_in=30, n_out=4, seed=6), n_in=30)
    limit = 0.6 * p.full_cost("memory")
    targets = {"macs": [0.8, 0.5, 0.3], "memory": [limit] * 3}
    r = solve_problem(p, targets)
    assert r.solver == "fptas" and r.n_subnetworks == 4
    assert r.stages[0].status == "FIXED"  # the full network, above the limit
    c = solve_problem(p, targets, solver="cp-sat", time_limit=20)
    for s, sc in zip(r.stages[1:], c.stages[1:]):
        assert s.cost["memory"] <= limit and s.cost["macs"] <= s.budget["macs"]
        assert s.objective >= 0.99 * sc.objective - 1e-9
    # The limit binds: without it the 0.8 stage needs more memory.
    free = solve_problem(p, {"macs": [0.8, 0.5, 0.3]})
    assert free.stages[1].objective > r.stages[1].objective
    assert p.cost(free.width_matrix()[1], "memory") > limit


def test_include_full_false_cuts_the_largest_subnetwork_too():
    p = _with_memory(shapes.dnn((24, 24, 24), n_in=30, n_out=4, seed=7), n_in=30)
    full = p.full_cost("macs")
    assert len(resolve_targets(p, {"macs": [0.6, 0.3]}, include_full=False)) == 2
    for method in ("bottom_up", "top_down", "joint"):
        r = solve_problem(p, {"macs": [0.6, 0.3]}, method=method,
                          include_full=False, time_limit=20)
        W = r.width_matrix()
        assert W.shape[0] == 2 and np.all(W[1] <= W[0])
        assert r.stages[0].status != "FIXED"
        assert r.stages[0].cost["macs"] <= 0.6 * full
        assert r.total_objective() == pytest.approx(
            r.stages[0].objective + r.stages[1].objective)
    # A memory limit the full network exceeds, alone: the largest
    # subnetwork is the best one within the limit (brute force).
    small = _with_memory(shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=8))
    limit = 0.6 * small.full_cost("memory")
    r = solve_problem(small, {"memory": [limit], "macs": [0.9]}, include_full=False)
    assert r.n_subnetworks == 1 and np.any(r.width_matrix()[0] < small.full_widths)
    bf = chain.brute_force(small, {"memory": limit, "macs": 0.9 * small.full_cost("macs")},
                           small.min_widths(), small.full_widths)
    assert r.stages[0].objective >= 0.99 * bf.profit
    assert r.stages[0].cost["memory"] <= limit
    # With include_full (default) the full network stays subnetwork 0.
    r = solve_problem(p, {"macs": [0.6, 0.3]})
    assert r.n_subnetworks == 3 and r.stages[0].status == "FIXED"


def test_peak_bad_input_is_named():
    p = shapes.dnn((5, 4), n_in=7, n_out=3)
    mem = _with_memory(p)
    with pytest.raises(ValueError, match="both additive cost terms and peak"):
        Problem(p.groups, p.terms, (PeakTerm("x", "macs", (CostTerm("x", "macs", 1),)),))
    with pytest.raises(ValueError, match="operator 'x'.*resource 'macs'"):
        PeakTerm("x", "memory", (CostTerm("x", "macs", 1),))
    with pytest.raises(ValueError, match="non-increasing"):
        resolve_targets(mem, {"memory": [30.0, 40.0]})
    floor = mem.cost(mem.min_widths(), "memory")
    with pytest.raises(ValueError, match=f"smallest feasible budget is {floor:g}"):
        resolve_targets(mem, {"memory": [floor - 1]})
    with pytest.raises(ValueError, match="peak resource.*costs='exact'"):
        solve_problem(mem, {"macs": [0.5], "memory": [50.0]}, costs="paper")
    with pytest.raises(ValueError, match="solver='ip'.*peak"):
        solve_problem(mem, {"macs": [0.5], "memory": [50.0]}, solver="ip")
    far = dataclasses.replace(shapes.dnn((5, 4, 3), n_in=7, n_out=3), peaks=(
        PeakTerm("skip", "memory", (CostTerm("skip", "memory", 1, ("dense_0",)),
                                    CostTerm("skip", "memory", 1, ("dense_2",)))),))
    assert not far.is_chain(["memory"])
    with pytest.raises(ValueError, match="Operator 'skip'.*not a chain"):
        solve_problem(far, {"macs": [0.5], "memory": [6.0]}, solver="fptas")
    r = solve_problem(far, {"macs": [0.5], "memory": [6.0]}, solver="cp-sat",
                      time_limit=20)
    assert r.stages[1].cost["memory"] <= 6.0


def _with_latency(p, seed, monotone=True):
    """``p`` plus random latency tables: the first layer on its group, one
    pair table per neighbouring pair (input group first), the classifier on
    the last group, a constant; grids of 3 widths, values random (``monotone``:
    non-decreasing in every width, as measured latency is)."""
    rng = np.random.default_rng(seed)
    names, full = p.names, p.full_widths

    def axis(i):
        lo = p.groups[i].min_width
        return sorted({lo, (lo + int(full[i])) // 2, int(full[i])})

    def values(shape):
        v = rng.uniform(1.0, 20.0, size=shape)
        if monotone:
            for ax in range(v.ndim):
                v = np.cumsum(v, axis=ax)
        return v

    tabs = [TableTerm("first", "latency", (names[0],), (axis(0),), values(len(axis(0))))]
    for i, (a, b) in enumerate(zip(names[:-1], names[1:])):
        tabs.append(TableTerm(f"layer_{i}", "latency", (a, b), (axis(i), axis(i + 1)),
                              values((len(axis(i)), len(axis(i + 1))))))
    tabs.append(TableTerm("logits", "latency", (names[-1],), (axis(len(names) - 1),),
                          values(len(axis(len(names) - 1)))))
    tabs.append(TableTerm("rest", "latency", (), (), 7.5))
    return dataclasses.replace(p, tables=tuple(tabs))


def test_table_costs_are_the_interpolated_measurements():
    p = _with_latency(shapes.dnn((5, 4), n_in=7, n_out=3), seed=0)
    w = {"dense_0": 4, "dense_1": 3}
    want = sum(t(*(w[g] for g in t.groups)) for t in p.tables)
    assert p.cost([4, 3], "latency") == pytest.approx(want, rel=1e-15)
    assert p.resources == ["macs", "params", "latency"] and p.is_chain()
    # Node and edge arrays hold the same costs as Problem.cost.
    doms = [allowed_widths(g) for g in p.groups]
    const, node, edge = p.chain_costs("latency", doms)
    i, j = 3, 2  # widths 4 and 3
    assert const + node[0][i] + node[1][j] + edge[0][i, j] == pytest.approx(
        p.cost([4, 3], "latency"), rel=1e-14)


def test_chain_dp_with_tables_within_eps_of_brute_force():
    rng = np.random.default_rng(24)
    cases = [(shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=9, integer=True), True),
             (shapes.ds_cnn(5, 2, (3, 2), kernel=(2, 2), seed=10, integer=True), False)]
    for k, (base, monotone) in enumerate(cases):
        p = _with_latency(base, seed=k, monotone=monotone)
        for _ in range(10):
            lo, hi = _bounds(rng, p)
            b = _budget(rng, p, lo, hi, "latency")
            try:
                opt = chain.brute_force(p, {"latency": b}, lo, hi).profit
            except ValueError:  # non-monotone costs: lo is not the cheapest
                continue
            for eps in (0.0, 0.05):
                s = chain.chain_dp(p, "latency", b, lo, hi, eps=eps, shortcut=False)
                assert p.cost(s.widths, "latency") <= b
                assert opt + 1e-9 >= s.profit >= (1 - eps) * opt - 1e-9
                if eps == 0:
                    assert s.profit == opt


def test_cpsat_with_tables_and_macs_equals_brute_force():
    rng = np.random.default_rng(25)
    p = _with_latency(shapes.dnn((5, 4, 6), n_in=7, n_out=3, seed=11), seed=3)
    for _ in range(2):
        lo, hi = _bounds(rng, p)
        budgets = {"latency": _budget(rng, p, lo, hi, "latency"),
                   "macs": _budget(rng, p, lo, hi)}
        bf = chain.brute_force(p, budgets, lo, hi)
        s = cpsat.stage(p, budgets, lo, hi, time_limit=20)
        assert s.status == "OPTIMAL"
        assert all(p.cost(s.widths, r) <= b for r, b in budgets.items())
        # Rounding the tables up may only lose what 1e-9 of the budget buys.
        assert s.profit == pytest.approx(bf.profit, rel=1e-6)


@pytest.mark.parametrize("method", ["bottom_up", "top_down", "joint"])
def test_drivers_with_latency_targets(method):
    p = _with_latency(shapes.dnn((6, 5, 6), n_in=7, n_out=3, seed=12), seed=4)
    for targets in ({"latency": [0.7, 0.4]},
                    {"latency": [0.7, 0.4], "macs": [0.8, 0.5]}):
        r = solve_problem(p, targets, method=method, time_limit=20)
        W = r.width_matrix()
        assert np.all(np.diff(W, axis=0) <= 0)
        for k, s in enumerate(r.stages[1:], start=1):
            for res in targets:
                assert p.cost(W[k], res) <= s.budget[res]
        if method != "joint":  # each stage against brute force within its bounds
            for k in (1, 2):
                lo, hi = p.min_widths(), p.full_widths
                if method == "bottom_up" and k == 1:
                    lo = W[2]
                if method == "top_down" and k == 2:
                    hi = W[1]
                bf = chain.brute_force(p, r.stages[k].budget, lo, hi)
                assert r.stages[k].objective >= 0.99 * bf.profit - 1e-9


def test_table_bad_input_is_named():
    p = shapes.dnn((5, 4), n_in=7, n_out=3)
    short = TableTerm("dense_1", "latency", ("dense_0", "dense_1"), ([2, 5], [1, 4]),
                      np.ones((2, 2)))
    with pytest.raises(ValueError, match="layer 'dense_1'.*widths 2..5 of group "
                                         "'dense_0'.*remeasure"):
        dataclasses.replace(p, tables=(short,))
    ok = _with_latency(p, seed=0)
    with pytest.raises(ValueError, match="latency.*measured in a table.*costs='exact'"):
        solve_problem(ok, {"latency": [0.5]}, costs="paper")
    with pytest.raises(ValueError, match="solver='ip'.*latency tables"):
        solve_problem(ok, {"latency": [0.5]}, solver="ip")
    with pytest.raises(ValueError, match="finite and >= 0"):
        TableTerm("x", "latency", ("dense_0",), ([1, 5],), [1.0, np.nan])
    with pytest.raises(ValueError, match="finite and >= 0"):
        TableTerm("x", "latency", ("dense_0",), ([1, 5],), [1.0, -2.0])
