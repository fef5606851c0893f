"""Time of one multi-width training step relative to one full-width step.

Model: the paper's DS-CNN S (49x10x1 MFCC input, a 10x4 stride-2 conv of 64
filters, 4 depthwise-separable blocks of 64, 12 classes), batch 100, Adam,
sparse categorical cross-entropy.

* full-width step: the HADS network without a plan, ordinary Keras
  `train_step` (what training the model alone costs);
* multi-width step: `hads_keras.apply(model, plan)` with 4 subnetworks at
  100/75/50/25 % MACs (uniform widths), `NestedModel.train_step` (every
  subnetwork's forward and backward pass on the same batch).

Masking would cost 4x the full step; the ideal, by MACs, is the sum of the
subnetworks' MAC shares (about 2.5x). Both models are timed in the same run,
in interleaved rounds; the ratio is that of the median rounds (the
project's convention), the ratio of each model's fastest round (the one
least disturbed by other processes on a shared machine) is reported next
to it. Prints the result and writes
benchmarks/results/training_step.json.

    python benchmarks/training_step.py [--steps 20] [--rounds 5] [--jit]
                                        [--no-breakdown]

The breakdown (on by default) also times the forward and backward pass of
each subnetwork alone (static widths, no optimizer) next to the full
network's, which shows where the multi-width step spends more than the MAC
share of each subnetwork.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

# What the timed steps run (for benchmarks/provenance.py).
SOURCES = ["benchmarks/training_step.py", "hads_keras/layers",
           "hads_keras/training.py", "hads_keras/models.py",
           "hads_keras/graph.py", "hads_keras/permute.py",
           "hads_keras/costs.py", "hads_keras/plan.py"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10,
                        help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--jit", action="store_true",
                        help="compile both steps with XLA (jit_compile=True)")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="skip timing each subnetwork's pass alone")
    parser.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results",
        "training_step.json"))
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    import hads_keras as hads
    from hads_keras import models

    keras.utils.set_random_seed(0)
    targets = [1.0, 0.75, 0.5, 0.25]
    full = models.ds_cnn("s")
    plan = hads.uniform_plan(full, targets)
    nested = hads.apply(full, plan)
    macs = [c["macs"] for c in plan.costs]
    for model in (full, nested):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      jit_compile=bool(args.jit))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 49, 10, 1)).astype("float32")
    y = rng.integers(0, 12, args.batch).astype("int32")

    def timed(model):
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        return (time.perf_counter() - start) / args.steps

    load_before = os.getloadavg()
    for model in (full, nested):     # trace and warm up
        for _ in range(3):
            model.train_on_batch(x, y)
    full_times, multi_times = [], []
    for _ in range(args.rounds):
        full_times.append(timed(full))
        multi_times.append(timed(nested))
    full_step, multi_step = min(full_times), min(multi_times)
    breakdown = None if args.no_breakdown else _breakdown(
        full, nested, x, y, args.steps, args.rounds)
    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "model": "ds_cnn_s (49x10x1, 64 filters, 4 DS blocks, 12 classes)",
        "batch": args.batch,
        "mac_targets": targets,
        "subnetwork_macs": macs,
        "plan": {g: list(plan.widths(g)) for g in plan.groups},
        "full_step_ms": 1e3 * statistics.median(full_times),
        "multi_width_step_ms": 1e3 * statistics.median(multi_times),
        "ratio": statistics.median(multi_times) / statistics.median(full_times),
        "full_step_fastest_ms": 1e3 * full_step,
        "multi_width_step_fastest_ms": 1e3 * multi_step,
        "ratio_of_fastest_rounds": multi_step / full_step,
        "ideal_ratio_by_macs": sum(macs) / macs[0],
        # Elementwise ops, BN and depthwise convolutions cost linear in the
        # width, not in MACs: the ideal for them is the sum of width shares.
        "ideal_ratio_by_width": sum(
            float(np.mean([plan.widths(g)[k] / plan.full_width(g)
                           for g in plan.groups]))
            for k in range(plan.num_subnetworks)),
        "masking_ratio": float(len(macs)),
        "target_ratio": 2.9,
        "rounds_full_ms": [1e3 * t for t in full_times],
        "rounds_multi_ms": [1e3 * t for t in multi_times],
        "steps_per_round": args.steps,
        "breakdown_ms": breakdown,
        "jit_compile": bool(args.jit),
        "device": gpus[0].name if gpus else "CPU",
        "cpu_count": os.cpu_count(),
        # The machine may be shared: 1-minute load average before and after.
        "load_average_1min": [load_before[0], os.getloadavg()[0]],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "platform": platform.platform(),
    }
    print(f"full-width step  {result['full_step_ms']:.1f} ms (median round)")
    print(f"multi-width step {result['multi_width_step_ms']:.1f} ms "
          f"(4 subnetworks, MACs {[round(m / macs[0], 3) for m in macs]})")
    print(f"ratio {result['ratio']:.2f}x, of fastest rounds "
          f"{result['ratio_of_fastest_rounds']:.2f}x  (ideal by MACs "
          f"{result['ideal_ratio_by_macs']:.2f}x, by widths "
          f"{result['ideal_ratio_by_width']:.2f}x, masking 4x, target <= 2.9x)")
    if breakdown:
        print("forward+backward alone (ms): full network "
              f"{breakdown['full_network']:.1f}; subnetworks " + ", ".join(
                  f"{k}: {t:.1f} ({100 * macs[k] / macs[0]:.0f} % MACs)"
                  for k, t in enumerate(breakdown["subnetworks"])))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import provenance
    provenance.stamp(result, SOURCES, "python benchmarks/training_step.py "
                     "(on a quiet machine)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("wrote", args.out)


def _breakdown(full, nested, x, y, steps, rounds):
    """Ms of one forward+backward pass (fastest round): full network, each
    subnetwork."""
    import keras
    import tensorflow as tf

    import hads_keras as hads

    x = tf.constant(x)
    y = tf.constant(y)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def pass_of(network, k):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                if k is None:
                    predictions = network(x, training=True)
                else:
                    with hads.static_subnetwork(k):
                        predictions = network(x, training=True)
                loss = loss_fn(y, predictions)
            return tape.gradient(loss, network.trainable_weights)
        return step

    def median_ms(step):
        step()
        step()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times.append((time.perf_counter() - start) / steps)
        return 1e3 * min(times)

    return {
        "full_network": median_ms(pass_of(full, None)),
        "subnetworks": [median_ms(pass_of(nested.network, k))
                        for k in range(nested.num_subnetworks)],
    }


if __name__ == "__main__":
    main()
