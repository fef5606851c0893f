"""`hads report`: what a saved model or plan holds, in one table.

    hads report nested.keras            # groups, slicing points, MACs/params per subnetwork
    hads report plan.json
"""

import json

from hads_keras import _keras_compat
from hads_keras import costs as costs_lib
from hads_keras import graph as graph_lib
from hads_keras.plan import Plan


def describe(model):
    """Text report of a model: its groups and, for a nested model, the plan."""
    network = _keras_compat.unwrap(model)
    lines = [f"model: {model.name}", "", "groups:", str(graph_lib.analyze(network))]
    plan = getattr(model, "plan", None)
    if plan is None:
        full = costs_lib.model_costs(network)
        lines += ["", f"no plan installed; full model: {full['macs']:,} MACs, "
                      f"{full['params']:,} parameters"]
        return "\n".join(lines)
    plan = Plan({g: plan.widths(g) for g in plan.groups},
                costs=costs_lib.subnetwork_costs(network, plan), info=plan.info)
    lines += ["", f"plan: {plan.num_subnetworks} subnetworks "
                  f"(active: {model.active_subnetwork})", str(plan)]
    if plan.info.get("report"):
        lines += ["", plan.info["report"]]
    return "\n".join(lines)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "report", help="print the groups, plan and costs of a saved model or plan",
        description="Print what a .keras model or a plan .json holds.")
    parser.add_argument("path", help="a .keras model (nested or not) or a plan .json")
    parser.set_defaults(func=_run_command)


def _run_command(args):
    if args.path.endswith(".json"):
        with open(args.path) as f:
            plan = Plan.from_dict(json.load(f))
        print(plan)
        if plan.info.get("report"):
            print(plan.info["report"])
        return 0
    import keras

    import hads_keras  # noqa: F401  (registers the HADS classes for loading)

    print(describe(keras.models.load_model(args.path)))
    return 0
