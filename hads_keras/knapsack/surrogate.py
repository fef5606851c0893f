"""Several additive budgets on a chain (latency and MACs, say): the chain DP
on a surrogate of the budgets.

For weights ``w_r >= 0`` summing to 1, every subnetwork within all budgets
``cost_r(s) <= B_r`` also has ``sum_r w_r cost_r(s) / B_r <= 1``: the
one-resource chain DP on this surrogate cost is a relaxation, so its bound
is an upper bound on the stage optimum. Its solution may break one budget;
the weights then move towards the broken budgets (multiplicative updates),
and if no weights give a solution within every budget the surrogate budget
is shrunk until one does (the smallest widths always fit). Returned: the
best solution within every budget seen, and the smallest surrogate bound,
so the report shows a proven gap. There is no (1 - eps) guarantee here (the
surrogate dual may have a gap); CP-SAT proves optimality on small problems
but its element encoding of wide tables is too slow for DS-CNN L.
"""

from __future__ import annotations

import time

import numpy as np

from hads_keras.knapsack import chain
from hads_keras.knapsack.problem import Problem

ROUNDS = 12        # weight updates
STEP = 4.0         # multiplicative update: w_r *= exp(STEP * (use_r - 1))
SHRINK = 0.97      # surrogate budget factor when no weights fit
MAX_SHRINKS = 200


def several_budgets(problem: Problem, budgets: dict, lo, hi, *, eps=0.01,
                    multiple_of=1, shortcut=True, limits=None,
                    max_cells=400_000_000) -> chain.StageSolution:
    """Max importance with every additive budget in ``budgets`` (and the
    peak ``limits``) on a chain; see the module docstring."""
    t0 = time.perf_counter()
    if eps == 0:
        raise ValueError("Several budgets on the chain DP need eps > 0 (the "
                         "surrogate gives a proven gap, not an exact optimum); use "
                         "solver='cp-sat' for a proof.")
    original = problem
    problem, unit = problem.normalized()
    base = chain._Chain(problem, None, lo, hi, multiple_of, limits)
    per = {r: problem.chain_costs(r, base.doms) for r in budgets}
    caps = {r: b * (1 - 1e-12) if problem.has_tables(r) else b
            for r, b in budgets.items()}

    def fits(widths):
        return all(problem.cost(widths, r) <= caps[r] for r in budgets)

    def surrogate(weights, factor):
        scale = {r: weights[r] / budgets[r] for r in budgets}
        const = sum(scale[r] * per[r][0] for r in budgets)
        node = [sum(scale[r] * per[r][1][g] for r in budgets) for g in range(base.G)]
        edge = [sum(scale[r] * per[r][2][g] for r in budgets)
                for g in range(base.G - 1)]
        ch = base.with_costs(const, node, edge)
        return chain._chain_dp(problem, "surrogate", factor, lo, hi, eps, multiple_of,
                               shortcut, max_cells, limits, ch=ch)

    weights = {r: 1.0 / len(budgets) for r in budgets}
    best, bound = None, np.inf
    for _ in range(ROUNDS):
        sol = surrogate(weights, 1.0)
        bound = min(bound, sol.bound)
        if fits(sol.widths) and (best is None or sol.profit > best.profit):
            best = sol
        use = {r: problem.cost(sol.widths, r) / budgets[r] for r in budgets}
        if best is not None and best.profit >= bound * (1 - 1e-12):
            break
        weights = {r: w * np.exp(STEP * (use[r] - 1.0)) for r, w in weights.items()}
        total = sum(weights.values())
        weights = {r: w / total for r, w in weights.items()}
    factor = 1.0
    for _ in range(MAX_SHRINKS):
        if best is not None:
            break
        factor *= SHRINK
        try:
            sol = surrogate(weights, factor)
        except ValueError:  # the surrogate budget is below every width
            break
        if fits(sol.widths):
            best = sol
    if best is None:
        # The stage's lower bounds: the previous (smaller) subnetwork
        # bottom-up, the smallest widths top-down; both fit.
        w = np.array([d[0] for d in base.doms], dtype=np.int64)
        if not fits(w):
            raise ValueError(f"Stage infeasible: even widths {w.tolist()} break a "
                             f"budget of {budgets}.")
        best = chain.StageSolution(w, problem.objective(w), "FEASIBLE", 0.0, None)
    profit = original.objective(best.widths)
    status = "OPTIMAL" if bound - best.profit <= 1e-12 * abs(bound) else "FEASIBLE"
    return chain.StageSolution(best.widths, profit, status, time.perf_counter() - t0,
                               bound * unit)
