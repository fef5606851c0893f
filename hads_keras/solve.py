"""From a model and importance scores to a plan: the slicing points.

    plan = hads_keras.solve(model, importance, mac_targets=[1.0, .75, .5, .25])
    print(plan)                       # slicing points, MACs and params per subnetwork
    print(plan.info["report"])        # per stage: budget, cost, importance kept, status

`solve` builds the knapsack problem of `hads_keras.knapsack` from the
model's groups (`hads_keras.graph`) and exact costs (`hads_keras.costs`),
runs the chosen method and returns a `Plan` that carries the unit order
(most important first): `hads_keras.apply(model, plan)` permutes by it.
"""

import numbers

import numpy as np

from hads_keras import _keras_compat
from hads_keras import costs as costs_lib
from hads_keras import graph as graph_lib
from hads_keras import importance as importance_lib
from hads_keras import knapsack
from hads_keras.plan import Plan


def build_problem(model, importance, min_width=1, keep=()):
    """The knapsack `Problem` of a model: sorted importance and cost terms.

    Groups named in `keep` (or holding a layer named there) are fixed at
    their full width: not items of the problem, their costs constant.

    Returns:
        (problem, order): `order[group]` maps sorted position -> unit index.
    """
    problem, order, _ = _problem(model, importance, min_width, keep)
    return problem, order


def _problem(model, importance, min_width, keep):
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
    problem = knapsack.Problem(tuple(specs), tuple(costs_lib.cost_terms(analysis)))
    return problem, order, kept


def solve(model, importance, mac_targets=None, *, param_targets=None,
          method="bottom_up", solver=None, costs="exact", min_width=1,
          multiple_of=1, eps=0.01, time_limit=60.0, verbose=False, keep=()):
    """Slicing points of nested subnetworks within MAC (and parameter) budgets.

    Args:
        model: the trained model (Keras/HADS layers, or a NestedModel).
        importance: a `TaylorImportance` callback after `fit`, or a dict group
            -> scores (`l1_importance`, `random_importance`, ...).
        mac_targets: a list of budgets, strictly decreasing: numbers in
            (0, 1] are fractions of the full model's MACs, numbers above 1
            absolute MACs (so 1.5 means 1.5 MACs, and is refused as below
            any network's cost). Subnetwork 0 is always the full network,
            added in front when the first budget is below the full cost:
            `[1.0, .75, .5, .25]` and `[.75, .5, .25]` both give four
            subnetworks.
        param_targets: the same for parameters (optional, may be combined).
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
    if not targets:
        raise ValueError("Give mac_targets and/or param_targets, e.g. mac_targets=[1.0, 0.75, 0.5, 0.25].")
    problem, order, kept = _problem(model, importance, min_width, keep)
    if solver is None and costs == "exact" and not _is_chain(problem, targets):
        # Merges and squeeze-and-excite blocks couple groups that are not
        # neighbours: the chain DP does not apply, CP-SAT does.
        solver = "cp-sat"
    result = knapsack.solve_problem(
        problem, targets, method=method, solver=solver, costs=costs, eps=eps,
        multiple_of=multiple_of, time_limit=time_limit, verbose=verbose)
    widths = {name: list(result.widths[name]) for name in order}
    sub_costs = costs_lib.evaluate_per_subnetwork(problem.terms, widths)
    count = len(sub_costs)
    widths.update({name: [width] * count for name, width in kept.items()})
    return Plan(widths, costs=sub_costs,
                order=order, info={
                    "method": method, "solver": result.solver, "costs": costs,
                    "targets": targets, "report": str(result),
                    "kept": sorted(kept)})


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


def uniform_plan(model, mac_targets, min_width=1):
    """The width-multiplier baseline: every group keeps the same fraction.

    For each target the largest common fraction r whose subnetwork fits the
    MAC budget is found by bisection (widths `max(min_width, floor(r * w))`).
    """
    network = _keras_compat.unwrap(model)
    analysis = graph_lib.analyze(network)
    terms = costs_lib.cost_terms(analysis)
    mac_terms = [t for t in terms if t.resource == "macs"]
    full = costs_lib.full_widths(analysis)
    full_macs = costs_lib.evaluate(mac_terms, full)["macs"]
    fractions = _check_fractions(mac_targets)

    def widths_at(r):
        return {g: max(min(min_width, w), int(np.floor(r * w + 1e-9))) for g, w in full.items()}

    floor = costs_lib.evaluate(mac_terms, widths_at(0.0))["macs"]
    per_group = {g: [w] for g, w in full.items()}
    for fraction in fractions[1:]:
        budget = fraction * full_macs
        if budget < floor:
            raise ValueError(
                f"MAC target {fraction} is below the smallest network "
                f"({floor / full_macs:.4f} of the full MACs at min_width={min_width}).")
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if costs_lib.evaluate(mac_terms, widths_at(mid))["macs"] <= budget:
                lo = mid
            else:
                hi = mid
        for g, w in widths_at(lo).items():
            per_group[g].append(min(w, per_group[g][-1]))
    return Plan(per_group, costs=costs_lib.evaluate_per_subnetwork(terms, per_group),
                info={"method": "uniform", "targets": {"macs": fractions}})


def _check_fractions(targets):
    values = [float(t) for t in targets]
    if not values:
        raise ValueError("mac_targets is empty.")
    for t in values:
        if not 0 < t <= 1:
            raise ValueError(f"MAC targets must be fractions in (0, 1]; got {t}.")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError(f"MAC targets must be strictly decreasing; got {values}.")
    return values if values[0] == 1.0 else [1.0] + values
