r"""Lueker's random subset-sum bound, measured.

Lueker (1998): n i.i.d. samples uniform on [-1, 1] approximate *every*
z in [-1, 1] within eps by some subset sum with high probability once
n = O(log 1/eps). This is the lemma behind the strong lottery ticket results
(Pensia et al. 2020; da Cunha et al. 2022): see strong_lottery.py.

For each eps and many trials, draw samples one at a time and record the
smallest n at which every z in [-1, 1] lies within eps of a subset sum.
Coverage is checked exactly (not only on a grid): the 2^n subset sums,
sorted, cover [-1, 1] with intervals [s - eps, s + eps] iff the ends are
covered and no gap between neighbouring sums inside the interval exceeds
2 eps. Adding a sample only adds sums, so coverage is monotone in n and one
sequence of draws per trial gives the whole curve P(covered | n). Reported:
the smallest n with P(covered) >= 1 - eps (its empirical (1 - eps)-quantile
over the trials), and the median n.

    python examples/theory/lueker.py      # eps 0.1 .. 0.001: 1.3 min CPU (9 min on 2 busy cores)
    python examples/theory/lueker.py --eps=0.1,0.01 --trials_factor=20 --out_dir=/tmp/lueker
"""

import json
import math
import os
import time

import numpy as np
from absl import app, flags

from random_subset_sum import first_covering_n

FLAGS = flags.FLAGS
flags.DEFINE_list("eps", ["0.1", "0.03", "0.01", "0.003", "0.001"], "Accuracies eps.")
flags.DEFINE_integer("trials_factor", 5,
                     "Trials per eps: max(--min_trials, trials_factor / eps), so "
                     "about trials_factor trials may fail at the reported n.")
flags.DEFINE_integer("min_trials", 1000, "Least number of trials per eps.")
flags.DEFINE_integer("max_n", 26, "Give up on a trial above this many samples.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("out_dir", "/tmp/hads_theory_lueker", "Where JSON and PNG go.")


def measure(eps, trials, max_n, rng):
    # float32 sums: rounding (< 1e-5 for n <= 26) is far below the eps studied.
    samples = rng.uniform(-1, 1, (trials, max_n)).astype(np.float32)
    n_first = first_covering_n(samples, eps, max_n)
    counts = np.bincount(np.minimum(n_first, max_n + 1), minlength=max_n + 2)
    p_covered = np.cumsum(counts)[:max_n + 1] / trials  # P(covered with n samples)
    reaching = np.flatnonzero(p_covered >= 1 - eps)
    return {"eps": eps, "trials": int(trials),
            "n_required": int(reaching[0]) if reaching.size else None,
            "n_median": float(np.median(n_first)),
            "p_covered": {int(n): float(p) for n, p in enumerate(p_covered) if p > 0}}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r["n_required"] is not None]
    x = [math.log(1 / r["eps"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x, [r["n_required"] for r in rows], "o-", label="P(cover) >= 1 - eps")
    ax.plot(x, [r["n_median"] for r in rows], "s--", label="median")
    ax.set_xlabel("log(1 / eps)")
    ax.set_ylabel("samples n")
    ax.set_title("Random subset sum: n to cover [-1, 1] within eps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv):
    del argv
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    t0 = time.perf_counter()
    for eps in map(float, FLAGS.eps):
        if not 0 < eps < 1:
            raise app.UsageError(f"--eps values must be in (0, 1), got {eps}.")
        trials = max(FLAGS.min_trials, int(math.ceil(FLAGS.trials_factor / eps)))
        row = measure(eps, trials, FLAGS.max_n, rng)
        rows.append(row)
        print(f"eps={eps:g}: n = {row['n_required']} (P >= 1 - eps), median "
              f"{row['n_median']:g}, {trials} trials", flush=True)
    fit = None
    pts = [(math.log(1 / r["eps"]), r["n_required"]) for r in rows if r["n_required"]]
    if len(pts) >= 2:
        slope, icpt = np.polyfit(*zip(*pts), 1)
        fit = {"slope": float(slope), "intercept": float(icpt)}
        print(f"least squares: n = {slope:.2f} log(1/eps) + {icpt:.2f}")
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    out = {"rows": rows, "fit_n_vs_log_inv_eps": fit, "seed": FLAGS.seed,
           "seconds": round(time.perf_counter() - t0, 1)}
    with open(os.path.join(FLAGS.out_dir, "lueker.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    plot(rows, os.path.join(FLAGS.out_dir, "lueker.png"))
    print(f"wrote {FLAGS.out_dir}/lueker.json and lueker.png")


if __name__ == "__main__":
    app.run(main)
