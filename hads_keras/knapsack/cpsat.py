"""CP-SAT models with exact (bilinear) costs: one stage, the paper's
depthwise-separable IP (Appendix A.1), and all stages jointly (nested).

CP-SAT works on integers: importance is divided by its largest score and
scaled to integers (relative rounding error about 1e-9 of the total,
whatever the scale of the scores), cost coefficients that are not integers
are scaled by 1000 and rounded up (budgets down), so a solution feasible
for CP-SAT is feasible for the exact costs. A resource with measured table
terms (latency) is scaled so that the full network costs 1e9 and every
tabulated value is rounded up: each term over-estimates by less than 1e-9
of the full cost (a 20-layer table: < 2e-8 of it, budget left unused), and
the plan stays within the exact float cost. A table term is an element
constraint on the index of its widths in their domains (a pair: on the
flat index i_in * |D_out| + i_out), exact at every allowed width.

Every linear expression is built as one ``(variables, coefficients)`` list
(:class:`_Linear`) and handed to CP-SAT once: OR-Tools 9.15's ``1 * e``
returns ``e`` itself and ``e += x`` extends ``e`` in place, so accumulating
with ``+=`` onto a shared sub-expression aliases it (a cost expression that
grows itself without end). ``time_limit`` bounds the whole call: model
building is counted against it.
"""

from __future__ import annotations

import time

import numpy as np

from hads_keras.knapsack import _isolate  # before OR-Tools: records the import order
from ortools.sat.python import cp_model  # noqa: E402

from hads_keras.knapsack.chain import StageSolution, stage_domains
from hads_keras.knapsack.problem import Problem
from hads_keras.knapsack.table import TableTerm

_STATUS = {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE",
           cp_model.INFEASIBLE: "INFEASIBLE", cp_model.UNKNOWN: "UNKNOWN",
           cp_model.MODEL_INVALID: "MODEL_INVALID"}


class _Scales:
    """Integer scaling of profits and costs shared by the models below.

    Importance is first divided by its largest score (``unit``), so the
    integer tables, and hence the plans, do not depend on its scale.
    """

    def __init__(self, problem: Problem, resources):
        self.unit = problem.importance_unit or 1.0
        top = sum(float((g.importance / self.unit).sum()) for g in problem.groups)
        self.profit = 1.0 if top == 0 else 1e9 / top
        self.cost = {}
        for r in resources:
            terms = [t for t in problem.terms if t.resource == r] + [
                t for p in problem.operators(r) for t in p.terms]
            coefs = np.array([t.coef for t in terms])
            if problem.has_tables(r):
                self.cost[r] = 1e9 / max(problem.full_cost(r), 1e-300)
            else:
                self.cost[r] = 1.0 if np.all(coefs == np.round(coefs)) else 1000.0

    def table(self, group):
        """Integer prefix sums. Increments are rounded then made
        non-increasing, so the table stays exactly concave (the tangent cuts
        remain valid) and the hint stays feasible."""
        inc = np.minimum.accumulate(
            np.round(group.importance / self.unit * self.profit))
        return [0] + [int(v) for v in np.cumsum(inc)]

    def importance(self, scaled):
        """A value of the integer objective in units of importance."""
        return scaled / self.profit * self.unit

    def coef(self, r, c):
        return int(np.ceil(c * self.cost[r] - 1e-9))

    def budget(self, r, b):
        return int(np.floor(b * self.cost[r] + 1e-9))

    def values(self, r, v):
        """Tabulated costs as integers, rounded up."""
        return [int(x) for x in np.ceil(np.asarray(v, dtype=np.float64).reshape(-1)
                                        * self.cost[r])]


class _Result:
    """Values and bound of a finished solve."""

    def __init__(self, solver):
        r = solver.ResponseProto()
        self.solution = list(r.solution)
        self.bound = solver.BestObjectiveBound()

    def Value(self, v):
        return int(self.solution[v.Index()])

    def BestObjectiveBound(self):
        return self.bound


class _Linear:
    """A linear expression as one list of (variable, coefficient), merged
    by variable; ``expr()`` builds the CP-SAT expression once (no ``+=`` on
    OR-Tools objects, which may alias shared sub-expressions)."""

    def __init__(self):
        self.coefs = {}
        self.vars = {}
        self.const = 0

    def add(self, var, coef=1):
        if coef:
            key = var.Index()
            self.vars[key] = var
            self.coefs[key] = self.coefs.get(key, 0) + int(coef)
        return self

    def add_const(self, c):
        self.const += int(c)
        return self

    def add_linear(self, other, coef=1):
        for key, var in other.vars.items():
            self.add(var, coef * other.coefs[key])
        self.const += coef * other.const
        return self

    def expr(self):
        keys = list(self.vars)
        return (cp_model.LinearExpr.weighted_sum([self.vars[k] for k in keys],
                                                 [self.coefs[k] for k in keys])
                + self.const)


def _solve(m, time_limit, workers, log=False, t0=None) -> tuple:
    """Solves ``m``; returns (status, result with Value/BestObjectiveBound).

    With ``t0`` (when the call began) the time spent building the model is
    taken off ``time_limit``."""
    s = cp_model.CpSolver()
    left = float(time_limit)
    if t0 is not None:
        left -= time.perf_counter() - t0
    s.parameters.max_time_in_seconds = max(left, 0.01)
    s.parameters.num_workers = int(workers)
    s.parameters.log_search_progress = bool(log)
    st = s.Solve(m)
    return st, _Result(s)


def _width_vars(m, problem, doms, tag):
    return [m.NewIntVarFromDomain(cp_model.Domain.FromValues([int(v) for v in d]),
                                  f"s_{g.name}_{tag}")
            for g, d in zip(problem.groups, doms)]


def _profit_vars(m, problem, sc, s, doms, tag, cuts=True):
    """v_g = P_g(s_g) by an element constraint, plus (``cuts``) the concave
    tangent cuts v_g <= P(a) + (P(b) - P(a)) / (b - a) * (s_g - a) for
    consecutive allowed a < b, which give the LP relaxation the concave
    envelope. (CP-SAT's presolve usually expands the element into a value
    encoding whose LP is at least as tight, so the cuts mainly help when it
    does not; they cost presolve time.)"""
    vs = []
    for g, sv, d in zip(problem.groups, s, doms):
        tab = sc.table(g)
        v = m.NewIntVar(min(tab[int(x)] for x in d), max(tab[int(x)] for x in d),
                        f"v_{g.name}_{tag}")
        m.AddElement(sv, tab, v)
        for a, b in (zip(d[:-1], d[1:]) if cuts else ()):
            a, b = int(a), int(b)
            # (b - a) v <= (b - a) P(a) + (P(b) - P(a)) (s - a)
            m.Add((b - a) * v <= (b - a) * tab[a] + (tab[b] - tab[a]) * (sv - a))
        vs.append(v)
    return vs


def _budget_constraints(m, problem, sc, budgets, s, doms, tag, cache):
    """cost <= budget for every additive resource, and for a peak resource
    one constraint per operator (its sum of terms <= the limit)."""
    for r, b in budgets.items():
        groups = ([p.terms for p in problem.operators(r)] if problem.is_peak(r)
                  else [problem._additive_terms(r)])
        for terms in groups:
            expr = _cost_expr(m, problem, sc, r, terms, s, doms, tag, cache)
            if not expr.vars:  # a constant operator: true or infeasible
                if expr.const > sc.budget(r, b):
                    raise ValueError(
                        f"Infeasible: a constant part of {r} costs more than its "
                        f"budget {b:g} whatever the widths.")
                continue
            m.Add(expr.expr() <= sc.budget(r, b))


def _cost_expr(m, problem, sc, r, terms, s, doms, tag, cache):
    """Integer cost expression (a :class:`_Linear`) of ``terms`` of resource
    r; products via multiplication equalities (shared between resources
    through ``cache``; a quadratic self term is s_g * s_g)."""
    idx = {g.name: i for i, g in enumerate(problem.groups)}
    expr = _Linear()
    for t in terms:
        if isinstance(t, TableTerm):
            _table_cost(m, problem, sc, r, t, s, doms, tag, cache, expr)
            continue
        if t.coef == 0:
            continue
        c = sc.coef(r, t.coef)
        if not t.groups:
            expr.add_const(c)
        elif len(t.groups) == 1:
            expr.add(s[idx[t.groups[0]]], c)
        else:
            i, j = sorted(idx[g] for g in t.groups)
            key = (i, j, tag)
            if key not in cache:
                hi = int(doms[i][-1]) * int(doms[j][-1])
                lo = int(doms[i][0]) * int(doms[j][0])
                p = m.NewIntVar(lo, hi, f"p_{i}_{j}_{tag}")
                m.AddMultiplicationEquality(p, [s[i], s[j]])
                # McCormick lower envelope (costs are bounded from below in
                # the relaxation, which is what the budget needs).
                li, hi_i = int(doms[i][0]), int(doms[i][-1])
                lj, hi_j = int(doms[j][0]), int(doms[j][-1])
                m.Add(p >= lj * s[i] + li * s[j] - li * lj)
                m.Add(p >= hi_j * s[i] + hi_i * s[j] - hi_i * hi_j)
                cache[key] = (p, lambda h, i=i, j=j: int(h[i]) * int(h[j]))
            expr.add(cache[key][0], c)
    return expr


def _domain_index(m, s, doms, i, tag, cache):
    """The position of s_i in its allowed widths (an element constraint)."""
    key = ("index", i, tag)
    if key not in cache:
        d = [int(v) for v in doms[i]]
        x = m.NewIntVar(0, len(d) - 1, f"i_{i}_{tag}")
        m.AddElement(x, d, s[i])
        cache[key] = (x, lambda h, d=d, i=i: d.index(int(h[i])))
    return cache[key][0]


def _table_cost(m, problem, sc, r, t, s, doms, tag, cache, expr):
    """Adds a table term's integer cost to ``expr``: its values on the
    allowed widths, rounded up, picked by the widths' domain index."""
    pos = [problem.index(g) for g in t.groups]
    vals = t.on_domains(*(doms[i] for i in pos))
    if not pos:
        expr.add_const(sc.values(r, vals)[0])
        return
    if len(pos) == 2 and pos[0] > pos[1]:  # index in network order
        pos, vals = pos[::-1], vals.T
    table = sc.values(r, vals)
    key = ("table", t.layer, r, tag)
    if len(pos) == 1:
        index = _domain_index(m, s, doms, pos[0], tag, cache)
        hint_index = lambda h: cache[("index", pos[0], tag)][1](h)
    else:
        a = _domain_index(m, s, doms, pos[0], tag, cache)
        b = _domain_index(m, s, doms, pos[1], tag, cache)
        n_b = len(doms[pos[1]])
        index = m.NewIntVar(0, len(table) - 1, f"ij_{t.layer}_{tag}")
        m.Add(index == a * n_b + b)
        ia, ib = cache[("index", pos[0], tag)][1], cache[("index", pos[1], tag)][1]
        cache[key + ("flat",)] = (index, lambda h: ia(h) * n_b + ib(h))
        hint_index = lambda h: ia(h) * n_b + ib(h)
    c = m.NewIntVar(min(table), max(table), f"t_{t.layer}_{r}_{tag}")
    m.AddElement(index, table, c)
    cache[key] = (c, lambda h: table[hint_index(h)])
    expr.add(c, 1)


def _finish(problem, solver, st, s_vars, t0, sc):
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return np.array([solver.Value(v) for v in s_vars], dtype=np.int64)


@_isolate.isolated
def stage(problem: Problem, budgets: dict, lo, hi, *, multiple_of=1,
          time_limit=60.0, workers=2, hint=None, tangent_cuts=False) -> StageSolution:
    """One stage with exact bilinear costs, any number of resources.

    ``hint`` (default ``lo``, always feasible in the drivers) is given to
    CP-SAT as a complete first solution; if CP-SAT finds nothing better
    within ``time_limit`` the hint is returned (status UNKNOWN, no bound).
    """
    t0 = time.perf_counter()
    doms = stage_domains(problem, lo, hi, multiple_of)
    sc = _Scales(problem, budgets)
    m = cp_model.CpModel()
    s = _width_vars(m, problem, doms, "0")
    v = _profit_vars(m, problem, sc, s, doms, "0", tangent_cuts)
    cache = {}
    _budget_constraints(m, problem, sc, budgets, s, doms, "0", cache)
    m.Maximize(cp_model.LinearExpr.sum(v))
    h = np.asarray(lo if hint is None else hint, dtype=np.int64)
    for g, (sv, vv, x) in enumerate(zip(s, v, h)):
        m.AddHint(sv, int(x))
        m.AddHint(vv, sc.table(problem.groups[g])[int(x)])
    for var, value in cache.values():  # products, table indices and costs
        m.AddHint(var, value(h))
    st, solver = _solve(m, time_limit, workers, t0=t0)
    w = _finish(problem, solver, st, s, t0, sc)
    if w is None:
        feasible = all(problem.cost(h, r) <= b for r, b in budgets.items())
        if not feasible:
            raise RuntimeError(f"CP-SAT stage: no solution ({_STATUS.get(st, st)}) "
                               f"within {time_limit} s; raise time_limit.")
        return StageSolution(h, problem.objective(h), _STATUS.get(st, str(st)),
                             time.perf_counter() - t0, None)
    slack = 0.5 * int(problem.full_widths.sum())  # rounding of the table
    return StageSolution(w, problem.objective(w), _STATUS[st],
                         time.perf_counter() - t0,
                         sc.importance(solver.BestObjectiveBound() + slack))


@_isolate.isolated
def depthwise_ip(problem: Problem, budgets: dict, lo, hi, *, multiple_of=1,
                 time_limit=60.0, workers=2, hint=None) -> StageSolution:
    """The paper's integer program for depthwise-separable CNNs (Appendix A.1),
    written on a :class:`Problem`.

    Binary x per unit (per allowed step), prefix implications. Depthwise
    filters are tied to the previous pointwise layer's width because they
    belong to the same group. A pointwise layer (any pair term) gets one
    variable per kernel y_ij >= x_i + x_j - 1 (input channel i, filter j),
    so its cost ``coef * sum_ij y_ij`` is exact; the first conv's filters
    and depthwise filters are linear in x. Exact, but with width^2 variables
    per layer it is slow (the paper: 19 to 90 minutes per DS-CNN S stage
    with Gurobi); the chain DP solves the same problem.
    """
    t0 = time.perf_counter()
    other = [r for r in budgets if problem.is_peak(r) or problem.has_tables(r)]
    if other:
        raise ValueError(
            f"solver='ip' (the paper's depthwise IP) counts bilinear costs only, "
            f"not peak resources or latency tables ({other}); use solver='cp-sat' "
            "or the default chain DP.")
    doms = stage_domains(problem, lo, hi, multiple_of)
    sc = _Scales(problem, budgets)
    idx = {g.name: i for i, g in enumerate(problem.groups)}
    m = cp_model.CpModel()
    xs, steps = [], []
    for gi, (g, d) in enumerate(zip(problem.groups, doms)):
        x = [m.NewBoolVar(f"x_{g.name}_{j}") for j in range(d.size - 1)]
        for j in range(1, len(x)):
            m.AddImplication(x[j], x[j - 1])
        xs.append(x)
        steps.append(np.diff(d).astype(np.int64))
    tabs = [sc.table(g) for g in problem.groups]
    obj = _Linear()
    for gi, d in enumerate(doms):
        obj.add_const(tabs[gi][int(d[0])])
        for j in range(d.size - 1):
            obj.add(xs[gi][j], tabs[gi][int(d[j + 1])] - tabs[gi][int(d[j])])
    width = []  # s_g = d[0] + sum_j step_j x_j
    for gi, d in enumerate(doms):
        w = _Linear().add_const(int(d[0]))
        for j, x in enumerate(xs[gi]):
            w.add(x, int(steps[gi][j]))
        width.append(w)
    ys = {}
    for r, b in budgets.items():
        expr = _Linear()
        for t in problem.terms:
            if t.resource != r or t.coef == 0:
                continue
            c = sc.coef(r, t.coef)
            if not t.groups:
                expr.add_const(c)
            elif len(t.groups) == 1:
                expr.add_linear(width[idx[t.groups[0]]], c)
            else:
                a, bb = (idx[g] for g in t.groups)
                ba, bb0 = int(doms[a][0]), int(doms[bb][0])
                # (ba + sum da x)(bb0 + sum db x) expanded; the cross terms
                # are the per-kernel variables.
                expr.add_linear(width[bb], c * ba)
                expr.add_linear(width[a], c * bb0)
                expr.add_const(-c * ba * bb0)
                key = (a, bb)
                if key not in ys:
                    ys[key] = {}
                    for i, xi in enumerate(xs[a]):
                        for j, xj in enumerate(xs[bb]):
                            y = m.NewBoolVar(f"y_{a}_{bb}_{i}_{j}")
                            m.Add(y >= xi + xj - 1)
                            ys[key][i, j] = y
                for (i, j), y in ys[key].items():
                    expr.add(y, c * int(steps[a][i]) * int(steps[bb][j]))
        m.Add(expr.expr() <= sc.budget(r, b))
    m.Maximize(obj.expr())
    if hint is not None:
        for gi, h in enumerate(hint):
            for j in range(len(xs[gi])):
                m.AddHint(xs[gi][j], int(doms[gi][j + 1]) <= int(h))
    st, solver = _solve(m, time_limit, workers, t0=t0)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"depthwise IP: no solution ({_STATUS.get(st, st)}) "
                           f"within {time_limit} s; raise time_limit.")
    w = np.array([int(d[0]) + sum(int(steps[gi][j]) * solver.Value(xs[gi][j])
                                  for j in range(len(xs[gi])))
                  for gi, d in enumerate(doms)], dtype=np.int64)
    slack = 0.5 * int(problem.full_widths.sum())  # rounding of the table
    return StageSolution(w, problem.objective(w), _STATUS[st],
                         time.perf_counter() - t0,
                         sc.importance(solver.BestObjectiveBound() + slack))


@_isolate.isolated
def joint(problem: Problem, budgets: list, *, multiple_of=1, time_limit=60.0,
          workers=2, hints=(), log=False, tangent_cuts=False, first=1):
    """All subnetworks in one model: widths nested (s_{g,k} <= s_{g,k-1}),
    exact bilinear costs, objective = importance kept summed over
    subnetworks. ``first=1``: ``budgets[0]`` is the full network (fixed);
    ``first=0``: subnetwork 0 is solved too (include_full=False). ``hints``
    are width matrices [n_sub, n_groups] (e.g. bottom-up and top-down plans);
    the best is given to CP-SAT as its hint.

    Returns (widths [n_sub, n_groups] or None, status, CP-SAT's bound on the
    objective of subnetworks first.., seconds).
    """
    t0 = time.perf_counter()
    full = problem.full_widths
    lo = problem.min_widths(multiple_of)
    doms = stage_domains(problem, lo, full, multiple_of)
    resources = list(budgets[0].keys())
    sc = _Scales(problem, resources)
    m = cp_model.CpModel()
    prev = None
    S, V, P = [], [], []
    for k in range(first, len(budgets)):
        s = _width_vars(m, problem, doms, str(k))
        if prev is not None:
            for a, b in zip(s, prev):
                m.Add(a <= b)
        v = _profit_vars(m, problem, sc, s, doms, str(k), tangent_cuts)
        cache = {}
        _budget_constraints(m, problem, sc, budgets[k], s, doms, str(k), cache)
        S.append(s)
        V.append(v)
        P.append(cache)
        prev = s
    m.Maximize(cp_model.LinearExpr.sum([x for v in V for x in v]))
    if hints:
        best = max(hints, key=lambda h: sum(problem.objective(w) for w in h[first:]))
        # A complete hint (widths, profits, products) is taken as a first
        # solution without search.
        for k, (s, v, cache) in enumerate(zip(S, V, P), start=first):
            for g, (sv, vv, h) in enumerate(zip(s, v, best[k])):
                m.AddHint(sv, int(h))
                m.AddHint(vv, sc.table(problem.groups[g])[int(h)])
            for var, value in cache.values():
                m.AddHint(var, value(best[k]))
    st, solver = _solve(m, time_limit, workers, log, t0=t0)
    widths, bound = None, None
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        widths = np.vstack([full] * first + [[solver.Value(v) for v in s] for s in S])
        # Each rounded increment is within 0.5 of the scaled importance.
        slack = 0.5 * int(full.sum()) * (len(budgets) - first)
        bound = sc.importance(solver.BestObjectiveBound() + slack)
    return widths, _STATUS.get(st, str(st)), bound, time.perf_counter() - t0
