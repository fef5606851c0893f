"""Times the knapsack solvers on problems with the paper's model shapes.

Problems are synthetic (hads_keras.knapsack.shapes: DNN S/L, CNN S/L,
DS-CNN S/L with random sorted importance), 4 subnetworks at 100/75/50/25 %
MACs. For each model and method it records the median wall time of the
whole plan, the importance kept, each subnetwork's exact MACs / budget
(budget use), solver status and proven gaps; then compares exact costs
with the paper's equation 1. Prints a table and writes JSON.

    python benchmarks/knapsack.py                       # everything (~15 min)
    python benchmarks/knapsack.py --models=DS-CNN-L --joint_time=60
    # equation 1's solvers side by side (the costs="paper" default):
    python benchmarks/knapsack.py --methods=/paper/ \
        --out=benchmarks/results/knapsack_paper.json
    # latency budgets from a latency table (DS-CNN L, knapsack_latency.json):
    python benchmarks/knapsack.py --latency

The latency case solves DS-CNN L under latency targets 100/75/50/25 %
with a table on a grid of widths (``--grid_points`` per group). Until the
Cortex-M4 QEMU tables exist it builds the table from a cost model of the
HADS int8 kernels (``cost_model``: instructions per MAC by kind, as
benchmarks/kernels.py measured them roughly - depthwise 7, pointwise and
dense 2, first conv 3 - input channels counted in SIMD blocks of 4, plus a
per-output and a per-call overhead), so the table is not bilinear and the
grid interpolates it; the JSON says so. It records per stage the solve
time (median over --repeats), the table cost / budget, the cost model at
the plan's widths / budget (what the grid misses), and the MAC-budget plan
against the latency plan at equal table latency.
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dataclasses  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402

from hads_keras.knapsack import shapes, solve_problem  # noqa: E402
from hads_keras.knapsack.table import TableTerm  # noqa: E402
from benchmarks import provenance  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["DNN-S", "DNN-L", "CNN-S", "CNN-L", "DS-CNN-S", "DS-CNN-L"],
                  "Models to run.")
flags.DEFINE_integer("repeats", 5, "Repeats of the fast (DP) plans; the median is reported.")
flags.DEFINE_float("eps", 0.01, "FPTAS / chain DP accuracy.")
flags.DEFINE_float("joint_time", 60.0, "Time limit of the joint CP-SAT solve (s).")
flags.DEFINE_float("stage_time", 10.0,
                   "Time limit per stage of OR-Tools knapsack / CP-SAT stages (s).")
flags.DEFINE_float("ip_time", 20.0, "Time limit per stage of the depthwise IP (s).")
flags.DEFINE_list("ip_models", ["DS-CNN-S"], "Models on which to run the depthwise IP.")
flags.DEFINE_list("methods", [], "Only runs whose key contains one of these.")
flags.DEFINE_bool("tangent_cuts", False, "Also run the joint model with tangent cuts.")
flags.DEFINE_bool("slow", True, "Also run OR-Tools knapsack, CP-SAT stages, IP, joint.")
flags.DEFINE_integer("seed", 0, "Seed of the random importance.")
flags.DEFINE_string("out", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "results", "knapsack.json"),
                    "JSON output (with --latency: results/knapsack_latency.json).")
flags.DEFINE_bool("latency", False,
                  "Run the latency-table case on DS-CNN L instead (see the docstring).")
flags.DEFINE_integer("grid_points", 9, "Latency case: grid widths per group.")

TARGETS = {"macs": [1.0, 0.75, 0.5, 0.25]}


def _summary(r, times, stage_times):
    return {
        "median_s": statistics.median(times), "times_s": times,
        # per stage, the median over the repeats (the machine is shared and noisy)
        "stage_s_median": [statistics.median(t) for t in zip(*stage_times)],
        "objective": r.total_objective(),
        "budget_use": [s.budget_use("macs") for s in r.stages[1:]],
        "macs_pct": [100 * s.cost["macs"] / s.full_cost["macs"] for s in r.stages[1:]],
        "status": [s.status for s in r.stages[1:]],
        "stage_s": [s.seconds for s in r.stages[1:]],
        "stage_gap": [s.gap for s in r.stages[1:]],
        "gap": r.gap, "details": r.details,
        "widths": {k: list(v) for k, v in r.widths.items()},
    }


def _run(problem, repeats, **kw):
    times, stage_times, r = [], [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = solve_problem(problem, TARGETS, **kw)
        times.append(time.perf_counter() - t0)
        stage_times.append([s.seconds for s in r.stages[1:]])
    return r, _summary(r, times, stage_times)


# The cost model of the latency case (instructions of the HADS int8 kernels,
# rough figures): per MAC by layer kind, per output element, per call.
INSTR_PER_MAC = {"conv": 3.0, "depthwise": 7.0, "pointwise": 2.0, "logits": 2.0}
PER_OUTPUT, PER_CALL, SIMD = 12.0, 300.0, 4
POSITIONS = 25 * 10  # DS-CNN L's feature map


def _kind(layer):
    return ("conv" if layer == "conv_0" else "logits" if layer == "logits"
            else "depthwise" if layer.startswith("depthwise") else "pointwise")


def cost_model(layer, coef, widths):
    """Instructions of one layer at `widths` (its groups, input first):
    MACs (input channels in SIMD blocks for the layers that reduce over
    them), times the kind's instructions per MAC, plus overheads."""
    kind = _kind(layer)
    w = [float(x) for x in widths]
    if kind in ("pointwise", "logits") and len(w) == 2:
        w[0] = math.ceil(w[0] / SIMD) * SIMD
    elif kind == "logits":
        w[0] = math.ceil(w[0] / SIMD) * SIMD
    macs = coef * math.prod(w)
    outputs = 12 if kind == "logits" else POSITIONS * widths[-1]
    return INSTR_PER_MAC[kind] * macs + PER_OUTPUT * outputs + PER_CALL


def grid(width, points, minimum=1):
    return sorted({int(round(v)) for v in
                   [minimum + (width - minimum) * i / (points - 1) for i in range(points)]})


def latency_problem(p, points):
    """``p`` with one TableTerm per layer of its MAC terms, measured by
    `cost_model` on a grid of `points` widths per group."""
    tables = []
    for t in p.terms:
        if t.resource != "macs":
            continue
        axes = [grid(p.groups[p.index(g)].width, points, p.groups[p.index(g)].min_width)
                for g in t.groups]
        values = np.zeros([len(a) for a in axes])
        for idx in np.ndindex(*values.shape):
            values[idx] = cost_model(t.layer, t.coef, [a[i] for a, i in zip(axes, idx)])
        tables.append(TableTerm(t.layer, "latency", t.groups, axes, values))
    return dataclasses.replace(p, tables=tuple(tables))


def model_latency(p, widths):
    """The cost model (not the table) at one subnetwork's widths."""
    at = dict(zip(p.names, widths))
    return sum(cost_model(t.layer, t.coef, [at[g] for g in t.groups])
               for t in p.terms if t.resource == "macs")


def latency_main():
    p = latency_problem(shapes.paper_models(seed=FLAGS.seed)["DS-CNN-L"],
                        FLAGS.grid_points)
    targets = {"latency": [1.0, 0.75, 0.5, 0.25]}
    out = {"model": "DS-CNN-L", "targets": targets["latency"], "eps": FLAGS.eps,
           "seed": FLAGS.seed, "cpu_count": os.cpu_count(),
           "table": {"source": "cost model (no QEMU table yet): instructions per MAC "
                               f"{INSTR_PER_MAC}, per output {PER_OUTPUT}, per call "
                               f"{PER_CALL}, input channels in blocks of {SIMD}",
                     "grid_points": FLAGS.grid_points,
                     "full_latency": p.full_cost("latency")},
           "runs": {}}
    print(f"== DS-CNN-L latency table ({FLAGS.grid_points} widths per group), full "
          f"{p.full_cost('latency'):,.0f} instructions", flush=True)
    both = dict(targets, macs=[1.0, 0.7, 0.5, 0.3])
    runs = []
    for m in ("bottom_up", "top_down"):
        runs += [(f"{m}/fptas", p, targets, dict(method=m, eps=FLAGS.eps), FLAGS.repeats),
                 (f"{m}/fptas-dp", p, targets, dict(method=m, eps=FLAGS.eps,
                                                    shortcut=False), FLAGS.repeats),
                 # latency and MACs: the chain DP on a surrogate (the default)
                 (f"{m}/latency+macs/fptas", p, both, dict(method=m, eps=FLAGS.eps),
                  FLAGS.repeats)]
    if FLAGS.slow:  # CP-SAT's element encoding of the tables, on DS-CNN S
        small = latency_problem(shapes.paper_models(seed=FLAGS.seed)["DS-CNN-S"],
                                FLAGS.grid_points)
        runs += [("DS-CNN-S/bottom_up/fptas", small, targets,
                  dict(method="bottom_up", eps=FLAGS.eps), FLAGS.repeats),
                 ("DS-CNN-S/bottom_up/cp-sat", small, targets,
                  dict(method="bottom_up", solver="cp-sat",
                       time_limit=FLAGS.stage_time), 1)]
    for key, p, targets, kw, reps in runs:
        times, stage_times = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            r = solve_problem(p, targets, **kw)
            times.append(time.perf_counter() - t0)
            stage_times.append([s.seconds for s in r.stages[1:]])
        W = r.width_matrix()
        run = {"median_s": statistics.median(times), "times_s": times,
               "stage_s_median": [statistics.median(t) for t in zip(*stage_times)],
               "objective": r.total_objective(),
               "status": [s.status for s in r.stages[1:]],
               "stage_gap": [s.gap for s in r.stages[1:]],
               "budget_use_table": [s.budget_use("latency") for s in r.stages[1:]],
               "budget_use_macs": [s.cost.get("macs", 0) / s.budget["macs"]
                                   for s in r.stages[1:]] if "macs" in targets else None,
               "budget_use_cost_model": [model_latency(p, W[k]) / r.stages[k].budget["latency"]
                                         for k in range(1, len(r.stages))],
               "widths": {k: list(v) for k, v in r.widths.items()}}
        out["runs"][key] = run
        print(f"  {key:20s} {run['median_s']:7.3f} s  importance {run['objective']:10.3f}"
              f"  stages {' '.join(f'{t:.3f}' for t in run['stage_s_median'])} s"
              f"  table/budget {' '.join(f'{u:.4f}' for u in run['budget_use_table'])}"
              f"  model/budget {' '.join(f'{u:.4f}' for u in run['budget_use_cost_model'])}"
              f"  {','.join(sorted(set(run['status'])))}", flush=True)
    p = latency_problem(shapes.paper_models(seed=FLAGS.seed)["DS-CNN-L"],
                        FLAGS.grid_points)
    # The MAC-budget plan against the latency plan at the MAC plan's latency.
    # (eps 1e-3: closer to the optimum than the FPTAS default, so that the
    # comparison shows the cost model rather than the rounding.)
    macs = solve_problem(p, {"macs": [1.0, 0.75, 0.5, 0.25]}, eps=1e-3)
    lat = [p.cost(w, "latency") for w in macs.width_matrix()]
    same = solve_problem(p, {"latency": lat[1:]}, eps=1e-3)
    cmp = {"mac_plan_latency": lat,
           "mac_plan_importance": [s.objective for s in macs.stages],
           "latency_plan_latency": [s.cost["latency"] for s in same.stages],
           "latency_plan_importance": [s.objective for s in same.stages]}
    out["mac_plan_vs_latency_plan"] = cmp
    print("  at the MAC plan's latency: importance "
          + ", ".join(f"{a:.2f} (MAC plan) vs {b:.2f} (latency plan)"
                      for a, b in zip(cmp["mac_plan_importance"][1:],
                                      cmp["latency_plan_importance"][1:])), flush=True)
    provenance.stamp(out, ["benchmarks/knapsack.py", "hads_keras/knapsack"],
                     "python " + " ".join(sys.argv))
    path = FLAGS.out if FLAGS["out"].present else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "knapsack_latency.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}")


def main(argv):
    del argv
    if FLAGS.latency:
        return latency_main()
    models = shapes.paper_models(seed=FLAGS.seed)
    results = {"targets": TARGETS["macs"], "eps": FLAGS.eps, "seed": FLAGS.seed,
               "cpu_count": os.cpu_count(), "models": {}}
    for name in FLAGS.models:
        p = models[name]
        items = int(sum(g.width for g in p.groups))
        res = {"groups": [g.width for g in p.groups], "items": items,
               "full_macs": p.full_cost("macs"), "runs": {}}
        print(f"== {name}: groups {res['groups']}, {items} units, "
              f"{p.full_cost('macs'):,.0f} MACs", flush=True)
        runs = []
        for m in ("bottom_up", "top_down"):
            runs += [(f"{m}/exact/fptas", dict(method=m, costs="exact", solver="fptas",
                                               eps=FLAGS.eps), FLAGS.repeats),
                     (f"{m}/exact/fptas-dp", dict(method=m, costs="exact", solver="fptas",
                                                  eps=FLAGS.eps, shortcut=False),
                      FLAGS.repeats),
                     (f"{m}/paper/fptas", dict(method=m, costs="paper", solver="fptas",
                                               eps=FLAGS.eps), FLAGS.repeats)]
            if FLAGS.slow:
                runs += [(f"{m}/paper/knapsack", dict(method=m, costs="paper",
                                                      solver="knapsack",
                                                      time_limit=FLAGS.stage_time), 1),
                         (f"{m}/paper/cp-sat", dict(method=m, costs="paper",
                                                    solver="cp-sat",
                                                    time_limit=FLAGS.stage_time),
                          FLAGS.repeats),
                         (f"{m}/exact/cp-sat", dict(method=m, costs="exact",
                                                    solver="cp-sat",
                                                    time_limit=FLAGS.stage_time), 1)]
                if name in FLAGS.ip_models:
                    runs.append((f"{m}/exact/ip", dict(method=m, costs="exact",
                                                       solver="ip",
                                                       time_limit=FLAGS.ip_time), 1))
        if FLAGS.slow:
            runs.append(("joint/exact", dict(method="joint", costs="exact",
                                             eps=FLAGS.eps,
                                             time_limit=FLAGS.joint_time), 1))
            if FLAGS.tangent_cuts:
                runs.append(("joint/exact/tangent-cuts",
                             dict(method="joint", costs="exact", eps=FLAGS.eps,
                                  time_limit=FLAGS.joint_time, tangent_cuts=True), 1))
        if FLAGS.methods:
            runs = [x for x in runs if any(m in x[0] for m in FLAGS.methods)]
        for key, kw, reps in runs:
            try:
                r, s = _run(p, reps, **kw)
            except (RuntimeError, ValueError) as e:
                res["runs"][key] = {"error": str(e)}
                print(f"  {key:26s} failed: {e}", flush=True)
                continue
            res["runs"][key] = s
            gap = "" if s["gap"] is None else f" proven gap {100 * s['gap']:.4f}%"
            d = s["details"]
            if d.get("cp_sat_bound") is not None:
                own = d["cp_sat_bound"] / s["objective"] - 1
                gap += f" (CP-SAT's own bound: {100 * own:.3f}%)"
            print(f"  {key:26s} {s['median_s']:8.3f} s  importance {s['objective']:10.3f}"
                  f"  budget use {' '.join(f'{u:.4f}' for u in s['budget_use'])}"
                  f"  {','.join(sorted(set(s['status'])))}{gap}"
                  f"  stages {' '.join(f'{t:.2f}' for t in s['stage_s_median'])} s",
                  flush=True)
        # Exact costs vs equation 1 (same driver, same eps).
        cmp = {}
        for m in ("bottom_up", "top_down"):
            if f"{m}/exact/fptas" not in res["runs"] or f"{m}/paper/fptas" not in res["runs"]:
                continue
            ex, eq = res["runs"][f"{m}/exact/fptas"], res["runs"][f"{m}/paper/fptas"]
            cmp[m] = {
                "budget_use_exact": ex["budget_use"], "budget_use_paper": eq["budget_use"],
                "importance_gain_pct": 100 * (ex["objective"] / eq["objective"] - 1),
            }
            print(f"  {m}: exact costs use {['%.1f%%' % (100 * u) for u in ex['budget_use']]}"
                  f" of the budgets, equation 1 {['%.1f%%' % (100 * u) for u in eq['budget_use']]};"
                  f" importance kept +{cmp[m]['importance_gain_pct']:.2f}%", flush=True)
        res["exact_vs_paper"] = cmp
        results["models"][name] = res
    provenance.stamp(results, ["benchmarks/knapsack.py", "hads_keras/knapsack"],
                     "python " + " ".join(sys.argv))
    os.makedirs(os.path.dirname(FLAGS.out), exist_ok=True)
    with open(FLAGS.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
