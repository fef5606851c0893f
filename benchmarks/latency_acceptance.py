"""Latency budgets on DS-CNN S and L, measured afterwards on the Cortex-M4 (QEMU).

Issue 16's acceptance. For each model (hads_keras.models, Keras' default
initialization with seed 0, importance = L1 norm of each unit's weights
with BN folded, `hads_keras.importance.l1_importance`):

1. measures the model's latency table on QEMU mps2-an386 (Cortex-M4F,
   -icount shift=0: instructions, exact to 40 per operator) with the
   latency probe (`hads_keras.latency_probe.measure_qemu`), and the time
   that takes;
2. solves a MAC plan (100/75/50/25 % MACs) and a latency plan (100/75/50/25
   % of the table's full latency), then measures every subnetwork of both
   afterwards on QEMU: all operators back to back at the plan's widths
   (`measure_subnetworks_qemu`), one count per subnetwork;
3. reports measured latency / target (the acceptance: within 2 %);
4. solves a latency plan at exactly the MAC plan's *measured* latencies and
   compares the importance both keep at equal measured latency (the
   acceptance: the latency plan keeps at least as much);
5. how well a table interpolates: 10 random subnetworks (seed 0), the
   table's total against the measured one, for grids of 5 and 9 widths per
   group, widths aligned to 4 and not.

Widths are multiples of 4 (grid and plans, `--multiple_of`): the DSP
kernels' cost of an unaligned width differs from its neighbours' by a few %
(remainder loops), more than interpolation can follow; aligned, 9 grid
points per group interpolate within 0.1 % (docs/latency_tables.md). The
plans' table measures every aligned width (`--points all`, the default), so
the solver sees no interpolation error at all, only the probe's timer
resolution (40 instructions per read).

    python benchmarks/latency_acceptance.py [--models s,l] [--points all|9]
"""

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import provenance  # noqa: E402

SOURCES = ["benchmarks/latency_acceptance.py", "benchmarks/latency_probe",
           "benchmarks/cortex_m4/startup.c", "benchmarks/cortex_m4/semihost.c",
           "benchmarks/cortex_m4/semihost.h", "benchmarks/cortex_m4/timer.h",
           "benchmarks/cortex_m4/mps2_an386.ld", "tflm_ops/hads_latency_probe.h",
           "tflm_ops/hads_latency_probe.cc", "tflm_ops/hads_kernels.h",
           "tflm_ops/hads_kernels.cc", "tflm_ops/hads_kernels_dsp.h",
           "tflm_ops/hads_kernels_dsp.cc", "hads_keras/latency_probe.py",
           "hads_keras/latency.py", "hads_keras/knapsack", "hads_keras/solve.py",
           "hads_keras/importance.py", "hads_keras/models.py"]
COMMAND = "python benchmarks/latency_acceptance.py"
MAC_TARGETS = [1.0, 0.75, 0.5, 0.25]
LATENCY_TARGETS = [1.0, 0.75, 0.5, 0.25]
TOLERANCE = 0.02


def subnetworks(plan):
    return [{g: plan.width(g, k) for g in plan.groups} for k in range(plan.num_subnetworks)]


def kept_importance(plan, scores):
    """Per subnetwork: the importance of the units it keeps."""
    return [float(sum(scores[g][plan.order[g][:plan.width(g, k)]].sum()
                      for g in plan.groups if g in scores))
            for k in range(plan.num_subnetworks)]


def summarize(plan, scores, measured, full_measured):
    return {"widths": {g: list(plan.widths(g)) for g in plan.groups},
            "macs": [c["macs"] for c in plan.costs],
            "measured_instructions": measured,
            "measured_fraction": [m / full_measured for m in measured],
            "importance_kept": kept_importance(plan, scores)}


INTERPOLATION_GRIDS = [  # (points per group, alignment of grid and widths)
    (9, 1), (5, 4), (9, 4)]


def random_subnetworks(full, align, count=10, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for fraction in np.linspace(1.0, 0.2, count):
        out.append({g: min(w, max(align, int(round(w * fraction * rng.uniform(0.8, 1.2)
                                                   / align)) * align))
                    for g, w in full.items()})
    return out


def interpolation(model, full):
    """Table total / measured total - 1 at random subnetworks, per grid."""
    from hads_keras import latency_probe

    rows = []
    for points, align in INTERPOLATION_GRIDS:
        table = latency_probe.measure_qemu(model, points=points, minimum=align,
                                           multiple_of=align)
        fixed = {g.name for g in latency_probe.latency._analysis(model).groups if g.fixed}
        subs = random_subnetworks({g: w for g, w in full.items() if g not in fixed}, align)
        measured = latency_probe.measure_subnetworks_qemu(model, subs)
        errors = [table.cost(dict(full, **s)) / m - 1 for s, m in zip(subs, measured)]
        rows.append({"points": points, "align": align, "errors": errors,
                     "max_abs_error": max(map(abs, errors))})
        print(f"  interpolation, {points} widths per group, aligned to {align}: "
              f"max |table / measured - 1| = {100 * rows[-1]['max_abs_error']:.2f} %")
    return rows


def run_model(size, args):
    import keras

    import hads_keras as hads
    from hads_keras import importance, latency_probe, models

    keras.utils.set_random_seed(0)
    model = models.get_model("ds_cnn", size)
    scores = {g: s for g, s in importance.l1_importance(model).items()}
    grid = {"points": args.points, "minimum": args.multiple_of,
            "multiple_of": args.multiple_of}
    solve_kw = {"multiple_of": args.multiple_of, "min_width": args.multiple_of,
                "eps": args.eps}

    start = time.perf_counter()
    table = latency_probe.measure_qemu(model, **grid)
    table_seconds = time.perf_counter() - start
    full = latency_probe.latency._full_widths(model)
    table_full = table.cost(full)
    grid_points = sum(t.values.size for t in table.layers.values())

    mac_plan = hads.solve(model, scores, mac_targets=MAC_TARGETS, **solve_kw)
    measured = latency_probe.measure_subnetworks_qemu(model, [full] + subnetworks(mac_plan))
    full_measured, mac_measured = measured[0], measured[1:]
    out = {"model": f"ds_cnn_{size}", "table": {
        "seconds": table_seconds, "grid": grid, "measured_points": grid_points,
        "layers": len(table.layers), "constant": table.constant,
        "full_latency_table": table_full, "full_latency_measured": full_measured},
        "mac_plan": summarize(mac_plan, scores, mac_measured, full_measured)}
    out["mac_plan"]["targets"] = MAC_TARGETS
    # What the table predicts for the MAC plan: at its own measured latency
    # it is feasible for a latency plan only if this is <= 1.
    out["mac_plan"]["table_over_measured"] = [
        table.cost(dict(full, **s)) / m for s, m in zip(subnetworks(mac_plan), mac_measured)]
    print(f"\nds_cnn_{size}: table of {len(table.layers)} layers, {grid_points} points, "
          f"{table_seconds:.1f} s; full latency table {table_full:.0f}, measured "
          f"{full_measured:.0f} instructions")
    out["interpolation"] = interpolation(model, full)
    _print_plan("MAC plan", out["mac_plan"])

    try:
        lat_plan = hads.solve(model, scores, latency_targets=LATENCY_TARGETS,
                              latency_table=table, **solve_kw)
    except TypeError as error:  # solve() without latency budgets (issue 16, H1)
        out["latency_plan"] = f"not run: {error}"
        print(f"latency plan not run: {error}")
        return out
    lat_measured = latency_probe.measure_subnetworks_qemu(model, subnetworks(lat_plan))
    targets = [t * table_full for t in LATENCY_TARGETS]
    out["latency_plan"] = summarize(lat_plan, scores, lat_measured, full_measured)
    out["latency_plan"].update({
        "targets": LATENCY_TARGETS, "target_instructions": targets,
        "measured_over_target": [m / t for m, t in zip(lat_measured, targets)],
        "within_tolerance": all(m <= t * (1 + TOLERANCE) for m, t in zip(lat_measured, targets))})
    _print_plan("latency plan", out["latency_plan"], targets)

    # At equal measured latency: the MAC plan's measured instructions as
    # (absolute) latency budgets; subnetwork 0 is the full network in both.
    equal_targets = [1.0] + mac_measured[1:]
    eq_plan = hads.solve(model, scores, latency_targets=equal_targets, latency_table=table,
                         **solve_kw)
    eq_measured = latency_probe.measure_subnetworks_qemu(model, subnetworks(eq_plan))
    eq = summarize(eq_plan, scores, eq_measured, full_measured)
    mac_kept = out["mac_plan"]["importance_kept"]
    eq.update({"targets": equal_targets,
               "measured_over_mac_plan": [m / r for m, r in zip(eq_measured, mac_measured)],
               "importance_over_mac_plan": [a / b for a, b in zip(eq["importance_kept"],
                                                                  mac_kept)],
               "keeps_at_least_as_much": all(a >= b * (1 - 1e-12) for a, b in
                                             zip(eq["importance_kept"], mac_kept))})
    out["latency_plan_at_mac_plan_latency"] = eq
    _print_plan("latency plan at the MAC plan's measured latency", eq, mac_measured)
    print("importance kept / MAC plan's: " +
          " ".join(f"{r:.4f}" for r in eq["importance_over_mac_plan"]))
    return out


def _print_plan(title, entry, targets=None):
    print(f"  {title}:")
    for k, (m, imp) in enumerate(zip(entry["measured_instructions"], entry["importance_kept"])):
        line = (f"    k={k} MACs {entry['macs'][k]:>9} measured {m:>10.0f} instr "
                f"({100 * entry['measured_fraction'][k]:5.1f} %) importance {imp:.2f}")
        if targets:
            line += f" target {targets[k]:.0f} ({100 * (m / targets[k] - 1):+.2f} %)"
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="s,l", help="DS-CNN sizes (default s,l)")
    parser.add_argument("--points", default="all",
                        help="grid widths per group, or 'all' (default): every "
                             "multiple of --multiple_of, no interpolation")
    parser.add_argument("--multiple_of", type=int, default=4,
                        help="width alignment of the grid and the plans")
    parser.add_argument("--eps", type=float, default=0.001,
                        help="solver accuracy of every plan: (1 - eps) OPT per stage")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "latency_acceptance.json"))
    args = parser.parse_args()
    args.points = args.points if args.points == "all" else int(args.points)
    results = {"platform": "qemu-system-arm -M mps2-an386 -icount shift=0 (Cortex-M4F), "
                           "HADS DSP kernels, -Os",
               "importance": "l1_importance of the Keras-initialized model (seed 0)",
               "tolerance": TOLERANCE, "eps": args.eps,
               "models": [run_model(size, args) for size in args.models.split(",")]}
    provenance.stamp(results, SOURCES, COMMAND)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
