"""examples/theory: Lueker's random subset sum and Pensia et al.'s strong lottery tickets.

The building blocks are checked against brute force; each script runs once
as users run it (subprocess, absl flags) on tiny settings.
"""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

THEORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "theory")
sys.path.insert(0, THEORY)

import random_subset_sum as rss  # noqa: E402  (examples/theory)


def _subset_sums(x):
    return np.sort([sum(c) for r in range(len(x) + 1) for c in itertools.combinations(x, r)])


def test_exact_cover_check_agrees_with_a_fine_grid():
    rng = np.random.default_rng(0)
    grid = np.linspace(-1, 1, 20001)
    agree, results = [], []
    for _ in range(200):
        n, eps = int(rng.integers(2, 9)), float(rng.choice([0.05, 0.1, 0.2]))
        sums = _subset_sums(rng.uniform(-1, 1, n))
        dist = np.min(np.abs(grid[:, None] - sums[None, :]), axis=1)
        on_grid = bool(np.all(dist <= eps))
        exact = bool(rss.covered(sums[None], eps)[0])
        # The exact check is stronger: it can only fail where the grid passes
        # if a hole is narrower than the grid step.
        assert exact <= on_grid
        agree.append(exact == on_grid)
        results.append(exact)
    assert np.mean(agree) > 0.97
    assert 0.1 < np.mean(results) < 0.9  # both outcomes occur


def test_first_covering_n_is_the_first_n_that_covers():
    rng = np.random.default_rng(1)
    samples = rng.uniform(-1, 1, (40, 12)).astype(np.float32)
    first = rss.first_covering_n(samples, 0.1, 12, max_elements=2 ** 13)
    for t in range(40):
        cov = [bool(rss.covered(_subset_sums(samples[t, :n])[None], 0.1)[0])
               for n in range(1, 13)]
        expect = cov.index(True) + 1 if any(cov) else 13
        assert first[t] == expect
        assert all(cov[expect - 1:])  # monotone: more samples never uncover


def test_closest_subset_is_exact():
    rng = np.random.default_rng(2)
    for m in (0, 1, 5, 9):
        v = rng.uniform(-1, 1, m)
        target = float(rng.uniform(-1, 1))
        mask, total = rss.closest_subset(v, target)
        assert total == pytest.approx(v[mask].sum())
        best = min((abs(sum(c) - target) for r in range(m + 1)
                    for c in itertools.combinations(v, r)))
        assert abs(total - target) == pytest.approx(best, abs=1e-12)


def test_pruned_random_network_computes_the_subset_sum_approximation():
    rng = np.random.default_rng(3)
    w = rng.uniform(-0.5, 0.5, (3, 4))
    errors = []
    for m in (4, 32):
        net = rss.prune_random_network(w, m, np.random.default_rng(4))
        # Only kept weights are nonzero, and they are the random network's.
        for full, pruned in (("a", "a_pruned"), ("b", "b_pruned")):
            kept = net[pruned] != 0
            np.testing.assert_array_equal(net[pruned][kept], net[full][kept])
        x = rng.uniform(0, 1, (50, 4))
        np.testing.assert_allclose(rss.forward(net["a_pruned"], net["b_pruned"], x),
                                   x @ net["pos"].T, atol=1e-12)
        np.testing.assert_allclose(rss.forward(net["a_pruned"], net["b_pruned"], -x),
                                   -x @ net["neg"].T, atol=1e-12)
        errors.append(np.abs(np.stack([net["pos"], net["neg"]]) - w).max())
    assert errors[1] < 0.01 and errors[0] > 0.1


def _run(script, tmp_path, *args):
    proc = subprocess.run([sys.executable, os.path.join(THEORY, script),
                           f"--out_dir={tmp_path}", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_lueker_script(tmp_path):
    _run("lueker.py", tmp_path, "--eps=0.2,0.05", "--min_trials=200", "--trials_factor=1",
         "--max_n=16")
    out = json.load(open(tmp_path / "lueker.json"))
    n = [r["n_required"] for r in out["rows"]]
    assert all(isinstance(v, int) for v in n) and n[0] < n[1] <= 16
    p = out["rows"][1]["p_covered"]
    assert p[str(n[1])] >= 0.95 > p[str(n[1] - 1)]
    assert (tmp_path / "lueker.png").stat().st_size > 1000


def test_lueker_bad_flag(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(THEORY, "lueker.py"),
                           "--eps=1.5", f"--out_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--eps values must be in (0, 1)" in proc.stderr


def test_strong_lottery_script(tmp_path):
    _run("strong_lottery.py", tmp_path, "--factors=2,16", "--epochs=5")
    out = json.load(open(tmp_path / "strong_lottery.json"))
    small, large = out["rows"]
    assert out["target"]["test_accuracy"] > 0.85
    assert large["weight_error_mean"] < small["weight_error_mean"]
    assert large["accuracy_pruned"] > large["accuracy_unpruned_random"] + 0.3
    assert large["hidden_units"] == 65 * 16
    assert (tmp_path / "strong_lottery.png").stat().st_size > 1000
