"""Bottom-up, top-down and joint drivers, and the entry point.

Subnetwork 0 is always the full network. The heuristics solve one stage
(one subnetwork) at a time:

* **bottom-up**: smallest budget first; each larger stage keeps every unit
  of the previous one (lower bound on each slicing point). Worst case 2/3 of
  each stage's optimum for items of weight <= c/2 (the paper's Appendix A.2).
* **top-down**: largest budget first; each smaller stage is restricted to
  the previous one's units (upper bound). Worst case 1/2.
* **joint**: all stages in one CP-SAT model, hinted with both heuristics'
  plans; returns the best plan found and a proven gap.

Cost models (``costs=``): "exact" counts the real, bilinear cost of a
subnetwork; "paper" is equation 1, each unit charged its cost at full
neighbour width (an over-estimate, so its plans are feasible but leave
budget unused).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from hads_keras.knapsack import chain, cpsat, knapsack01
from hads_keras.knapsack.chain import StageSolution, stage_domains
from hads_keras.knapsack.problem import Problem, allowed_widths, resolve_targets
from hads_keras.knapsack.report import KnapsackResult, StageReport

METHODS = ("bottom_up", "top_down", "joint")
EXACT_SOLVERS = ("fptas", "dp", "cp-sat", "ip", "brute_force")
PAPER_SOLVERS = ("knapsack", "cp-sat", "dp", "fptas", "brute_force")
# costs="paper" default, chosen by measurement (benchmarks/knapsack.py, see
# the package docstring).
PAPER_DEFAULT = "fptas"


def eq1_chains(problem: Problem, budgets: dict, lo, hi, multiple_of=1):
    """Equation 1 as a prefix-constrained 0/1 knapsack over allowed steps.

    Returns (chains, capacity per resource, domains). Step j of group g goes
    from slicing point dom[j] to dom[j + 1]; the base dom[0] is always kept.
    """
    doms = stage_domains(problem, lo, hi, multiple_of)
    res = list(budgets)
    uw = [problem.unit_weights(r) for r in res]
    cap = np.array([budgets[r] - uw[i][0] - sum(uw[i][1][g] * doms[g][0]
                                                for g in range(len(doms)))
                    for i, r in enumerate(res)])
    chains = []
    for g, (grp, d) in enumerate(zip(problem.groups, doms)):
        pre = grp.prefix
        steps = np.diff(d).astype(np.float64)
        w = steps[:, None] * np.array([uw[i][1][g] for i in range(len(res))])[None, :]
        chains.append(knapsack01.Chain(pre[d[1:]] - pre[d[:-1]], w))
    return chains, cap, doms


def split_budgets(problem: Problem, budgets: dict) -> tuple[dict, dict]:
    """``(additive budgets, peak limits)`` of one stage: the chain DP trades
    importance against one additive resource; peak resources only forbid
    widths (constraints, not a second budget)."""
    additive = {r: b for r, b in budgets.items() if not problem.is_peak(r)}
    limits = {r: b for r, b in budgets.items() if problem.is_peak(r)}
    return additive, limits


def _eq1_floor(problem, resource, multiple_of):
    const, w = problem.unit_weights(resource)
    return const + float(w @ problem.min_widths(multiple_of))


def solve_stage(problem: Problem, budgets: dict, lo, hi, *, costs="exact",
                solver="fptas", eps=0.01, multiple_of=1, time_limit=60.0,
                workers=2, hint=None, shortcut=True) -> StageSolution:
    """One subnetwork: max importance within ``budgets``, ``lo <= s <= hi``.

    Importance is divided by its largest score first (not for solver="dp",
    which needs it as integers), so any positive scale gives the same plan.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    original, unit = problem, 1.0
    if solver != "dp":
        problem, unit = problem.normalized()
    sol = _solve_stage(problem, budgets, lo, hi, costs, solver, eps, multiple_of,
                       time_limit, workers, hint, shortcut)
    return StageSolution(sol.widths, original.objective(sol.widths), sol.status,
                         sol.seconds, None if sol.bound is None else sol.bound * unit)


def _solve_stage(problem, budgets, lo, hi, costs, solver, eps, multiple_of,
                 time_limit, workers, hint, shortcut) -> StageSolution:
    if costs == "exact":
        additive, limits = split_budgets(problem, budgets)
        if solver in ("fptas", "dp"):
            if len(additive) > 1:
                raise ValueError(
                    f"solver='{solver}' with costs='exact' handles one resource "
                    f"(plus peak limits), got {list(additive)}; use solver='cp-sat' "
                    "for several.")
            (r, b), = additive.items() or [(None, None)]
            return chain.chain_dp(problem, r, b, lo, hi,
                                  eps=0.0 if solver == "dp" else eps,
                                  multiple_of=multiple_of, shortcut=shortcut,
                                  limits=limits)
        if solver == "cp-sat":
            if hint is None and len(additive) <= 1:
                # Warm start from the chain DP (milliseconds) when it applies.
                (r, b), = additive.items() or [(None, None)]
                try:
                    hint = chain.chain_dp(problem, r, b, lo, hi, eps=max(eps, 0.01),
                                          multiple_of=multiple_of,
                                          limits=limits).widths
                except ValueError:  # not a chain: start from lo
                    hint = None
            return cpsat.stage(problem, budgets, lo, hi, multiple_of=multiple_of,
                               time_limit=time_limit, workers=workers, hint=hint)
        if solver == "ip":
            return cpsat.depthwise_ip(problem, budgets, lo, hi, multiple_of=multiple_of,
                                      time_limit=time_limit, workers=workers, hint=hint)
        if solver == "brute_force":
            return chain.brute_force(problem, budgets, lo, hi, multiple_of)
        raise ValueError(f"Unknown solver '{solver}' for costs='exact'; choose one "
                         f"of {EXACT_SOLVERS}.")
    chains, cap, doms = eq1_chains(problem, budgets, lo, hi, multiple_of)
    if np.any(cap < 0):
        raise ValueError(
            "Equation 1 (costs='paper') cannot fit this stage: even the smallest "
            f"allowed widths are charged more than the budget {budgets}; raise the "
            "budget or use costs='exact'.")
    t0 = time.perf_counter()
    hint_counts = None
    if hint is not None:
        hint_counts = [int(np.searchsorted(d, h)) for d, h in zip(doms, hint)]
    sol = knapsack01.solve(chains, cap, solver, eps=eps, time_limit=time_limit,
                           hint=hint_counts)
    widths = np.array([d[k] for d, k in zip(doms, sol.counts)], dtype=np.int64)
    base = problem.objective([d[0] for d in doms])
    bound = None if sol.bound is None else base + sol.bound
    return StageSolution(widths, problem.objective(widths), sol.status,
                         time.perf_counter() - t0, bound)


def _check_options(problem, method, costs, solver, eps, multiple_of, n_res,
                   time_limit=60.0):
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) \
            or not math.isfinite(time_limit) or time_limit <= 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got "
                         f"{time_limit!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got '{method}'.")
    if costs not in ("exact", "paper"):
        raise ValueError(f"costs must be 'exact' or 'paper', got '{costs}'.")
    if solver is None:
        if costs == "exact":
            solver = "fptas" if n_res <= 1 else "cp-sat"
        else:
            solver = PAPER_DEFAULT
    allowed = EXACT_SOLVERS if costs == "exact" else PAPER_SOLVERS
    if solver not in allowed:
        raise ValueError(f"solver='{solver}' is not available with costs='{costs}'; "
                         f"choose one of {allowed}.")
    if not (0 <= eps < 1):
        raise ValueError(f"eps must be in [0, 1), got {eps}.")
    if int(multiple_of) != multiple_of or multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive integer, got {multiple_of}.")
    if not problem.groups:
        raise ValueError("The problem has no sliceable groups.")
    return solver


def _stage_report(problem, k, budget, widths, sol, costs, unit=1.0):
    res = list(budget)
    charged = None
    if costs == "paper":
        charged = {}
        for r in res:
            const, w = problem.unit_weights(r)
            charged[r] = const + float(w @ widths)
    cost = {r: problem.cost(widths, r) for r in res}
    for r in res:
        if cost[r] > budget[r]:
            raise AssertionError(
                f"internal error: subnetwork {k} costs {cost[r]} {r} > budget "
                f"{budget[r]}")
    full_obj = problem.objective(problem.full_widths)
    if sol is None:  # the full network
        return StageReport(k, dict(budget), cost,
                           {r: problem.full_cost(r) for r in res},
                           full_obj, full_obj, "FIXED", 0.0, full_obj, charged)
    return StageReport(k, dict(budget), cost, {r: problem.full_cost(r) for r in res},
                       problem.objective(widths), full_obj, sol.status, sol.seconds,
                       None if sol.bound is None else sol.bound * unit, charged)


# A solved stage using less than this share of its budget, while a wider
# slicing point of some group would still fit and keep more importance, is
# reported (a solver that stopped at the smallest widths, say).
LOW_BUDGET_USE = 0.5


def low_budget_use(problem, W, budgets, costs, multiple_of=1):
    """Subnetworks that use less than LOW_BUDGET_USE of every budget although
    one group could grow one allowed step (staying nested in the previous
    subnetwork and within every budget) and keep more importance.

    Costs are counted as the cost model does (``costs="paper"``: equation 1).
    Returns a list of ``(k, use, group, width, wider)``.
    """
    def cost(w, r):
        if costs == "paper":
            const, uw = problem.unit_weights(r)
            return const + float(uw @ w)
        return problem.cost(w, r)

    found = []
    full = problem.full_widths
    for k in range(first_solved(problem, budgets), len(budgets)):
        above = W[k - 1] if k > 0 else full
        use = max(cost(W[k], r) / budgets[k][r] for r in budgets[k])
        if use >= LOW_BUDGET_USE:
            continue
        for g, grp in enumerate(problem.groups):
            a = allowed_widths(grp, multiple_of)
            wider = a[a > W[k][g]]
            if wider.size == 0 or wider[0] > above[g]:
                continue
            if grp.prefix[wider[0]] <= grp.prefix[W[k][g]]:
                continue
            w = W[k].copy()
            w[g] = wider[0]
            if all(cost(w, r) <= budgets[k][r] for r in budgets[k]):
                found.append((k, use, grp.name, int(W[k][g]), int(wider[0])))
                break
    return found


def first_solved(problem: Problem, budgets: list) -> int:
    """1 when subnetwork 0 is the full network (every budget at least the full
    cost: fixed, not solved), 0 when it is itself cut to its budgets
    (``include_full=False``)."""
    return 1 if all(b >= problem.full_cost(r) for r, b in budgets[0].items()) else 0


def _heuristic(problem, budgets, method, **kw):
    """Bottom-up or top-down; returns (width matrix, list of StageSolution)."""
    n = len(budgets)
    full = problem.full_widths
    minw = problem.min_widths(kw.get("multiple_of", 1))
    first = first_solved(problem, budgets)
    W = np.zeros((n, len(problem.groups)), dtype=np.int64)
    W[0] = full
    sols = [None] * n
    if method == "bottom_up":
        lo = minw
        for k in range(n - 1, first - 1, -1):
            sols[k] = solve_stage(problem, budgets[k], lo, full, **kw)
            W[k] = lo = sols[k].widths
    else:
        hi = full
        for k in range(first, n):
            sols[k] = solve_stage(problem, budgets[k], minw, hi, **kw)
            W[k] = hi = sols[k].widths
    return W, sols


def solve_problem(problem: Problem, targets, *, method: str = "bottom_up",
                  solver: str | None = None, costs: str = "exact",
                  eps: float = 0.01, multiple_of: int = 1,
                  time_limit: float = 60.0, workers: int = 2,
                  shortcut: bool = True, tangent_cuts: bool = False,
                  include_full: bool = True,
                  verbose: bool = False) -> KnapsackResult:
    """Slicing points for nested subnetworks within the given budgets.

    Args:
      problem: groups (with sorted importance) and cost terms.
      targets: ``{resource: [budgets...]}``, fractions of the full cost in
        (0, 1] or absolute costs (numbers above 1), strictly decreasing, e.g.
        ``{"macs": [1.0, 0.75, 0.5, 0.25]}``; several resources give each
        subnetwork a budget per resource. A peak resource's budgets
        (``problem.peaks``, e.g. activation memory) are limits, constraints
        of the stage, not budgets to trade: non-increasing. Subnetwork 0 is
        the full network (prepended when the first budget is not the full
        cost), unless ``include_full=False``.
      method: "bottom_up", "top_down" or "joint".
      solver: stage solver. costs="exact": "fptas" (chain DP, (1 - eps)
        guarantee, default for one resource), "dp" (exact chain DP, integer
        importance), "cp-sat" (default for several resources), "ip" (the
        paper's Appendix A.1 integer program), "brute_force".
        costs="paper": "fptas" (Hertrich & Skutella's profit DP on rounded
        profits, default), "knapsack" (OR-Tools branch and bound; exact,
        but on the paper's shapes it often cannot prove optimality within
        ``time_limit``: all units of a group weigh the same), "cp-sat",
        "dp" (integer importance), "brute_force". For method="joint" it is the
        solver of the two heuristics that warm-start CP-SAT.
      costs: "exact" (bilinear, real cost) or "paper" (equation 1).
      eps: the FPTAS / chain DP accuracy.
      multiple_of: slicing points are multiples of this (SIMD width), or the
        full width.
      time_limit: seconds per CP-SAT / OR-Tools stage, building its model
        included (joint: the whole solve, heuristics and relaxation
        included); > 0. In a CP-SAT child process (see ``_isolate``) it is
        also a hard deadline.
      workers: CP-SAT worker threads.
      shortcut: chain DP (costs="exact", solver="fptas"): return the
        Lagrangian solution when it already proves the (1 - eps) guarantee;
        False always runs the rounded DP.
      tangent_cuts: method="joint": add the concave tangent cuts of the
        importance to the CP-SAT model (see ``cpsat._profit_vars``).
      include_full: False: the first budgets' subnetwork is the largest one
        (it may be below the full network, e.g. targets [0.6, 0.3] or a
        memory limit the full network exceeds) and it is solved like the
        others; True (default): subnetwork 0 is always the full network.
      verbose: print each stage as it is solved (and CP-SAT's log).
    """
    t0 = time.perf_counter()
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {type(problem).__name__}.")
    n_additive = (sum(1 for r in targets if not problem.is_peak(r))
                  if isinstance(targets, dict) else 1)
    solver = _check_options(problem, method, costs, solver, eps, multiple_of,
                            n_additive, time_limit)
    budgets = resolve_targets(problem, targets, multiple_of=multiple_of,
                              include_full=include_full)
    if problem.importance_unit == 0:
        raise ValueError(
            "Importance is zero for every unit of every group, so no plan keeps "
            "more of it than another. Check the importance: for Taylor scores, "
            "accumulate more batches or check that the loss has gradients.")
    original, unit = problem, 1.0
    if solver != "dp":  # "dp" needs integer importance, as given
        # Once, before any product: the plan is the same for any scale.
        problem, unit = problem.normalized()
    if costs == "paper":
        for r in budgets[0]:
            floor = _eq1_floor(problem, r, multiple_of)
            if budgets[-1][r] < floor:
                full = problem.full_cost(r)
                raise ValueError(
                    f"Budget {budgets[-1][r]:g} {r} is below what equation 1 "
                    f"(costs='paper') charges the smallest network: the smallest "
                    f"feasible budget is {floor:g} = {floor / full:.4f} of the full "
                    f"{r}. Use costs='exact' or a larger budget.")
    kw = dict(costs=costs, solver=solver, eps=eps, multiple_of=multiple_of,
              time_limit=time_limit, workers=workers, shortcut=shortcut)
    bound, details = None, {}
    if method in ("bottom_up", "top_down"):
        W, sols = _heuristic(problem, budgets, method, **kw)
    else:
        W, sols, bound, details = _joint(problem, budgets, kw, time_limit, workers,
                                         multiple_of, verbose, tangent_cuts)
    for k, use, g, w, wider in low_budget_use(problem, W, budgets, costs,
                                              multiple_of):
        warnings.warn(
            f"Subnetwork {k} uses only {100 * use:.1f} % of its budget although "
            f"wider slicing points fit (group '{g}' could grow from {w} to "
            f"{wider} within every budget); solver '{solver}' stopped short "
            "(status " + (sols[k].status if sols[k] is not None else "?") + "). "
            "Try another solver or a longer time_limit.", RuntimeWarning,
            stacklevel=2)
    if unit != 1.0:
        bound = None if bound is None else bound * unit
        details = _scaled_details(details, unit)
    stages = [_stage_report(original, k, budgets[k], W[k], sols[k], costs, unit)
              for k in range(len(budgets))]
    if verbose:
        for s in stages:
            print(f"subnetwork {s.index}: {s.status} objective {s.objective:.6g} "
                  f"cost {s.cost} ({s.seconds:.2f} s)")
    widths = {g.name: tuple(int(v) for v in W[:, i])
              for i, g in enumerate(problem.groups)}
    return KnapsackResult(widths, stages, method, solver, costs, eps,
                          time.perf_counter() - t0, bound, details)


def _scaled_details(details, unit):
    """The joint solver's bounds and objectives back in units of importance."""
    out = dict(details)
    for key in ("cp_sat_bound", "relaxation_bound", "cp_sat_objective"):
        if out.get(key) is not None:
            out[key] = out[key] * unit
    if "heuristics" in out:
        out["heuristics"] = {m: v * unit for m, v in out["heuristics"].items()}
    return out


def _joint(problem, budgets, kw, time_limit, workers, multiple_of, verbose,
           tangent_cuts=False):
    """Joint nested CP-SAT, hinted with bottom-up and top-down (exact costs).

    The proven bound is the smaller of CP-SAT's bound and the sum over
    subnetworks of each stage's own bound without nesting (a relaxation of
    the nested problem), from the chain DP's Lagrangian / rounding bound.
    """
    if kw["costs"] != "exact":
        raise ValueError("method='joint' optimizes exact costs; use costs='exact'.")
    # time_limit bounds the whole joint solve: the heuristics and the
    # relaxation get a tenth each at most, CP-SAT what is left.
    deadline = time.perf_counter() + time_limit
    left = lambda: max(0.05, deadline - time.perf_counter())
    additive, _ = split_budgets(problem, budgets[0])
    n_res = len(additive)
    hkw = dict(kw, time_limit=time_limit / 10)
    if hkw["solver"] in ("ip", "brute_force"):
        hkw["solver"] = "fptas" if n_res <= 1 else "cp-sat"
    cands = []
    for m in ("bottom_up", "top_down"):
        W, _ = _heuristic(problem, budgets, m, **hkw)
        cands.append(W)
    # Relaxation bound: every stage on its own, no nesting.
    minw = problem.min_widths(multiple_of)
    full = problem.full_widths
    relax = 0.0
    first = first_solved(problem, budgets)
    for k in range(first, len(budgets)):
        if n_res <= 1:
            add, limits = split_budgets(problem, budgets[k])
            (r, b), = add.items() or [(None, None)]
            sol = chain.chain_dp(problem, r, b, minw, full, eps=kw["eps"] or 0.001,
                                 multiple_of=multiple_of, limits=limits)
        else:
            sol = cpsat.stage(problem, budgets[k], minw, full, multiple_of=multiple_of,
                              time_limit=min(left(), time_limit / 10), workers=workers)
        relax += sol.bound
    # CP-SAT stops a little after max_time_in_seconds, and its answer still
    # has to come back from the child process: keep a margin for both (the
    # benchmark saw 61.3 s for time_limit=60 without it, on a busy machine).
    margin = min(2.0, 0.03 * time_limit)
    W, status, cp_bound, secs = cpsat.joint(problem, budgets, multiple_of=multiple_of,
                                            time_limit=max(0.05, left() - margin),
                                            workers=workers,
                                            hints=cands, log=verbose,
                                            tangent_cuts=tangent_cuts, first=first)
    if W is not None:
        cands.append(W)
    score = lambda M: sum(problem.objective(w) for w in M[first:])
    best = max(cands, key=score)
    bound = relax if cp_bound is None else min(relax, cp_bound)
    tot = score(best)
    st = "OPTIMAL" if bound - tot <= 1e-9 * abs(bound) else "FEASIBLE"
    sols = [None] * first + [StageSolution(best[k], problem.objective(best[k]), st,
                                           secs, None)
                             for k in range(first, len(budgets))]
    details = {"cp_sat_status": status, "cp_sat_bound": cp_bound,
               "relaxation_bound": relax, "cp_sat_seconds": secs,
               "heuristics": {"bottom_up": score(cands[0]), "top_down": score(cands[1])},
               "cp_sat_objective": None if W is None else score(W)}
    return best, sols, bound, details
