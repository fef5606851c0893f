"""Plots people look at: accuracy vs MACs and vs latency, slicing points
per layer.

Drawn with matplotlib's Agg backend (files only, no display needed).

    accuracy_vs_macs({"HADS": (macs, acc), "uniform": (macs, acc)}, "acc.png")
    accuracy_vs_macs({"HADS": (macs, acc_mean, acc_std)}, "acc.png")  # error bars
    accuracy_vs_latency({"HADS": (latencies, acc)}, "lat.png", unit="us")
    slicing_points(plan, "slicing.png")      # like HADS paper Fig. 2 (right)
"""

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def accuracy_vs_macs(curves, path, title="Accuracy vs MACs", full_macs=None):
    """One line per method: test accuracy of each subnetwork against MACs.

    Args:
        curves: mapping method name -> (macs, accuracies) or (macs,
            accuracies, standard deviations), one entry per subnetwork (any
            order); with standard deviations each point gets an error bar
            of +- one standard deviation.
        path: output image file (.png, .pdf, .svg).
        title: the plot title.
        full_macs: when given, the x axis is MACs in % of it.

    Returns:
        `path`.
    """
    return _accuracy_against(curves, path, title, "MACs", "MAC", full_macs,
                             "accuracy_vs_macs")


def accuracy_vs_latency(curves, path, unit, title="Accuracy vs latency",
                        full_latency=None, how="measured"):
    """One line per method: test accuracy of each subnetwork against its
    latency (as `accuracy_vs_macs`, with latencies in place of MACs).

    Args:
        curves: mapping method name -> (latencies, accuracies[, stds]).
        path: output image file.
        unit: the latencies' unit ("us", "instructions", "cycles").
        title: the plot title.
        full_latency: when given, the x axis is latency in % of it.
        how: how the latencies were obtained, for the axis label
            ("measured on QEMU's Cortex-M4", "predicted by the table", ...).
    """
    return _accuracy_against(curves, path, title, f"latency, {how} ({unit})",
                             "latency", full_latency, "accuracy_vs_latency")


def _accuracy_against(curves, path, title, axis_name, value_name, full, caller):
    if not curves:
        raise ValueError(f"{caller}: no curves to draw.")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    markers = "osD^v<>"
    for i, (name, curve) in enumerate(curves.items()):
        if len(curve) not in (2, 3):
            raise ValueError(
                f"{caller}: curve '{name}' must be (costs, accuracies) "
                "or (costs, accuracies, stds).")
        costs = np.asarray(curve[0], dtype=float)
        accuracies = 100 * np.asarray(curve[1], dtype=float)
        stds = None if len(curve) == 2 else 100 * np.asarray(curve[2], dtype=float)
        if costs.shape != accuracies.shape:
            raise ValueError(
                f"{caller}: curve '{name}' has {costs.size} {value_name} values "
                f"and {accuracies.size} accuracies.")
        if stds is not None and stds.shape != accuracies.shape:
            raise ValueError(
                f"{caller}: curve '{name}' has {accuracies.size} "
                f"accuracies and {stds.size} standard deviations.")
        order = np.argsort(costs)
        x = 100 * costs / full if full else costs
        marker = markers[i % len(markers)]
        if stds is None:
            axes.plot(x[order], accuracies[order], marker=marker, label=name)
        else:
            axes.errorbar(x[order], accuracies[order], yerr=stds[order],
                          marker=marker, capsize=3, label=name)
    axes.set_xlabel(f"{axis_name}, % of the full network" if full else axis_name)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def slicing_points(plan, path, title="Slicing points per layer"):
    """Active units of every group in every subnetwork (bars per group).

    The HADS paper's Figure 2 (right): for each layer (group), the fraction
    of its units each subnetwork keeps, so one sees where the solver cut.

    Args:
        plan: a `hads_keras.Plan`.
        path: output image file.

    Returns:
        `path`.
    """
    plt = _pyplot()
    groups = plan.groups
    count = plan.num_subnetworks
    figure, axes = plt.subplots(figsize=(max(6, 0.9 * len(groups) + 2), 4.6))
    width = 0.8 / count
    positions = np.arange(len(groups))
    labels = []
    for k in range(count):
        label = f"subnetwork {k}"
        if plan.costs and "macs" in plan.costs[k]:
            share = plan.costs[k]["macs"] / max(plan.costs[0]["macs"], 1)
            label += f" ({100 * share:.0f} % MACs)"
        labels.append(label)
        fractions = [100 * plan.widths(g)[k] / plan.full_width(g) for g in groups]
        bars = axes.bar(positions + (k - (count - 1) / 2) * width, fractions,
                        width, label=label)
        for bar, g in zip(bars, groups):
            axes.annotate(str(plan.widths(g)[k]),
                          (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=6)
    axes.set_xticks(positions)
    axes.set_xticklabels(groups, rotation=30, ha="right")
    axes.set_ylabel("active units (% of the layer)")
    axes.set_ylim(0, 110)
    axes.set_title(title)
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3),
                ncol=2, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
