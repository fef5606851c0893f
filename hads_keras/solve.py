"""From a model and importance scores to a plan: the slicing points.

    plan = hads_keras.solve(model, importance, mac_targets=[1.0, .75, .5, .25])
    print(plan)                       # slicing points, MACs and params per subnetwork
    print(plan.info["report"])        # per stage: budget, cost, importance kept, status

`solve` builds the knapsack problem of `hads_keras.knapsack` from the
model's groups (`hads_keras.graph`) and exact costs (`hads_keras.costs`),
runs the chosen method and returns a `Plan` that carries the unit order
(most important first): `hads_keras.apply(model, plan)` permutes by it.
"""

import dataclasses
import math
import numbers

import numpy as np

from hads_keras import _keras_compat
from hads_keras import costs as costs_lib
from hads_keras import graph as graph_lib
from hads_keras import importance as importance_lib
from hads_keras import knapsack
from hads_keras import latency_budget
from hads_keras import memory as memory_lib
from hads_keras.plan import Plan, largest_info


def build_problem(model, importance, min_width=1, keep=()):
    """The knapsack `Problem` of a model: sorted importance and cost terms.

    Groups named in `keep` (or holding a layer named there) are fixed at
    their full width: not items of the problem, their costs constant.

    Returns:
        (problem, order): `order[group]` maps sorted position -> unit index.
    """
    problem, order, _ = _problem(model, importance, min_width, keep)
    return problem, order


def _problem(model, importance, min_width, keep, memory=False):
    network = _keras_compat.unwrap(model)
    analysis = graph_lib.analyze(network, keep)
    kept = {g.name: g.width for g in analysis.groups if g.kept}
    scores = {name: values for name, values in importance_lib.as_scores(importance).items()
              if name not in kept}
    sliceable = analysis.sliceable
    names = [g.name for g in sliceable]
    unknown = sorted(set(scores) - set(names))
    if unknown:
        raise ValueError(
            f"Importance names groups {unknown} that the model does not slice; "
            f"sliceable groups: {names}.")
    narrowest = min(sliceable, key=lambda g: g.width, default=None)
    if narrowest is not None and min_width > narrowest.width:
        raise ValueError(
            f"min_width={min_width} exceeds group '{narrowest.name}', which has "
            f"{narrowest.width} units; give min_width <= {narrowest.width} (the "
            "narrowest group's width).")
    specs, order = [], {}
    for group in sliceable:
        if group.name not in scores:
            raise ValueError(f"No importance for group '{group.name}'; got groups {sorted(scores)}.")
        values = np.asarray(scores[group.name], dtype=np.float64)
        if values.shape != (group.width,):
            raise ValueError(
                f"Importance of group '{group.name}' has shape {values.shape}; "
                f"the group has {group.width} units.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"Importance of group '{group.name}' has NaN/inf values.")
        if np.any(values < 0):
            unit = int(np.flatnonzero(values < 0)[0])
            raise ValueError(
                f"Importance of group '{group.name}' is negative at unit {unit} "
                f"({values[unit]:g}); importance must be >= 0 (Taylor scores are "
                "absolute values): pass abs(scores).")
        order[group.name] = np.argsort(-values, kind="stable")
        specs.append(knapsack.GroupSpec(
            group.name, values[order[group.name]], min_width))
    peaks = tuple(memory_lib.memory_terms(network, keep)) if memory else ()
    problem = knapsack.Problem(tuple(specs), tuple(costs_lib.cost_terms(analysis)),
                               peaks)
    return problem, order, kept


def solve(model, importance, mac_targets=None, *, param_targets=None,
          latency_targets=None, latency_table=None,
          memory_limit=None, include_full=None,
          method="bottom_up", solver=None, costs="exact", min_width=1,
          multiple_of=1, eps=0.01, time_limit=60.0, verbose=False, keep=()):
    """Slicing points of nested subnetworks within MAC, parameter and
    latency budgets and an activation-memory limit.

    Args:
        model: the trained model (Keras/HADS layers, or a NestedModel).
        importance: a `TaylorImportance` callback after `fit`, or a dict group
            -> scores (`l1_importance`, `random_importance`, ...).
        mac_targets: a list of budgets, strictly decreasing: numbers in
            (0, 1] are fractions of the full model's MACs, numbers above 1
            absolute MACs (so 1.5 means 1.5 MACs, and is refused as below
            any network's cost). Subnetwork 0 is the full network, added in
            front when the first budget is below the full cost:
            `[1.0, .75, .5, .25]` and `[.75, .5, .25]` both give four
            subnetworks (see `include_full` for the exceptions).
        param_targets: the same for parameters (optional, may be combined).
        latency_targets: the same for latency, measured in `latency_table`:
            fractions in (0, 1] of the full network's latency, absolute
            numbers in the table's unit, or strings with a unit ("20ms",
            "1.2e6 instructions"; a time needs a table in microseconds).
            Alone or with MAC / parameter targets (every budget holds for
            its subnetwork).
        latency_table: a `hads_keras.latency.LatencyTable` or the path of its
            JSON file, made for this model (refused otherwise); needed with
            `latency_targets`. The chain DP solves latency alone exactly per
            table entry; with other targets CP-SAT is used.
        memory_limit: peak activation memory in bytes that every subnetwork
            must fit (one number), or one limit per budget (a list, non-
            increasing): the bytes TFLite Micro's planner needs for the
            tensors live at once in the int8 model (`hads_keras.memory`;
            the arena adds its persistent tail on top). Alone (no other
            targets) it gives one subnetwork: the best one that fits.
        include_full: whether subnetwork 0 is the full network. None
            (default): when it fits `memory_limit`, else the first budget's
            subnetwork is the largest; False: always the first budget's
            (`mac_targets=[0.6, 0.3]` gives two subnetworks, the largest at
            60 % MACs); True: always (an error when `memory_limit` excludes
            it). A plan whose subnetwork 0 is below the model is `reduced`:
            `hads_keras.apply` keeps only the units it uses.
        method: "bottom_up" (the paper's default), "top_down" or "joint".
        solver, costs, eps, time_limit: see `hads_keras.knapsack.solve_problem`.
        min_width: smallest slicing point of every group, an integer >= 1
            and at most the narrowest group's width (the original code uses
            2).
        multiple_of: slicing points are multiples of this SIMD width (or the
            full width).
        keep: names of groups (or of layers in them) to keep whole: the plan
            gives them their full width in every subnetwork; their costs
            still count.

    Returns:
        A `Plan` with the unit order, the costs per subnetwork and, in
        `plan.info`, the solver report.
    """
    targets = {}
    if mac_targets is not None:
        targets["macs"] = _budget_list(mac_targets, "mac_targets")
    if param_targets is not None:
        targets["params"] = _budget_list(param_targets, "param_targets")
    if isinstance(min_width, bool) or not isinstance(min_width, numbers.Integral) \
            or min_width < 1:
        raise ValueError(
            f"min_width must be an integer >= 1 (every subnetwork keeps at least "
            f"one unit per group), got {min_width!r}.")
    min_width = int(min_width)
    table = _latency_table(latency_targets, latency_table)
    if table is not None:
        targets["latency"] = latency_budget.latency_budgets(latency_targets, table)
    if include_full not in (None, True, False):
        raise ValueError(f"include_full must be None, True or False, got {include_full!r}.")
    if memory_limit is not None:
        count = len(next(iter(targets.values()))) if targets else 1
        targets[memory_lib.RESOURCE] = _memory_limits(memory_limit, count)
    if not targets:
        raise ValueError("Give mac_targets, param_targets, latency_targets and/or "
                         "memory_limit, e.g. mac_targets=[1.0, 0.75, 0.5, 0.25].")
    problem, order, kept = _problem(model, importance, min_width, keep,
                                    memory=memory_limit is not None)
    if table is not None:
        problem = dataclasses.replace(problem, tables=tuple(table.terms(model, keep)))
    if memory_limit is not None:
        include_full = _check_memory_limits(
            model, problem, targets[memory_lib.RESOURCE], multiple_of, include_full,
            min_width)
    include_full = True if include_full is None else include_full
    if solver is None and costs == "exact" and not _is_chain(problem, targets):
        # Merges and squeeze-and-excite blocks couple groups that are not
        # neighbours: the chain DP does not apply, CP-SAT does.
        solver = "cp-sat"

    def run(targets):
        return knapsack.solve_problem(
            problem, targets, method=method, solver=solver, costs=costs, eps=eps,
            multiple_of=multiple_of, time_limit=time_limit, verbose=verbose,
            include_full=include_full)

    result = run(targets)
    if memory_limit is not None:
        result, targets = _fit_planner(model, problem, targets, result, run,
                                       multiple_of, kept)
    widths = {name: list(result.widths[name]) for name in order}
    return _plan(model, problem, widths, order, kept, info={
        "method": method, "solver": result.solver, "costs": costs,
        "targets": targets, "include_full": include_full, "report": str(result),
        "kept": sorted(kept)}, table=table)


def _plan(model, problem, widths, order, kept, info, table=None):
    """The `Plan` of solved widths: costs per subnetwork (with the peak
    activation memory when the problem has it), the model's widths and the
    "largest" summary when subnetwork 0 is below the model."""
    sub_costs = costs_lib.evaluate_per_subnetwork(problem.terms, widths)
    count = len(sub_costs)
    if table is not None:  # in the table's unit, as measured (not rounded)
        for k, cost in enumerate(sub_costs):
            cost[latency_budget.RESOURCE] = problem.cost(
                {g: w[k] for g, w in widths.items()}, latency_budget.RESOURCE)
    widths.update({name: [width] * count for name, width in kept.items()})
    full = {g.name: g.width for g in problem.groups}
    full.update(kept)
    if problem.peaks:
        for k, cost in enumerate(sub_costs):
            cost[memory_lib.RESOURCE] = memory_lib.planned_arena(
                model, {g: w[k] for g, w in widths.items()})
    if any(widths[g][0] < full[g] for g in widths):
        full_costs = costs_lib.evaluate(problem.terms, full)
        if problem.peaks:
            full_costs[memory_lib.RESOURCE] = memory_lib.planned_arena(model)
        info["largest"] = largest_info({g: w[0] for g, w in widths.items()}, full,
                                       sub_costs[0], full_costs)
    if table is not None:
        info["latency"] = latency_budget.info(table)
    return Plan(widths, costs=sub_costs, order=order, info=info, full_widths=full)


# Re-solves allowed when TFLite Micro's greedy planner needs more than the
# tensors live at once (gaps when widths fall and rise again).
_PLANNER_ROUNDS = 4


def _fit_planner(model, problem, targets, result, run, multiple_of, kept):
    """The knapsack bounds the tensors live at once; TFLite Micro's greedy
    planner may leave gaps and need more. Each subnetwork whose simulated
    planner arena (`memory.planned_arena`) exceeds its limit gets its limit
    lowered by the excess (and the later ones with it) and the plan is
    solved again. Returns (result, targets) once every subnetwork fits."""
    resource = memory_lib.RESOURCE
    limits = list(targets[resource])
    floor = problem.cost(problem.min_widths(multiple_of), resource)
    for _ in range(_PLANNER_ROUNDS):
        count = len(next(iter(result.widths.values())))
        first = count - len(limits)  # 1 when the full network was prepended
        over = {}
        for k in range(count):
            widths = {g: w[k] for g, w in result.widths.items()}
            widths.update(kept)
            planned = memory_lib.planned_arena(model, widths)
            limit = limits[k - first] if k >= first else math.inf
            if planned > limit:
                over[k - first] = planned - limit
        if not over:
            return result, targets
        for i, excess in over.items():
            limits[i] -= excess
        limits = [min(limits[:i + 1]) for i in range(len(limits))]
        if min(limits) < floor:
            break
        targets = dict(targets, **{resource: limits})
        result = run(targets)
    raise ValueError(
        f"No plan found whose every subnetwork fits memory_limit in TFLite "
        f"Micro's greedy memory planner after {_PLANNER_ROUNDS} rounds (it "
        "leaves gaps when widths fall and rise again); give a larger "
        "memory_limit.")


def _memory_limits(memory_limit, count):
    """memory_limit as a list of `count` byte limits, or a clear error."""
    if isinstance(memory_limit, numbers.Number) and not isinstance(memory_limit, bool):
        limits = [memory_limit] * count
    else:
        limits = _budget_list(memory_limit, "memory_limit")
        if len(limits) != count:
            raise ValueError(
                f"memory_limit lists {len(limits)} limits for {count} budgets; "
                "give one number (every subnetwork) or one limit per budget.")
    for i, v in enumerate(limits):
        if not (isinstance(v, numbers.Real) and math.isfinite(v) and v > 1):
            raise ValueError(
                f"memory_limit = {v!r} is not a number of bytes: give the "
                "activation memory the board has for the arena, e.g. "
                "memory_limit=64_000 (bytes, > 1).")
    return [float(v) for v in limits]


def _check_memory_limits(model, problem, limits, multiple_of, include_full,
                         min_width):
    """Refuses limits no subnetwork meets (naming the smallest feasible
    value) and resolves include_full=None: the full network is subnetwork 0
    when it fits the first limit."""
    resource = memory_lib.RESOURCE
    floor = problem.cost(problem.min_widths(multiple_of), resource)
    if min(limits) < floor:
        raise ValueError(
            f"memory_limit = {min(limits):,.0f} bytes is below the activation "
            f"memory of the smallest possible subnetwork (every group at its "
            f"minimum width): the smallest feasible memory_limit is "
            f"{math.ceil(floor):,} bytes. Give at least that"
            f"{', or a smaller min_width' if min_width > 1 else ''}.")
    needed = memory_lib.planned_arena(model)
    if include_full and needed > limits[0]:
        raise ValueError(
            f"include_full=True, but the full network needs {needed:,.0f} bytes "
            f"of activation memory, above memory_limit = {limits[0]:,.0f}; "
            "use include_full=None (the largest subnetwork that fits) or a "
            "larger limit.")
    return needed <= limits[0] if include_full is None else include_full


def _latency_table(latency_targets, latency_table):
    """The table, or None without latency targets; each needs the other."""
    if latency_targets is None and latency_table is None:
        return None
    if latency_table is None:
        raise ValueError(
            "latency_targets needs latency_table=: a hads_keras.latency."
            "LatencyTable or the path of its JSON file, measured for this model "
            "(e.g. on the Cortex-M4 emulator or the host).")
    if latency_targets is None:
        raise ValueError(
            "latency_table is given without latency_targets; add e.g. "
            "latency_targets=[1.0, 0.5, 0.25] (fractions of the full latency).")
    return latency_budget.load_table(latency_table)


def _is_chain(problem, targets):
    return problem.is_chain(targets)


def _budget_list(values, name):
    """`values` as a list of numbers, or a clear error (a string such as
    "0.75,0.5" would otherwise be read character by character)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"{name} must be a list of numbers, e.g. [1.0, 0.75, 0.5], got the "
            f"string {values!r}; split it first, e.g. "
            f"[float(t) for t in {values!r}.split(',')].")
    if isinstance(values, numbers.Number) or not hasattr(values, "__iter__"):
        raise TypeError(
            f"{name} must be a list of numbers, e.g. [1.0, 0.75, 0.5], got "
            f"{type(values).__name__} {values!r}; for one budget write [{values!r}].")
    out = list(values)
    for i, v in enumerate(out):
        if isinstance(v, (bool, str, bytes)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}[{i}] = {v!r} is not a number.")
    return [float(v) for v in out]


def uniform_plan(model, mac_targets=None, min_width=1, *, latency_targets=None,
                 latency_table=None, memory_limit=None, multiple_of=1):
    """The width-multiplier baseline: every group keeps the same fraction.

    For each budget the largest common fraction r whose subnetwork fits it
    is found by bisection (widths `max(min_width, floor(r * w))`). The
    budgets are those of `solve`: MAC targets (fractions of the full
    MACs), latency targets in a latency table (fractions of its full
    latency, or absolute numbers / strings with a unit), alone or together
    (one list per resource, aligned), and an activation-memory limit in
    bytes that every subnetwork must fit in TFLite Micro's planner (alone
    it gives one subnetwork). Subnetwork 0 is the full network, prepended
    when the first budget is below it, unless it exceeds `memory_limit`:
    then subnetwork 0 is the first budget's and the plan is reduced, as in
    `solve` with `include_full=None`. With `multiple_of` every width is a
    multiple of it (rounded down, at least `multiple_of`) or the full width.
    """
    network = _keras_compat.unwrap(model)
    analysis = graph_lib.analyze(network)
    terms = costs_lib.cost_terms(analysis)
    full = costs_lib.full_widths(analysis)
    budgets = {}   # resource -> (cost of widths, absolute budget per entry)
    if mac_targets is not None:
        mac_terms = [t for t in terms if t.resource == "macs"]
        macs = lambda widths: costs_lib.evaluate(mac_terms, widths)["macs"]
        budgets["macs"] = (macs, [f * macs(full) for f in _check_fractions(mac_targets)])
    table = _latency_table(latency_targets, latency_table)
    if table is not None:
        latency = table.cost
        values = [v * latency(full) if v <= 1 else v   # fractions -> the table's unit
                  for v in latency_budget.latency_budgets(latency_targets, table)]
        _check_decreasing(values, "latency_targets")
        budgets["latency"] = (latency, values)
    lengths = {r: len(b[1]) for r, b in budgets.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"uniform_plan: the target lists differ in length {lengths}; "
                         "give one budget per subnetwork in each.")
    count = next(iter(lengths.values()), 1)
    arena = None
    if memory_limit is not None:
        limit = _memory_limits(memory_limit, 1)[0]
        arena = memory_lib.arena_function(network)
        budgets[memory_lib.RESOURCE] = (arena, [limit] * count)
    if not budgets:
        raise ValueError("uniform_plan: give mac_targets, latency_targets and/or "
                         "memory_limit.")

    step = int(multiple_of)
    if step < 1:
        raise ValueError(f"multiple_of must be an integer >= 1, got {multiple_of!r}.")

    def widths_at(r):
        def aligned(w):
            width = max(min(min_width, w), int(np.floor(r * w + 1e-9)))
            return width if width == w else min(w, max(step, width - width % step))
        return {g: aligned(w) for g, w in full.items()}

    def fits(widths, k):
        return all(cost(widths) <= values[k] * (1 + 1e-12)
                   for cost, values in budgets.values())

    entries = list(range(count))
    full_fits = arena is None or arena(full) <= budgets[memory_lib.RESOURCE][1][0]
    if full_fits and not fits(full, 0):
        entries = [None] + entries       # the full network in front
    per_group = {g: [] for g in full}
    for k in entries:
        if k is None or fits(full, k):
            chosen = full
        else:
            if not fits(widths_at(0.0), k):
                name = next(r for r, (cost, values) in budgets.items()
                            if cost(widths_at(0.0)) > values[k])
                raise ValueError(
                    f"uniform_plan: budget {k} of '{name}' is below the smallest "
                    f"uniform network (every group at min_width={min_width}"
                    + (f", multiple_of={step}" if step > 1 else "") + ").")
            lo, hi = 0.0, 1.0
            for _ in range(40):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if fits(widths_at(mid), k) else (lo, mid)
            chosen = widths_at(lo)
        for g, w in chosen.items():
            per_group[g].append(min(w, per_group[g][-1]) if per_group[g] else w)
    costs = costs_lib.evaluate_per_subnetwork(terms, per_group)
    for k, cost in enumerate(costs):
        widths = {g: w[k] for g, w in per_group.items()}
        if table is not None:
            cost[latency_budget.RESOURCE] = table.cost(widths)
        if arena is not None:
            cost[memory_lib.RESOURCE] = arena(widths)
    reduced = any(w[0] < full[g] for g, w in per_group.items())
    return Plan(per_group, costs=costs, full_widths=full if reduced else None,
                info={"method": "uniform", "targets": {
                    r: values for r, (_, values) in budgets.items()}})


def _check_decreasing(values, name):
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} must be strictly decreasing; got {values}.")


def _check_fractions(targets):
    values = [float(t) for t in targets]
    if not values:
        raise ValueError("mac_targets is empty.")
    for t in values:
        if not 0 < t <= 1:
            raise ValueError(f"MAC targets must be fractions in (0, 1]; got {t}.")
    _check_decreasing(values, "MAC targets")
    return values
