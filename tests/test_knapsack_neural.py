"""DP-NN and FPTAS-NN (hads_keras.knapsack.neural) against the project's DP.

References: knapsack01.dp (exact profit DP) on every instance; TFLite's
reference interpreter for the exported models.
"""

import numpy as np
import pytest

from hads_keras.knapsack import knapsack01

neural = pytest.importorskip("hads_keras.knapsack.neural")

GRID = 1000  # sizes are multiples of 1/GRID: a packing that does not fit
             # exceeds the capacity by >= 1/GRID, far above float32 rounding


def _instances(rng, batch, n, max_profit):
    profits = rng.integers(0, max_profit + 1, (batch, n))
    # Mixed scales: some instances where everything fits, most where it is tight.
    scale = rng.choice([0.15, 0.3, 0.6, 1.0], size=(batch, 1))
    sizes = np.round(rng.uniform(0, 1, (batch, n)) * scale * GRID) / GRID
    return profits, sizes


def _optimum(profits, sizes):
    chains = [knapsack01.Chain([p], [[s]]) for p, s in zip(profits, sizes)]
    return knapsack01.dp(chains, 1.0).profit


def test_dp_nn_is_exact_on_random_instances():
    rng = np.random.default_rng(0)
    n, max_profit = 6, 6
    profits, sizes = _instances(rng, 2000, n, max_profit)
    model = neural.build_dp_nn(n * max_profit, n)
    values = neural.solve_dp_nn(model, profits, sizes, 1.0)
    ref = np.array([_optimum(p, s) for p, s in zip(profits, sizes)])
    np.testing.assert_array_equal(values, ref)
    assert len(set(ref)) > 20  # the instances are not all alike


def test_dp_nn_scales_sizes_by_the_capacity():
    model = neural.build_dp_nn(10, 3)
    # capacity 5: items 3 + 2 fit (profit 3 + 4), 4 alone is worth 5.
    assert neural.solve_dp_nn(model, [3, 4, 5], [3.0, 2.0, 4.0], 5.0)[0] == 7
    assert neural.solve_dp_nn(model, [3, 4, 5], [3.0, 2.5, 4.0], 5.0)[0] == 5


def test_fptas_nn_is_feasible_and_within_its_bound():
    rng = np.random.default_rng(1)
    n, width = 4, 2000
    profits, sizes = _instances(rng, 2000, n, 100)
    model = neural.build_fptas_nn(n, width)
    levels = model.levels
    assert max(neural.fptas_nn_widths(levels)) <= width
    assert max(neural.fptas_nn_widths(levels + 1)) > width
    values = neural.solve_fptas_nn(model, profits, sizes, 1.0)
    ref = np.array([_optimum(p, s) for p, s in zip(profits, sizes)])
    # Never more than the optimum: the claimed profit is reachable in capacity.
    assert np.all(values <= ref + 1e-4 * np.maximum(ref, 1))
    # Proven: >= OPT - (2n + 1) T / L, hence >= (1 - n (2n + 1) / L) OPT.
    loss = (2 * n + 1) * profits.sum(axis=1) / levels
    assert np.all(values >= ref - loss - 1e-4)
    bound = neural.fptas_nn_bound(n, levels)
    assert bound > 0
    assert np.all(values >= bound * ref - 1e-4)
    assert np.mean(values == ref) < 1  # it really rounds (not an exact DP)


def test_fptas_nn_wider_is_closer_to_the_optimum():
    rng = np.random.default_rng(2)
    profits, sizes = _instances(rng, 300, 5, 50)
    ref = np.array([_optimum(p, s) for p, s in zip(profits, sizes)])
    gaps = []
    for width in (60, 600, 3000):
        v = neural.solve_fptas_nn(neural.build_fptas_nn(5, width), profits, sizes, 1.0)
        assert np.all(v <= ref + 1e-3)
        gaps.append(float(np.mean(1 - v / np.maximum(ref, 1))))
    assert gaps[0] > gaps[1] > gaps[2]


def test_widths_and_sizes_match_the_models():
    m = neural.build_dp_nn(12, 3)
    size = neural.model_size(m)
    assert size["hidden_widths"] == list(neural.dp_nn_widths(12))
    assert max(size["hidden_widths"]) == 12 * 13 // 2 + 13  # O(p*^2)
    f = neural.build_fptas_nn(3, 100)
    assert neural.model_size(f)["hidden_widths"] == list(neural.fptas_nn_widths(f.levels))


def test_tflite_export_gives_the_same_answers():
    from hads_keras.export import keras_to_tflite
    from hads_keras.export.checks import run_litert

    rng = np.random.default_rng(3)
    n = 5
    profits, sizes = _instances(rng, 120, n, 5)
    model = neural.build_dp_nn(25, n)
    tfl = keras_to_tflite(model)
    got = np.asarray(run_litert(tfl, neural.dp_nn_inputs(profits, sizes, 1.0))).reshape(-1)
    ref = np.array([_optimum(p, s) for p, s in zip(profits, sizes)])
    np.testing.assert_array_equal(got, ref)

    fmodel = neural.build_fptas_nn(n, 300)
    x = neural.fptas_nn_inputs(profits, sizes, 1.0)
    got = np.asarray(run_litert(keras_to_tflite(fmodel), x)).reshape(-1)
    np.testing.assert_allclose(got, fmodel.predict(x, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("profits, sizes, capacity, match", [
    ([1, 2.5], [0.1, 0.2], 1.0, "integer profits"),
    ([1, -2], [0.1, 0.2], 1.0, "finite and >= 0"),
    ([1, 2], [0.1, 1.2], 1.0, r"item 1 of instance 0: size / capacity = 1.2"),
    ([1, 2], [-0.1, 0.2], 1.0, "outside \\[0, 1\\]"),
    ([1, 2], [0.1, 0.2], 0.0, "capacity must be > 0"),
    ([1, 20], [0.1, 0.2], 1.0, "exceeds p_star=10"),
    ([[1, 2]], [0.1, 0.2], 1.0, "both be \\[n\\] or \\[batch, n\\]"),
])
def test_dp_nn_bad_input(profits, sizes, capacity, match):
    with pytest.raises(ValueError, match=match):
        neural.dp_nn_inputs(profits, sizes, capacity, p_star=10)


def test_bad_widths_and_saturation():
    with pytest.raises(ValueError, match="p_star=30 needs width 496.*width=200.*p_star <= 18"):
        neural.build_dp_nn(30, 4, width=200)
    with pytest.raises(ValueError, match="width=3 is too small"):
        neural.build_fptas_nn(4, 3)
    with pytest.raises(ValueError, match="p_star must be a positive integer"):
        neural.build_dp_nn(2.5, 4)
    with pytest.raises(ValueError, match="negative|finite and >= 0"):
        neural.fptas_nn_inputs([1, -1], [0.1, 0.1], 1.0)
    model = neural.build_dp_nn(4, 3)
    with pytest.raises(ValueError, match="reaches p_star=4: its optimum may be larger"):
        neural.solve_dp_nn(model, [3, 3, 1], [0.1, 0.1, 0.1], 1.0)
