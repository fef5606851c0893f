"""Stage solver with exact (bilinear) costs for chain-structured networks.

One stage: choose a slicing point ``s_g`` per group, within bounds
``lo_g <= s_g <= hi_g`` (bottom-up: the previous, smaller subnetwork;
top-down: the previous, larger one), maximizing the importance kept
``sum_g P_g(s_g)`` (``P_g`` the prefix sums, concave) subject to the exact
cost ``C + sum_g b_g s_g + sum_g a_g s_g s_{g+1} <= B``.

Algorithm (``chain_dp``), with its guarantee:

1. A Lagrangian relaxation of the budget: for a multiplier ``lam`` the
   chain DP ``max sum_g P_g(s_g) - lam * cost(s)`` with state = the previous
   group's slicing point costs O(width^2) per group. Bisection on ``lam``
   gives a feasible solution (lower bound LB) and the dual upper bound UB.
   If already LB >= (1 - eps) UB, LB carries the guarantee and is returned
   (the usual case at eps = 0.01; ``shortcut=False`` skips this).
2. A DP over groups whose state is (slicing point, rounded *loss*), storing
   the least exact cost: the loss of group g at width s is
   ``P_g(hi_g) - P_g(s)``, rounded up to a multiple of ``K = eps * LB / G``
   (G = groups with a choice). The transition
   ``min_s f[s, q] + a_g s t`` is done for all (s, t, q) with NumPy.
   The returned solution loses at most G*K more than the optimum:
   **profit >= OPT - eps * LB >= (1 - eps) OPT**. With integer importance
   and ``K = 1`` (``eps = 0``) the DP is exact. Only loss levels up to
   ``(sum_g P_g(hi_g) - LB) / K + G`` are kept (anything beyond is worse
   than LB): Q = G (T - LB) / (eps LB) + G levels, T = sum_g P_g(hi_g),
   small because a stage's optimum loses only part of the importance.
   Time O(sum_g |S_g| |S_{g+1}| Q), memory O(sum_g |S_g| Q).

Costs are counted exactly (float64 holds integer costs < 2**53 exactly).
One resource per call; several resources need solver='cp-sat'.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np

from hads_keras.knapsack.problem import Problem, allowed_widths


@dataclasses.dataclass
class StageSolution:
    widths: np.ndarray
    profit: float
    status: str
    seconds: float
    bound: float | None = None  # proven upper bound on the stage optimum


def stage_domains(problem: Problem, lo, hi, multiple_of: int = 1):
    """Allowed slicing points of every group within [lo_g, hi_g]."""
    out = []
    for g, l, h in zip(problem.groups, lo, hi):
        a = allowed_widths(g, multiple_of)
        a = a[(a >= l) & (a <= h)]
        if a.size == 0:
            raise ValueError(
                f"Group '{g.name}': no slicing point allowed in [{l}, {h}] "
                f"(multiple_of={multiple_of}).")
        out.append(a)
    return out


def brute_force(problem: Problem, budgets: dict, lo, hi, multiple_of: int = 1):
    """Enumerates every combination of slicing points (tests only)."""
    t0 = time.perf_counter()
    doms = stage_domains(problem, lo, hi, multiple_of)
    best, best_w = -np.inf, None
    for combo in itertools.product(*doms):
        if all(problem.cost(combo, r) <= b for r, b in budgets.items()):
            p = problem.objective(combo)
            if p > best:
                best, best_w = p, np.array(combo)
    if best_w is None:
        raise ValueError("Infeasible stage: no combination fits the budget.")
    return StageSolution(best_w, best, "OPTIMAL", time.perf_counter() - t0, best)


class _Chain:
    """The stage in arrays: domains, profits, and the cost of the one
    additive resource as node costs (a function of one width) and edge costs
    (a function of two neighbouring widths). Peak limits forbid widths and
    pairs: ``node_pen`` / ``edge_pen`` are 0 where allowed, -inf where not.
    ``resource=None``: no additive budget, only limits."""

    def __init__(self, problem, resource, lo, hi, multiple_of, limits=None):
        self.doms = stage_domains(problem, lo, hi, multiple_of)
        self.prof = [g.prefix[d] for g, d in zip(problem.groups, self.doms)]
        self.G = len(self.doms)
        if resource is None:
            self.const = 0.0
            self.node = [np.zeros(d.size) for d in self.doms]
            self.edge = [np.zeros((a.size, b.size))
                         for a, b in zip(self.doms[:-1], self.doms[1:])]
        else:
            self.const, self.node, self.edge = problem.chain_costs(resource,
                                                                   self.doms)
        node_ok = [np.ones(d.size, dtype=bool) for d in self.doms]
        edge_ok = [np.ones(e.shape, dtype=bool) for e in self.edge]
        for r, limit in (limits or {}).items():
            n_ok, e_ok = problem.peak_masks(r, limit, self.doms)
            node_ok = [a & b for a, b in zip(node_ok, n_ok)]
            edge_ok = [a & b for a, b in zip(edge_ok, e_ok)]
        self.node_ok, self.edge_ok = node_ok, edge_ok
        self.node_pen = [np.where(ok, 0.0, -np.inf) for ok in node_ok]
        self.edge_pen = [np.where(ok, 0.0, -np.inf) for ok in edge_ok]

    def cost(self, idx):
        c = self.const + sum(float(n[i]) for n, i in zip(self.node, idx))
        return c + sum(float(e[i, j]) for e, i, j in zip(self.edge, idx[:-1], idx[1:]))

    def allowed(self, idx):
        return (all(ok[i] for ok, i in zip(self.node_ok, idx))
                and all(ok[i, j] for ok, i, j in zip(self.edge_ok, idx[:-1], idx[1:])))

    def profit(self, idx):
        return float(sum(p[i] for p, i in zip(self.prof, idx)))

    def best_path(self, node_value, edge_value):
        """argmax over allowed paths of sum node_value + sum edge_value
        (exact DP, O(S^2) per group); returns (indices, value)."""
        v = node_value[0] + self.node_pen[0]
        back = []
        for g in range(1, self.G):
            m = v[:, None] + edge_value[g - 1] + self.edge_pen[g - 1]
            arg = np.argmax(m, axis=0)
            v = m[arg, np.arange(m.shape[1])] + node_value[g] + self.node_pen[g]
            back.append(arg)
        idx = [int(np.argmax(v))]
        for g in range(self.G - 1, 0, -1):
            idx.append(int(back[g - 1][idx[-1]]))
        return idx[::-1], float(np.max(v))

    def lagrangian(self, lam):
        """argmax sum P - lam * cost over the allowed chain."""
        idx, val = self.best_path([p - lam * n for p, n in zip(self.prof, self.node)],
                                  [-lam * e for e in self.edge])
        return idx, val - lam * self.const

    def cheapest(self):
        """The allowed widths of least cost (None if no widths are allowed)."""
        idx, val = self.best_path([-n for n in self.node], [-e for e in self.edge])
        return (idx if np.isfinite(val) else None)


def _lagrangian_bounds(ch: _Chain, budget: float, iters: int = 40):
    """Best feasible solution seen and the dual bound, by bisection on lam."""
    lo_idx = ch.cheapest()  # feasible: checked by the caller
    best_idx, best = lo_idx, ch.profit(lo_idx)
    ub = np.inf
    idx, val = ch.lagrangian(0.0)
    ub = min(ub, val)
    if ch.cost(idx) <= budget:
        return idx, ch.profit(idx), ch.profit(idx)
    # Upper end: a multiplier large enough to make the smallest widths
    # optimal, searched from the average importance per unit of cost (so the
    # search does not depend on the units of importance or cost).
    top = sum(float(p[-1] - p[0]) for p in ch.prof)
    span = ch.cost(idx) - ch.cost(lo_idx)
    hi_lam = top / span if top > 0 and span > 0 else 1.0
    for _ in range(200):
        idx, val = ch.lagrangian(hi_lam)
        ub = min(ub, val + hi_lam * budget)
        if ch.cost(idx) <= budget:
            break
        hi_lam *= 4.0
    if ch.cost(idx) <= budget and ch.profit(idx) > best:
        best_idx, best = idx, ch.profit(idx)
    lo_lam = 0.0
    for _ in range(iters):
        if hi_lam - lo_lam <= 1e-7 * hi_lam:
            break
        lam = 0.5 * (lo_lam + hi_lam)
        idx, val = ch.lagrangian(lam)
        ub = min(ub, val + lam * budget)
        if ch.cost(idx) <= budget:
            hi_lam = lam
            if ch.profit(idx) > best:
                best_idx, best = idx, ch.profit(idx)
        else:
            lo_lam = lam
    return best_idx, best, ub


def chain_dp(problem: Problem, resource: str | None, budget: float | None, lo, hi,
             *, eps: float = 0.01, multiple_of: int = 1, shortcut: bool = True,
             max_cells: int = 400_000_000,
             limits: dict | None = None) -> StageSolution:
    """(1 - eps)-optimal stage with exact costs on a chain (see module doc).

    ``resource``/``budget``: the one additive resource traded against
    importance (None: none, only ``limits``). ``limits``: ``{peak resource:
    limit}``, constraints on single widths and neighbouring pairs (exact).

    ``eps = 0`` asks for the exact optimum and needs integer importance.
    ``shortcut``: when the Lagrangian solution already has
    ``LB >= (1 - eps) UB`` it carries the guarantee and is returned without
    the rounded DP (the usual case at eps = 0.01: the Lagrangian gap of
    these problems is a few 1e-4); ``False`` always runs the DP.
    """
    t0 = time.perf_counter()
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1), got {eps}.")
    original = problem
    unit = 1.0
    if resource is not None and problem.has_tables(resource):
        # Measured costs are floats, summed here in another order than
        # Problem.cost sums them: a relative margin far below any
        # measurement's precision keeps the plan within the exact cost too.
        budget = budget * (1 - 1e-12)
    if eps > 0:
        # Importance / its largest score: the same plan for any scale of the
        # scores (the exact DP, eps = 0, counts integer importance as it is).
        problem, unit = problem.normalized()
    sol = _chain_dp(problem, resource, budget, lo, hi, eps, multiple_of,
                    shortcut, max_cells, limits)
    return StageSolution(sol.widths, original.objective(sol.widths), sol.status,
                         time.perf_counter() - t0,
                         None if sol.bound is None else sol.bound * unit)


def _chain_dp(problem, resource, budget, lo, hi, eps, multiple_of, shortcut,
              max_cells, limits=None) -> StageSolution:
    t0 = time.perf_counter()
    ch = _Chain(problem, resource, lo, hi, multiple_of, limits)
    integer = eps == 0 and all(np.all(p == np.round(p)) for p in ch.prof)
    if eps == 0 and not integer:
        raise ValueError(
            "eps=0 (exact DP) needs integer importance; use eps > 0 for the "
            "(1 - eps) guarantee, or solver='cp-sat'.")
    cheapest = ch.cheapest()
    if cheapest is None:
        raise ValueError(
            f"Stage infeasible: no widths in [{list(map(int, lo))}, "
            f"{list(map(int, hi))}] keep every operator within the limits "
            f"{limits}.")
    if resource is None:  # only limits: the best allowed widths, exactly
        idx, _ = ch.lagrangian(0.0)
        w = np.array([d[i] for d, i in zip(ch.doms, idx)])
        return StageSolution(w, ch.profit(idx), "OPTIMAL", time.perf_counter() - t0,
                             ch.profit(idx))
    if ch.cost(cheapest) > budget:
        raise ValueError(
            f"Stage infeasible: the cheapest allowed widths cost "
            f"{ch.cost(cheapest):g} > budget {budget:g} ({resource}).")
    lb_idx, lb, ub = _lagrangian_bounds(ch, budget)
    n_var = sum(1 for d in ch.doms if d.size > 1)
    top = sum(float(p[-1]) for p in ch.prof)
    if n_var == 0 or lb >= ub - 1e-12 * abs(ub) or lb >= top:
        w = np.array([d[i] for d, i in zip(ch.doms, lb_idx)])
        return StageSolution(w, lb, "OPTIMAL", time.perf_counter() - t0, lb)
    if shortcut and eps > 0 and lb >= (1 - eps) * ub:
        w = np.array([d[i] for d, i in zip(ch.doms, lb_idx)])
        return StageSolution(w, lb, "FEASIBLE", time.perf_counter() - t0, ub)
    if eps == 0:
        k = 1.0
    else:
        # lb > 0 here unless the smallest widths keep no importance; then
        # ub > lb = 0 (else the test above returned).
        k = eps * (lb if lb > 0 else ub) / n_var
    qmax = int(np.floor((top - lb) / k + 1e-9)) + n_var
    cells = sum(a.size * b.size for a, b in zip(ch.doms[:-1], ch.doms[1:])) * (qmax + 1)
    if cells > max_cells:
        raise ValueError(
            f"chain DP table too large ({cells:.2e} cells at eps={eps}); "
            "use a larger eps or solver='cp-sat'.")
    # Rounded-up loss of every allowed width.
    r = [np.ceil((p[-1] - p) / k - 1e-9).astype(np.int64) for p in ch.prof]
    Q = qmax + 1
    inf = np.inf
    qs = np.arange(Q)
    # Costs with forbidden widths and pairs at +inf (never the minimum).
    node = [n - pen for n, pen in zip(ch.node, ch.node_pen)]
    edge = [e - pen for e, pen in zip(ch.edge, ch.edge_pen)]
    f = np.where(qs[None, :] >= r[0][:, None], (ch.const + node[0])[:, None], inf)
    f[f > budget] = inf
    fs = [f]
    for g in range(1, ch.G):
        e = edge[g - 1]
        n_s, n_t = e.shape
        h = np.empty((n_t, Q))
        # h[t, q] = min_s f[s, q] + edge[s, t], in chunks of t to bound memory.
        chunk = max(1, int(2_000_000 // max(1, n_s * Q)))
        for j in range(0, n_t, chunk):
            h[j:j + chunk] = np.min(f[None, :, :] + e.T[j:j + chunk, :, None], axis=1)
        fn = np.full((n_t, Q), inf)
        for ti in range(n_t):
            rt = int(r[g][ti])
            if rt < Q:
                fn[ti, rt:] = h[ti, :Q - rt] + node[g][ti]
        fn[fn > budget] = inf
        f = fn
        fs.append(f)
    col = f.min(axis=0)
    ok = np.flatnonzero(col <= budget)
    if ok.size == 0:
        idx = lb_idx
    else:
        q = int(ok[0])
        ti = int(np.argmin(f[:, q]))
        idx = [ti]
        for g in range(ch.G - 1, 0, -1):
            q -= int(r[g][ti])
            ti = int(np.argmin(fs[g - 1][:, q] + edge[g - 1][:, ti]))
            idx.append(ti)
        idx = idx[::-1]
        if ch.profit(idx) < lb:
            idx = lb_idx
    profit = ch.profit(idx)
    assert ch.cost(idx) <= budget and ch.allowed(idx)
    bound = min(ub, profit + n_var * k) if ok.size else ub
    exact = integer and k == 1.0
    status = "OPTIMAL" if exact or bound - profit <= 1e-12 * abs(bound) else "FEASIBLE"
    w = np.array([d[i] for d, i in zip(ch.doms, idx)])
    return StageSolution(w, profit, status, time.perf_counter() - t0,
                         profit if exact else bound)
