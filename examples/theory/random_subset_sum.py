"""Random subset sum: the building blocks of lueker.py and strong_lottery.py.

No flags here (both scripts import it, and so do the tests):

* `covered`, `first_covering_n`: does every z in [-1, 1] lie within eps of a
  subset sum of the first n samples (exactly, from the sorted 2^n sums)?
* `closest_subset`: the subset of m numbers whose sum is closest to a target,
  exactly, by meet in the middle (2^(m/2) sums per half, sorted, searchsorted).
* `prune_random_network`, `forward`: Pensia et al.'s construction of a target
  Dense layer inside a random one-hidden-layer ReLU network by pruning.
"""

import numpy as np


def covered(sums, eps):
    """Whether sorted subset sums [trials, 2^n] cover [-1, 1] within eps (per trial)."""
    lo, hi = sums[:, :-1], sums[:, 1:]
    # A gap (lo + eps, hi - eps) that is non-empty and meets [-1, 1] leaves z uncovered.
    hole = (hi - lo > 2 * eps) & (lo + eps < 1) & (hi - eps > -1)
    return (sums[:, 0] <= -1 + eps) & (sums[:, -1] >= 1 - eps) & ~hole.any(axis=1)


def first_covering_n(samples, eps, max_n, max_elements=2 ** 22):
    """Per trial, the smallest n such that samples[:, :n] cover; max_n + 1 if none.

    Trials run in chunks so that at most `max_elements` sums are held at once.
    """
    trials = samples.shape[0]
    result = np.full(trials, max_n + 1)
    chunk = max(1, max_elements >> 12)
    for start in range(0, trials, chunk):
        todo = np.arange(start, min(trials, start + chunk))
        sums = np.zeros((todo.size, 1), np.float32)
        for n in range(1, max_n + 1):
            if todo.size * sums.shape[1] * 2 > max_elements and n > 12:
                # Few trials left and many sums: go one trial at a time.
                for t, row in zip(todo, sums):
                    result[t] = _one_trial(samples[t], row, n, eps, max_n)
                break
            x = samples[todo, n - 1:n]
            sums = np.sort(np.concatenate([sums, sums + x], axis=1), axis=1,
                           kind="stable")
            ok = covered(sums, eps)
            result[todo[ok]] = n
            todo, sums = todo[~ok], sums[~ok]
            if todo.size == 0:
                break
    return result


def _one_trial(sample, sums, n, eps, max_n):
    sums = sums[None]
    for m in range(n, max_n + 1):
        sums = np.sort(np.concatenate([sums, sums + sample[m - 1]], axis=1), axis=1,
                       kind="stable")
        if covered(sums, eps)[0]:
            return m
    return max_n + 1


def closest_subset(values, target):
    """Exact subset of `values` whose sum is closest to `target` (meet in the middle).

    Returns (boolean mask, sum). Cost O(2^(m/2) m) for m values.
    """
    values = np.asarray(values, np.float64)
    m = values.size
    if m == 0:
        return np.zeros(0, bool), 0.0
    h = m // 2

    def all_sums(v):
        bits = ((np.arange(2 ** v.size)[:, None] >> np.arange(v.size)) & 1).astype(bool)
        return bits, bits @ v

    bits_a, sums_a = all_sums(values[:h])
    bits_b, sums_b = all_sums(values[h:])
    order = np.argsort(sums_a)
    sorted_a = sums_a[order]
    need = target - sums_b
    pos = np.searchsorted(sorted_a, need)
    best_err, best = np.inf, (0, 0)
    for cand in (np.clip(pos - 1, 0, len(sorted_a) - 1), np.clip(pos, 0, len(sorted_a) - 1)):
        err = np.abs(sorted_a[cand] + sums_b - target)
        b = int(np.argmin(err))
        if err[b] < best_err:
            best_err, best = err[b], (int(order[cand[b]]), b)
    mask = np.concatenate([bits_a[best[0]], bits_b[best[1]]])
    return mask, float(values[mask].sum())


def prune_random_network(w, m, rng):
    """Random network (A [d*m, d], B [k, d*m]) and the masks that approximate W.

    Returns dict with the masked weights A_p, B_p (zeros where pruned) and the
    two approximations of W (from positive and from negative a's).
    """
    k, d = w.shape
    a = rng.uniform(-1, 1, (d * m, d))
    b = rng.uniform(-1, 1, (k, d * m))
    a_p = np.zeros_like(a)
    b_p = np.zeros_like(b)
    approx = {"pos": np.zeros_like(w), "neg": np.zeros_like(w)}
    for j in range(d):
        units = np.arange(j * m, (j + 1) * m)
        a_p[units, j] = a[units, j]  # unit (j, t) keeps its edge from input j only
        a_j = a[units, j]
        for half, sel in (("pos", a_j > 0), ("neg", a_j < 0)):
            for i in range(k):
                mask, total = closest_subset(b[i, units[sel]] * a_j[sel], w[i, j])
                b_p[i, units[sel][mask]] = b[i, units[sel][mask]]
                approx[half][i, j] = total
    return {"a": a, "b": b, "a_pruned": a_p, "b_pruned": b_p, **approx}


def forward(a, b, x):
    return np.maximum(x @ a.T, 0) @ b.T
