"""From a model and importance scores to a plan: the slicing points.

    plan = hads_keras.solve(model, importance, mac_targets=[1.0, .75, .5, .25])
    print(plan)                       # slicing points, MACs and params per subnetwork
    print(plan.info["report"])        # per stage: budget, cost, importance kept, status

`solve` builds the knapsack problem of `hads_keras.knapsack` from the
model's groups (`hads_keras.graph`) and exact costs (`hads_keras.costs`),
runs the chosen method and returns a `Plan` that carries the unit order
(most important first): `hads_keras.apply(model, plan)` permutes by it.
"""

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
        order[group.name] = np.argsort(-values, kind="stable")
        specs.append(knapsack.GroupSpec(
            group.name, values[order[group.name]], min(min_width, group.width)))
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
        mac_targets: budgets as fractions of the full model's MACs in (0, 1]
            (or absolute MACs), strictly decreasing. Subnetwork 0 is always
            the full network: `[1.0, .75, .5, .25]` and `[.75, .5, .25]` both
            give four subnetworks.
        param_targets: the same for parameters (optional, may be combined).
        method: "bottom_up" (the paper's default), "top_down" or "joint".
        solver, costs, eps, time_limit: see `hads_keras.knapsack.solve_problem`.
        min_width: smallest slicing point of every group (the original code
            uses 2).
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
        targets["macs"] = list(mac_targets)
    if param_targets is not None:
        targets["params"] = list(param_targets)
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
    try:
        for resource in targets:
            problem.chain(resource)
    except ValueError:
        return False
    return True


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


def add_parser(subparsers):
    """`hads solve`: importance + budgets -> plan JSON."""
    parser = subparsers.add_parser(
        "solve", help="solve the nested knapsack for a saved model",
        description="Compute slicing points for a saved .keras model.")
    parser.add_argument("model", help="a .keras model (Keras or HADS layers)")
    parser.add_argument("--importance", default="l1",
                        help="an .npz of per-group scores (keys = group names), "
                             "or 'l1' / 'random' for the baselines (default l1)")
    parser.add_argument("--mac-targets", default="1.0,0.75,0.5,0.25",
                        help="comma-separated fractions of the full MACs")
    parser.add_argument("--method", default="bottom_up",
                        choices=["bottom_up", "top_down", "joint"])
    parser.add_argument("--min-width", type=int, default=1)
    parser.add_argument("--multiple-of", type=int, default=1)
    parser.add_argument("--out", default="plan.json", help="where to write the plan")
    parser.set_defaults(func=_run_command)


def _run_command(args):
    import keras

    import hads_keras  # noqa: F401  (registers the HADS layers for loading)

    model = keras.models.load_model(args.model)
    if args.importance == "l1":
        scores = importance_lib.l1_importance(model)
    elif args.importance == "random":
        scores = importance_lib.random_importance(model)
    else:
        with np.load(args.importance) as data:
            scores = {k: data[k] for k in data.files}
    targets = [float(t) for t in args.mac_targets.split(",")]
    plan = solve(model, scores, mac_targets=targets, method=args.method,
                 min_width=args.min_width, multiple_of=args.multiple_of)
    plan.save(args.out)
    print(plan)
    print(plan.info["report"])
    print(f"plan written to {args.out}")
    return 0
