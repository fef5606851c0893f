"""Memory-limited plans against the TFLite Micro runtime's arena.

For DS-CNN S (keyword spotting, 49x10x1) and a MobileNetV1 (alpha 0.25,
96x96x3, 2 classes: the MLPerf Tiny visual wake words model, REDS's
memory-limited experiment), solves `mac_targets=[1.0, 0.5, 0.25]` with a
`memory_limit` below what the full model needs (`--limit` of its arena
head), so subnetwork 0 is the largest subnetwork that fits. The nested
model is exported, every subnetwork materialized (builtin operators), and
its arena measured in the `tflite-micro` Python runtime (recording
allocator): head (planned activations and scratch buffers), tail
(persistent data), total. Next to it the model's two figures:
`max_live` (the largest set of tensors live at once, what the knapsack
bounds) and `planned` (the simulated greedy planner, what
`solve(memory_limit=...)` checks). Memory depends on widths only, so the
models are untrained (seeded random importance; random calibration data).
Logits (no softmax): an untrained model's degenerate softmax input range
aborts TFLite Micro's SOFTMAX prepare.

    python benchmarks/memory.py [--limit 0.6] [--out benchmarks/results/memory.json]
"""

import argparse
import json
import os
import pathlib
import sys


def _models():
    import keras

    from hads_keras import models
    return {
        "ds_cnn_s": lambda: models.ds_cnn("s", classifier_activation=None),
        "mobilenet_v1_0.25_96": lambda: keras.applications.MobileNet(
            input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=2,
            classifier_activation=None),
    }


def measure(name, build, fraction, seed=0):
    import keras
    import numpy as np

    import hads_keras as hads
    from hads_keras import export, memory
    from hads_keras.export import checks

    keras.utils.set_random_seed(seed)
    model = build()
    rep = np.random.default_rng(seed).normal(
        size=(16,) + tuple(model.input_shape[1:])).astype(np.float32)
    full_bytes = export.keras_to_tflite(model, rep, int8=True)
    full_arena = checks.arena_usage(full_bytes)
    full_planned = memory.planned_arena(model)
    limit = int(fraction * full_planned)
    plan = hads.solve(model, hads.random_importance(model, seed=seed),
                      mac_targets=[1.0, 0.5, 0.25], memory_limit=limit)
    nested = hads.apply(model, plan)
    nested_bytes = export.tflite_nested(nested, None, rep)
    rows = []
    for k in range(plan.num_subnetworks):
        widths = plan.subnetwork_widths(k)
        arena = checks.arena_usage(export.materialize(nested_bytes, k))
        rows.append({
            "subnetwork": k, "macs": plan.costs[k]["macs"],
            "max_live": memory.activation_memory(nested, widths)["bytes"],
            "planned": plan.costs[k]["memory"],
            "runtime_head": arena["head"], "runtime_tail": arena["tail"],
            "runtime_total": arena["total"],
            "fits_limit": arena["head"] <= limit,
            "head_over_planned": arena["head"] / plan.costs[k]["memory"],
        })
    return {
        "model": name, "memory_limit": limit, "limit_fraction": fraction,
        "full": {"max_live": memory.activation_memory(model)["bytes"],
                 "planned": full_planned, "runtime_head": full_arena["head"],
                 "runtime_total": full_arena["total"], "int8_size": len(full_bytes)},
        "largest": plan.largest_summary(), "nested_size": len(nested_bytes),
        "subnetworks": rows,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=0.6,
                        help="memory_limit as a fraction of the full model's arena head")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent
                                             / "results" / "memory.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import provenance

    results = {"models": [measure(name, build, args.limit)
                          for name, build in _models().items()]}
    for r in results["models"]:
        full = r["full"]
        print(f"{r['model']}: memory_limit {r['memory_limit']:,} B "
              f"({r['limit_fraction']:.0%} of the full model's planned "
              f"{full['planned']:,} B; runtime head {full['runtime_head']:,} B, "
              f"total {full['runtime_total']:,} B)")
        print(f"  {r['largest']}; nested file {r['nested_size']:,} B, full int8 "
              f"model {full['int8_size']:,} B")
        print("  sub  MACs        max_live  planned  runtime head  tail    total   fits")
        for row in r["subnetworks"]:
            print(f"  {row['subnetwork']:>3}  {row['macs']:>10,}  {row['max_live']:>8,}"
                  f"  {row['planned']:>7,}  {row['runtime_head']:>12,}"
                  f"  {row['runtime_tail']:>6,}  {row['runtime_total']:>7,}"
                  f"  {row['fits_limit']}")
    command = "python benchmarks/memory.py" + (
        f" --limit {args.limit}" if args.limit != 0.6 else "")
    provenance.stamp(results, ["benchmarks/memory.py", "hads_keras/memory.py",
                               "hads_keras/solve.py", "hads_keras/export/checks.py"],
                     command, note="tflite-micro PyPI runtime, recording allocator")
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
