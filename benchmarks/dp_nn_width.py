r"""How wide must a *trained* ReLU network be to execute one knapsack DP step?

Reproduces, at reduced scale, the computational study of Hertrich & Skutella
(the paper's Figure 8): for each profit bound p*, train a network with three
hidden ReLU layers of width w on random DP steps

    (f(1..p*), p_i, s_i)  ->  f'(p) = min(f(p), f(p - p_i) + s_i),

and find the smallest w whose validation MSE is <= 0.005. The paper grows w
one neuron at a time; here w is found by doubling and then bisection (one
training per probed width, so noise can make the result non-monotone; the
JSON lists every probe). The constructed DP-NN needs p*(p*+1)/2 + p* + 1
(`hads_keras.knapsack.neural.dp_nn_widths`): training should also grow
superlinearly.

Training data: states f are the exact DP of random instances (0..2 p* items
already seen, integer profits uniform in 1..p*, sizes uniform in [0, 1]),
"infinite" capped at 2 as in the DP-NN (so MSE is measured on values in
[0, 2]); the new item is drawn the same way. Adam, MSE loss, a fixed number
of epochs with cosine learning-rate decay; the validation MSE is the best
epoch's, and the best of --restarts trainings (seeds) counts.

Also writes the constructed DP-NN's size (parameters, TFLite float bytes)
for a table of p* and n.

    nice python benchmarks/dp_nn_width.py      # defaults: 23 min on 2 busy cores
    nice python benchmarks/dp_nn_width.py --p_stars=2,4 --epochs=10 --sizes=false   # smoke
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import provenance  # noqa: E402

# What the result depends on (benchmarks/provenance.py).
SOURCES = ["benchmarks/dp_nn_width.py", "hads_keras/knapsack/neural.py"]

FLAGS = flags.FLAGS
flags.DEFINE_list("p_stars", [str(p) for p in range(2, 13, 2)], "Profit bounds p* to study.")
flags.DEFINE_integer("train_samples", 8000, "Training DP steps per p*.")
flags.DEFINE_integer("val_samples", 2000, "Validation DP steps per p*.")
flags.DEFINE_integer("epochs", 30, "Training epochs per probed width.")
flags.DEFINE_integer("batch_size", 64, "Training batch size.")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate (cosine decay to 5 %).")
flags.DEFINE_integer("restarts", 2, "Trainings per probed width (different seeds); the best counts.")
flags.DEFINE_float("target_mse", 0.005, "Validation MSE a width must reach.")
flags.DEFINE_integer("max_width", 512, "Give up above this width.")
flags.DEFINE_bool("sizes", True, "Also measure the constructed DP-NN's size.")
flags.DEFINE_list("size_p_stars", ["8", "16", "32", "64"], "p* of the size table.")
flags.DEFINE_list("size_n", ["4", "16", "64"], "n of the size table.")
flags.DEFINE_integer("seed", 0, "Seed of data and initialisation.")
flags.DEFINE_string("out", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "results", "dp_nn_width.json"), "JSON output.")

CAP = 2.0  # "infinite", as hads_keras.knapsack.neural.INFEASIBLE


def dp_steps(p_star, count, rng):
    """Random (state, item) -> next state samples, vectorised over samples."""
    f = np.full((count, p_star + 1), CAP)
    f[:, 0] = 0.0
    seen = rng.integers(0, 2 * p_star + 1, count)

    def step(f, p, s):
        idx = np.maximum(np.arange(p_star + 1)[None, :] - p[:, None], 0)
        shifted = np.take_along_axis(f, idx, axis=1) + s[:, None]
        return np.minimum(f, np.minimum(shifted, CAP))

    for t in range(int(seen.max())):
        p = rng.integers(1, p_star + 1, count)
        s = rng.uniform(0, 1, count)
        f = np.where((t < seen)[:, None], step(f, p, s), f)
    p = rng.integers(1, p_star + 1, count)
    s = rng.uniform(0, 1, count)
    x = np.concatenate([f[:, 1:], p[:, None], s[:, None]], axis=1)
    return x.astype(np.float32), step(f, p, s)[:, 1:].astype(np.float32)


def val_mse(width, data, seed):
    """Trains a 3-hidden-layer ReLU MLP (NumPy, Adam, MSE); best epoch's val MSE.

    NumPy rather than keras.fit: at these sizes Keras' per-step overhead
    (milliseconds) is 20x the arithmetic, and the study trains many networks.
    """
    (x, y), (xv, yv) = data
    rng = np.random.default_rng(seed)
    dims = [x.shape[1], width, width, width, y.shape[1]]
    params = []
    for i, o in zip(dims[:-1], dims[1:]):  # He initialisation, zero biases
        params += [rng.normal(0, np.sqrt(2 / i), (i, o)).astype(np.float32),
                   np.zeros(o, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, t = 0.9, 0.999, 0

    def forward(xb):
        acts = [xb]
        for k in range(0, 6, 2):
            acts.append(np.maximum(acts[-1] @ params[k] + params[k + 1], 0))
        return acts, acts[-1] @ params[6] + params[7]

    best = np.inf
    steps = FLAGS.epochs * -(-len(x) // FLAGS.batch_size)
    for _ in range(FLAGS.epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), FLAGS.batch_size):
            idx = order[s:s + FLAGS.batch_size]
            acts, out = forward(x[idx])
            g = 2 * (out - y[idx]) / out.size  # d MSE / d out
            grads = [None] * 8
            for k in (6, 4, 2, 0):
                grads[k], grads[k + 1] = acts[k // 2].T @ g, g.sum(axis=0)
                if k:
                    g = (g @ params[k].T) * (acts[k // 2] > 0)
            t += 1
            lr = FLAGS.learning_rate * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * t / steps)))
            for i, gr in enumerate(grads):
                m[i] = b1 * m[i] + (1 - b1) * gr
                v[i] = b2 * v[i] + (1 - b2) * gr * gr
                params[i] -= lr * (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + 1e-8)
        best = min(best, float(np.mean((forward(xv)[1] - yv) ** 2)))
    return best


def required_width(p_star, start, rng):
    """Smallest width reaching the target: doubling from `start`, then bisection."""
    data = (dp_steps(p_star, FLAGS.train_samples, rng),
            dp_steps(p_star, FLAGS.val_samples, rng))
    probes = {}

    def ok(w):
        if w not in probes:
            t0 = time.perf_counter()
            probes[w] = min(val_mse(w, data, 1000 * r + w) for r in range(FLAGS.restarts))
            print(f"  p*={p_star} width={w}: val MSE {probes[w]:.5f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        return probes[w] <= FLAGS.target_mse

    lo, hi = 0, max(1, start)  # lo: largest width known to fail (0: none)
    while not ok(hi):
        lo, hi = hi, 2 * hi
        if hi > FLAGS.max_width:
            return None, probes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, probes


def model_sizes():
    from hads_keras.export import keras_to_tflite
    from hads_keras.knapsack import neural
    rows = []
    for p in map(int, FLAGS.size_p_stars):
        for n in map(int, FLAGS.size_n):
            model = neural.build_dp_nn(p, n)
            size = neural.model_size(model)
            size.update(p_star=p, n=n, tflite_bytes=len(keras_to_tflite(model)))
            print(f"  DP-NN p*={p:3d} n={n:3d}: {size['parameters']} parameters "
                  f"({size['nonzero_parameters']} nonzero), widths {size['hidden_widths']}, "
                  f"TFLite {size['tflite_bytes']} bytes", flush=True)
            rows.append(size)
    return rows


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from hads_keras.knapsack import neural
    ps = [r["p_star"] for r in rows if r["width"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ps, [r["width"] for r in rows if r["width"]], "o-", label="trained (val MSE <= 0.005)")
    grid = np.arange(min(ps), max(ps) + 1)
    ax.plot(grid, [max(neural.dp_nn_widths(p)) for p in grid], "--", label="constructed DP-NN")
    ax.set_xlabel("p*")
    ax.set_ylabel("width of each hidden layer")
    ax.set_title("One DP step, 3 hidden ReLU layers")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv):
    del argv
    rng = np.random.default_rng(FLAGS.seed)
    result = {"settings": {k: FLAGS[k].value for k in (
        "p_stars", "train_samples", "val_samples", "epochs", "batch_size",
        "learning_rate", "restarts", "target_mse", "max_width", "seed")},
        "search": "doubling from the previous p*'s width, then bisection"}
    t_all = time.perf_counter()
    if FLAGS.sizes:
        print("Constructed DP-NN sizes:")
        result["model_size"] = model_sizes()
    rows, start = [], 2
    for p in map(int, FLAGS.p_stars):
        t0 = time.perf_counter()
        width, probes = required_width(p, start, rng)
        rows.append({"p_star": p, "width": width,
                     "probes": {str(w): m for w, m in sorted(probes.items())},
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(f"p*={p}: required width {width}", flush=True)
        if width is None:
            break
        start = width
    result["trained_width"] = rows
    result["seconds"] = round(time.perf_counter() - t_all, 1)
    provenance.stamp(result, SOURCES, "nice python " + " ".join(
        ["benchmarks/dp_nn_width.py"] + sys.argv[1:]))
    os.makedirs(os.path.dirname(FLAGS.out), exist_ok=True)
    with open(FLAGS.out, "w") as fh:
        json.dump(result, fh, indent=1)
    png = os.path.splitext(FLAGS.out)[0] + ".png"
    if any(r["width"] for r in rows):
        plot(rows, png)
    print(f"wrote {FLAGS.out} and {png} ({result['seconds']} s)")


if __name__ == "__main__":
    app.run(main)
