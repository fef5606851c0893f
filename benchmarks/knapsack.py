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
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hads_keras.knapsack import shapes, solve_problem  # noqa: E402
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
                                        "results", "knapsack.json"), "JSON output.")

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


def main(argv):
    del argv
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
