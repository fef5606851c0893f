"""What a saved model or plan holds, in one table (`hads report`, see
`hads_keras.commands.report`).

    print(hads_keras.report.describe(nested))   # groups, slicing points, MACs/params
"""

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
