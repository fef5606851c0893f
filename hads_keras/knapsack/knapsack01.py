"""0/1 knapsack with prefix constraints: the paper's equation 1.

Items come in *chains* (one per group): item ``j + 1`` of a chain may only
be packed if item ``j`` is (units are sorted by importance, a subnetwork keeps
a prefix). An item here is a *step* between two allowed slicing points (one
unit, or a block of ``multiple_of`` units). Every solver returns the number
of packed steps per chain.

Solvers:
  * ``brute_force``: enumerates all prefix combinations (tests only).
  * ``dp``: exact profit-indexed dynamic program of Hertrich & Skutella,
    f(p, i) = minimum weight reaching profit >= p with the first i items,
    processed chain by chain (a chain picks a prefix length, which is the
    same as taking its items one by one under the prefix constraint).
    Needs integer profits. O(n * sum of profits).
  * ``fptas``: the same DP on profits rounded down to multiples of
    ``K = eps * LB / n`` (LB: a feasible greedy solution's profit, >= the
    largest single item that fits, so this K is no smaller than the
    textbook ``eps * p_max / n``). Each packed item loses less than K, so
    the result is >= OPT - n K >= (1 - eps) OPT.
  * ``knapsack``: OR-Tools' branch-and-bound knapsack solver (exact on
    profits scaled to integers, several resources allowed). It knows no
    prefix constraints; when all steps of a chain have the same weights (always
    true for equation 1, where a unit's weight depends on its group only)
    any packed set can be replaced by the prefix of the same size, which
    weighs the same and is worth at least as much.
  * ``cp-sat``: booleans with implications x_{j+1} => x_j; several resources.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np

STATUS_OPTIMAL = "OPTIMAL"
STATUS_FEASIBLE = "FEASIBLE"
_MAX_PROFIT_LEVELS = 50_000_000  # the exact DP's table, 400 MB of float64


@dataclasses.dataclass
class Chain:
    """Steps of one group: ``profits[j]`` >= 0 and ``weights[j, r]`` >= 0."""

    profits: np.ndarray
    weights: np.ndarray  # [n_steps, n_resources]

    def __post_init__(self):
        self.profits = np.asarray(self.profits, dtype=np.float64).reshape(-1)
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[:, None]
        self.weights = w
        if w.shape[0] != self.profits.size:
            raise ValueError(
                f"Chain has {self.profits.size} profits but {w.shape[0]} weights.")
        if np.any(self.profits < 0) or np.any(w < 0):
            raise ValueError("Chain profits and weights must be >= 0.")

    @property
    def n(self) -> int:
        return int(self.profits.size)


@dataclasses.dataclass
class KnapsackSolution:
    counts: np.ndarray  # packed steps per chain
    profit: float
    status: str
    seconds: float
    bound: float | None = None  # proven upper bound on the optimum, if known


def _as_capacity(capacity, n_res):
    cap = np.atleast_1d(np.asarray(capacity, dtype=np.float64))
    if cap.size != n_res:
        raise ValueError(f"Expected {n_res} capacities, got {cap.size}.")
    return cap


def _evaluate(chains, counts):
    profit = sum(float(c.profits[:k].sum()) for c, k in zip(chains, counts))
    weight = sum(c.weights[:k].sum(axis=0) for c, k in zip(chains, counts))
    return profit, weight


def _n_res(chains):
    return chains[0].weights.shape[1] if chains else 1


def brute_force(chains, capacity) -> KnapsackSolution:
    """Tries every combination of prefix lengths (exponential; tests only)."""
    t0 = time.perf_counter()
    cap = _as_capacity(capacity, _n_res(chains))
    combos = np.array(list(itertools.product(*[range(c.n + 1) for c in chains])),
                      dtype=np.int64).reshape(-1, len(chains))
    profit = np.zeros(len(combos))
    weight = np.zeros((len(combos), cap.size))
    for ci, c in enumerate(chains):
        cp = np.concatenate([[0.0], np.cumsum(c.profits)])
        cw = np.vstack([np.zeros((1, cap.size)), np.cumsum(c.weights, axis=0)])
        profit += cp[combos[:, ci]]
        weight += cw[combos[:, ci]]
    ok = np.all(weight <= cap, axis=1)
    if not ok.any():
        raise ValueError("Infeasible: even the empty packing exceeds the capacity.")
    best = int(np.flatnonzero(ok)[np.argmax(profit[ok])])
    counts = combos[best]
    p, _ = _evaluate(chains, counts)
    return KnapsackSolution(counts, p, STATUS_OPTIMAL, time.perf_counter() - t0, p)


def greedy(chains, capacity) -> np.ndarray:
    """Feasible packing: repeatedly packs the next step of highest density."""
    cap = _as_capacity(capacity, _n_res(chains))
    counts = np.zeros(len(chains), dtype=np.int64)
    used = np.zeros_like(cap)
    scale = np.where(cap > 0, cap, 1.0)
    while True:
        best, best_c = -1.0, -1
        for ci, c in enumerate(chains):
            k = counts[ci]
            if k >= c.n or np.any(used + c.weights[k] > cap):
                continue
            w = float(np.max(c.weights[k] / scale))
            d = np.inf if w == 0 else c.profits[k] / w
            if d > best:
                best, best_c = d, ci
        if best_c < 0:
            return counts
        used = used + chains[best_c].weights[counts[best_c]]
        counts[best_c] += 1


def dantzig_bound(chains, capacity) -> float:
    """Upper bound on the optimum (one resource).

    The LP relaxation solved greedily by density (Dantzig) when densities are
    non-increasing along every chain (then the prefix constraints hold in the
    LP optimum); otherwise the sum of all profits.
    """
    cap = float(_as_capacity(capacity, 1)[0])
    total = float(sum(c.profits.sum() for c in chains))
    items = []
    for c in chains:
        w = c.weights[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(w > 0, c.profits / np.where(w > 0, w, 1), np.inf)
        if np.any(np.diff(d) > 1e-12 * np.abs(d[:-1])):
            return total
        items.extend(zip(d, c.profits, w))
    items.sort(key=lambda x: -x[0])
    bound, room = 0.0, cap
    for d, p, w in items:
        if w <= room:
            bound, room = bound + p, room - w
        else:
            return bound + p * room / w
    return bound


def _profit_dp(chains, capacity, scaled, ptop=None):
    """Min-weight DP over rounded profits (one resource).

    ``scaled[c]`` are the integer profits of chain c's steps; f[p] is the
    least weight reaching rounded profit *at least* p. ``ptop`` caps the
    profit axis: valid whenever no feasible packing has rounded profit above
    it (then f[ptop] still only ever selects feasible packings exactly).
    Returns the counts of the packing with the largest rounded profit.
    """
    cap = float(_as_capacity(capacity, 1)[0])
    total = int(sum(int(s.sum()) for s in scaled))
    ptop = total if ptop is None else min(total, int(ptop))
    inf = np.inf
    f = np.full(ptop + 1, inf)
    f[0] = 0.0
    choices = []
    for c, s in zip(chains, scaled):
        cum_p = np.concatenate([[0], np.cumsum(s)]).astype(np.int64)
        cum_w = np.concatenate([[0.0], np.cumsum(c.weights[:, 0])])
        best = f.copy()  # k = 0
        choice = np.zeros(ptop + 1, dtype=np.int32)
        for k in range(1, c.n + 1):
            if cum_w[k] > cap:
                break
            pk = min(int(cum_p[k]), ptop + 1)
            # f_new[p] = f[max(p - pk, 0)] + w_k  ("profit at least p").
            cand = np.empty(ptop + 1)
            if pk > 0:
                cand[:pk] = f[0]
                cand[pk:] = f[:ptop + 1 - pk]
            else:
                cand[:] = f
            cand += cum_w[k]
            better = cand < best
            best[better] = cand[better]
            choice[better] = k
        f = best
        choices.append((choice, cum_p))
    feasible = np.flatnonzero(f <= cap)
    p = int(feasible[-1])
    counts = np.zeros(len(chains), dtype=np.int64)
    for ci in range(len(chains) - 1, -1, -1):
        choice, cum_p = choices[ci]
        k = int(choice[p])
        counts[ci] = k
        p = max(p - min(int(cum_p[k]), ptop + 1), 0)
    return counts


def dp(chains, capacity) -> KnapsackSolution:
    """Exact profit-indexed DP (Hertrich & Skutella). Integer profits only."""
    t0 = time.perf_counter()
    if _n_res(chains) != 1:
        raise ValueError("solver='dp' handles one resource; use solver='cp-sat' "
                         "or 'knapsack' for several.")
    for c in chains:
        if np.any(c.profits != np.round(c.profits)):
            raise ValueError(
                "solver='dp' needs integer profits (importance); use "
                "solver='fptas' (1 - eps guarantee) or 'knapsack' instead.")
    top = float(np.floor(dantzig_bound(chains, capacity) + 1e-9))
    if top > _MAX_PROFIT_LEVELS:
        raise ValueError(
            f"solver='dp' would need a table of {top:.3g} profit levels (one per "
            "unit of integer importance up to the optimum); use solver='fptas' "
            "(1 - eps guarantee) or 'cp-sat' for large importance values.")
    scaled = [np.round(c.profits).astype(np.int64) for c in chains]
    counts = _profit_dp(chains, capacity, scaled, int(top))
    profit, _ = _evaluate(chains, counts)
    return KnapsackSolution(counts, profit, STATUS_OPTIMAL,
                            time.perf_counter() - t0, profit)


def fptas(chains, capacity, eps: float) -> KnapsackSolution:
    """(1 - eps)-approximation: the DP on profits rounded to multiples of K.

    K = eps * LB / n, n = number of items, LB = profit of a greedy feasible
    packing (<= OPT). Each of at most n packed items loses < K to rounding,
    so profit >= OPT - n K >= (1 - eps) OPT. The profit axis is cut at
    U / K with U the Dantzig bound, so the DP costs O(n^2 U / (eps LB)).
    """
    t0 = time.perf_counter()
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}.")
    if _n_res(chains) != 1:
        raise ValueError("solver='fptas' handles one resource; use solver='cp-sat' "
                         "or 'knapsack' for several.")
    g = greedy(chains, capacity)
    lb, _ = _evaluate(chains, g)
    n = sum(c.n for c in chains)
    if lb <= 0 or n == 0:
        # No single step with positive profit fits: the empty packing is optimal.
        return KnapsackSolution(g, lb, STATUS_OPTIMAL, time.perf_counter() - t0, lb)
    k = eps * lb / n
    ub = dantzig_bound(chains, capacity)
    cap_levels = int(np.floor(ub / k)) + 1
    scaled = [np.floor(c.profits / k).astype(np.int64) for c in chains]
    # A feasible packing's rounded profit is at most ub / k: cut the axis there.
    counts = _profit_dp(chains, capacity, scaled, cap_levels)
    profit, _ = _evaluate(chains, counts)
    if profit < lb:
        counts, profit = g, lb
    bound = min(ub, profit / (1 - eps))
    return KnapsackSolution(counts, profit, STATUS_FEASIBLE,
                            time.perf_counter() - t0, bound)


def _integer_profits(chains):
    """Profits as integers for OR-Tools, scaled so that they sum to about
    2**40 (relative rounding error 2**-41 per item, whatever the scale of
    the importance: profits are divided by the largest one first).

    Returns (integer profits, importance per integer step, exact) where
    ``exact`` says small integer profits were kept as they are.
    """
    total = float(sum(float(c.profits.sum()) for c in chains))
    if total == 0:
        return [np.zeros(c.n, dtype=np.int64) for c in chains], 1.0, True
    if all(np.all(c.profits == np.round(c.profits)) for c in chains) and total < 2 ** 50:
        return [c.profits.astype(np.int64) for c in chains], 1.0, True
    unit = max(float(c.profits.max(initial=0.0)) for c in chains)
    steps = 2.0 ** 40 / sum(float((c.profits / unit).sum()) for c in chains)
    return ([np.round(c.profits / unit * steps).astype(np.int64) for c in chains],
            unit / steps, False)


def _integer_weights(chains, cap):
    """Integer weights/capacities; non-integer weights are scaled and rounded
    up (capacities down), so every packing feasible here is feasible."""
    allw = np.concatenate([c.weights for c in chains]) if chains else np.zeros((0, 1))
    if np.all(allw == np.round(allw)):
        return [c.weights.astype(np.int64) for c in chains], np.floor(cap).astype(np.int64)
    s = 1000.0
    return ([np.ceil(c.weights * s - 1e-9).astype(np.int64) for c in chains],
            np.floor(cap * s).astype(np.int64))


def ortools_knapsack(chains, capacity, time_limit: float = 60.0) -> KnapsackSolution:
    """OR-Tools' multidimensional branch-and-bound knapsack solver."""
    from ortools.algorithms.python import knapsack_solver as ks

    t0 = time.perf_counter()
    n_res = _n_res(chains)
    cap = _as_capacity(capacity, n_res)
    for ci, c in enumerate(chains):
        if c.n > 1 and np.any(c.weights != c.weights[0]):
            raise ValueError(
                f"solver='knapsack' needs equal step weights within a chain (chain "
                f"{ci}); use solver='cp-sat' or 'dp'/'fptas'.")
    iprof, per_step, exact = _integer_profits(chains)
    iw, icap = _integer_weights(chains, cap)
    values = np.concatenate(iprof).tolist() if chains else []
    weights = [np.concatenate([w[:, r] for w in iw]).tolist() for r in range(n_res)]
    solver = ks.KnapsackSolver(
        ks.SolverType.KNAPSACK_MULTIDIMENSION_BRANCH_AND_BOUND_SOLVER, "hads")
    solver.set_time_limit(float(time_limit))
    solver.init(values, weights, icap.tolist())
    solver.solve()
    status = STATUS_OPTIMAL if solver.is_solution_optimal() else STATUS_FEASIBLE
    counts, pos = np.zeros(len(chains), dtype=np.int64), 0
    for ci, c in enumerate(chains):
        # Equal weights within the chain: take the prefix of the same size.
        counts[ci] = sum(solver.best_solution_contains(pos + j) for j in range(c.n))
        pos += c.n
    profit, _ = _evaluate(chains, counts)
    slack = 0.0 if exact else sum(c.n for c in chains) * per_step
    return KnapsackSolution(counts, profit, status, time.perf_counter() - t0,
                            profit + slack if status == STATUS_OPTIMAL else None)


def cpsat(chains, capacity, time_limit: float = 60.0, workers: int = 2,
          hint=None) -> KnapsackSolution:
    """CP-SAT with prefix implications; any number of resources."""
    from hads_keras.knapsack import _isolate
    return _isolate.isolated(_cpsat)(chains, capacity, time_limit=time_limit,
                                     workers=workers, hint=hint)


def _cpsat(chains, capacity, time_limit: float = 60.0, workers: int = 2,
          hint=None) -> KnapsackSolution:
    """CP-SAT with prefix implications; any number of resources."""
    from ortools.sat.python import cp_model

    from hads_keras.knapsack.cpsat import _solve

    t0 = time.perf_counter()
    n_res = _n_res(chains)
    cap = _as_capacity(capacity, n_res)
    iprof, per_step, _ = _integer_profits(chains)
    iw, icap = _integer_weights(chains, cap)
    m = cp_model.CpModel()
    xs = []
    for ci, c in enumerate(chains):
        x = [m.NewBoolVar(f"x{ci}_{j}") for j in range(c.n)]
        for j in range(1, c.n):
            m.AddImplication(x[j], x[j - 1])
        xs.append(x)
    flat = [x for xc in xs for x in xc]
    # One weighted sum per expression (never += on OR-Tools objects).
    for r in range(n_res):
        m.Add(cp_model.LinearExpr.weighted_sum(
            flat, [int(iw[ci][j, r]) for ci in range(len(chains))
                   for j in range(chains[ci].n)]) <= int(icap[r]))
    m.Maximize(cp_model.LinearExpr.weighted_sum(
        flat, [int(iprof[ci][j]) for ci in range(len(chains))
               for j in range(chains[ci].n)]))
    if hint is not None:
        for ci, k in enumerate(hint):
            for j in range(chains[ci].n):
                m.AddHint(xs[ci][j], j < k)
    st, solver = _solve(m, time_limit, workers, t0=t0)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT found no packing (status {st}).")
    counts = np.array([sum(solver.Value(v) for v in x) for x in xs], dtype=np.int64)
    profit, _ = _evaluate(chains, counts)
    status = STATUS_OPTIMAL if st == cp_model.OPTIMAL else STATUS_FEASIBLE
    slack = 0.5 * sum(c.n for c in chains)  # rounding of the scaled profits
    return KnapsackSolution(counts, profit, status, time.perf_counter() - t0,
                            (solver.BestObjectiveBound() + slack) * per_step)


def solve(chains, capacity, solver: str = "knapsack", *, eps: float = 0.01,
          time_limit: float = 60.0, hint=None) -> KnapsackSolution:
    """Dispatches to one of the solvers above by name."""
    if solver == "dp":
        return dp(chains, capacity)
    if solver == "fptas":
        return fptas(chains, capacity, eps)
    if solver == "knapsack":
        return ortools_knapsack(chains, capacity, time_limit)
    if solver == "cp-sat":
        return cpsat(chains, capacity, time_limit, hint=hint)
    if solver == "brute_force":
        return brute_force(chains, capacity)
    raise ValueError(
        f"Unknown solver '{solver}' for equation 1; choose one of 'knapsack', "
        "'cp-sat', 'dp', 'fptas', 'brute_force'.")
