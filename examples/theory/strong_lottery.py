r"""Strong lottery tickets: a trained layer found inside a random network by pruning.

Pensia et al. (2020, "Optimal lottery tickets via SubsetSum") show that a
random ReLU network wider by a factor O(log(k/eps)) contains, *by pruning
alone*, a subnetwork within eps of any target network; da Cunha et al.
(2022) extend the construction to convolutions. Their building block,
reproduced here for one trained Dense layer y = W x (d inputs, k outputs):

* the random network has one hidden ReLU layer of d * m units and weights
  i.i.d. uniform on [-1, 1]: A [d*m, d] into the hidden layer, B [k, d*m]
  out of it;
* pruning A to a block structure leaves hidden unit (j, t) connected to
  input j only, computing relu(a_jt x_j);
* since relu(a x) = a x for a > 0, x >= 0 and for a < 0, x < 0 (the
  relu(x) - relu(-x) = x split), target weight w_ij is rebuilt twice from
  products b_i,jt a_jt: from the units with a_jt > 0 (used when x_j >= 0)
  and from those with a_jt < 0 (used when x_j < 0). Each is a random subset
  sum problem over about m / 2 products, solved exactly here by
  meet-in-the-middle (Lueker's bound, lueker.py, is why m = O(log 1/eps)
  products suffice);
* pruning B keeps exactly the chosen products.

The target is a softmax classifier on scikit-learn's digits (8 x 8 pixels in
[0, 1] plus a constant-1 input that carries the bias), trained with Keras
for a few seconds with weights clipped to [-1, 1] (the construction's range).
Reported against the overparameterisation factor m: the weight error
(max / mean |w~ - w|), the logit error on the test set, and the test accuracy
of the pruned random network next to the target's (and next to the unpruned
random network, which is at chance).

    python examples/theory/strong_lottery.py   # m = 2 .. 64: 2 min CPU (9 min on 2 busy cores)
    python examples/theory/strong_lottery.py --factors=4,8 --epochs=20 --out_dir=/tmp/slt
"""

import json
import os
import time

import numpy as np
from absl import app, flags

from random_subset_sum import forward, prune_random_network

FLAGS = flags.FLAGS
flags.DEFINE_list("factors", ["2", "4", "8", "16", "24", "32", "48", "64"],
                  "Overparameterisation factors m (hidden units per input).")
flags.DEFINE_integer("epochs", 60, "Epochs to train the target layer.")
flags.DEFINE_integer("seed", 0, "Random seed (target training and random network).")
flags.DEFINE_string("out_dir", "/tmp/hads_theory_strong_lottery", "Where JSON and PNG go.")


def digits():
    """(x_train, y_train, x_test, y_test); x has a constant-1 last column (the bias)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = np.concatenate([d.data / 16.0, np.ones((len(d.data), 1))], axis=1)
    xtr, xte, ytr, yte = train_test_split(x.astype(np.float32), d.target, test_size=0.25,
                                          stratify=d.target, random_state=0)
    return xtr, ytr, xte, yte


def train_target(xtr, ytr, epochs, seed):
    """A trained Dense layer (no bias: the constant input carries it), |w| <= 1."""
    import keras

    class Clip(keras.constraints.Constraint):
        def __call__(self, w):
            return keras.ops.clip(w, -1.0, 1.0)

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((xtr.shape[1],)),
                              keras.layers.Dense(10, use_bias=False, kernel_constraint=Clip())])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr, ytr, epochs=epochs, batch_size=64, verbose=0)
    return np.asarray(model.layers[0].kernel).T.astype(np.float64)  # [k, d]


def main(argv):
    del argv
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = digits()
    w = train_target(xtr, ytr, FLAGS.epochs, FLAGS.seed)
    target_logits = xte @ w.T
    target_acc = float(np.mean(target_logits.argmax(1) == yte))
    print(f"target Dense layer {w.shape[1]} -> {w.shape[0]}: test accuracy {target_acc:.4f}, "
          f"max |w| {np.abs(w).max():.3f}")
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    signed = rng.uniform(-1, 1, (200, w.shape[1]))  # inputs of both signs
    for m in map(int, FLAGS.factors):
        if m < 1:
            raise app.UsageError(f"--factors must be >= 1, got {m}.")
        net = prune_random_network(w, m, rng)
        logits = forward(net["a_pruned"], net["b_pruned"], xte)
        err = np.abs(np.stack([net["pos"], net["neg"]]) - w)
        row = {
            "factor_m": m, "hidden_units": int(net["a"].shape[0]),
            "kept_weights": int(np.count_nonzero(net["a_pruned"]) + np.count_nonzero(net["b_pruned"])),
            "random_weights": int(net["a"].size + net["b"].size),
            "weight_error_max": float(err.max()), "weight_error_mean": float(err.mean()),
            "logit_error_max_test": float(np.abs(logits - target_logits).max()),
            "signed_input_error_max": float(np.abs(
                forward(net["a_pruned"], net["b_pruned"], signed) - signed @ w.T).max()),
            "accuracy_pruned": float(np.mean(logits.argmax(1) == yte)),
            "accuracy_unpruned_random": float(np.mean(
                forward(net["a"], net["b"], xte).argmax(1) == yte)),
        }
        rows.append(row)
        print(f"m={m:3d}: weight error max {row['weight_error_max']:.2e} mean "
              f"{row['weight_error_mean']:.2e}, logit error max {row['logit_error_max_test']:.2e}, "
              f"accuracy pruned {row['accuracy_pruned']:.4f} (unpruned random "
              f"{row['accuracy_unpruned_random']:.4f})", flush=True)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    out = {"target": {"inputs": int(w.shape[1]), "outputs": int(w.shape[0]),
                      "test_accuracy": target_acc, "epochs": FLAGS.epochs},
           "rows": rows, "seed": FLAGS.seed, "seconds": round(time.perf_counter() - t0, 1)}
    with open(os.path.join(FLAGS.out_dir, "strong_lottery.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    plot(rows, target_acc, os.path.join(FLAGS.out_dir, "strong_lottery.png"))
    print(f"wrote {FLAGS.out_dir}/strong_lottery.json and strong_lottery.png")


def plot(rows, target_acc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ms = [r["factor_m"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    ax1.semilogy(ms, [r["weight_error_max"] for r in rows], "o-", label="max")
    ax1.semilogy(ms, [r["weight_error_mean"] for r in rows], "s--", label="mean")
    ax1.set_xlabel("overparameterisation m")
    ax1.set_ylabel("|w~ - w|")
    ax1.legend()
    ax2.plot(ms, [r["accuracy_pruned"] for r in rows], "o-", label="pruned random net")
    ax2.axhline(target_acc, color="k", ls=":", label="trained target")
    ax2.set_xlabel("overparameterisation m")
    ax2.set_ylabel("test accuracy")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    app.run(main)
