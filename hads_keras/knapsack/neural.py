"""Knapsack as a ReLU recurrent network: the DP-NN and the FPTAS-NN.

Hertrich & Skutella ("Provably good solutions to the knapsack problem via
neural networks of bounded size", AAAI 2021 / Mathematics of Operations
Research) build ReLU RNNs that are applied once per item and carry the
profit-indexed dynamic program of `knapsack01.dp` in their state. Here both
are Keras models with every weight written down, not trained:

* **DP-NN** (`build_dp_nn`): state f(p), p = 1..p*, the least size of a
  subset of the items seen so far with profit *at least* p (f(p) = 0 for
  p <= 0). One item (p_i, s_i) is the recurrence

      f_i(p) = min(f_{i-1}(p), f_{i-1}(p - p_i) + s_i)

  in three hidden ReLU layers and a linear output (depth 4):
  layer 1 computes |p_i - j| = relu(p_i - j) + relu(j - p_i) for every
  candidate shift j and passes f and s_i through (they are >= 0, so
  relu(x) = x); layer 2 selects f(p - p_i) = sum_j relu(f(p - j) - M |p_i - j|)
  (for integer p_i exactly one term survives: M exceeds every state value);
  layer 3 takes min(a, b) = a - relu(a - b). Layer 2 has one unit per pair
  (p, j < p), so the width is p*(p* + 1)/2 + p* + 1 = O(p*^2). Exact for
  integer profits when the optimum is <= p* (the paper's Theorem 3.1).
* **FPTAS-NN** (`build_fptas_nn`): the same recurrence on L profit levels
  k/L, k = 1..L, of the profits normalised by their sum, so a network of
  width w ~ L^2 / 2 serves any profits. Item i's normalised profit r_i
  shifts level k to y = k - L r_i, which is not an integer: layer 2 sums the
  state increments d_j = g(j) - g(j - 1) gated by relu(j - 1 - y), which
  gives a value between g(ceil(y)) and g(ceil(y) + 1) (a soft ceiling,
  always rounding the profit still needed *up*, never down). So every state
  value is the size of a real subset reaching that level's profit: the
  network never claims an infeasible solution. Each packed item loses at
  most two levels, hence value >= OPT - (2n + 1) T / L with T the sum of
  profits, and T <= n OPT (every item fits on its own) gives
  value >= (1 - n (2n + 1) / L) OPT = (1 - O(n^2 / sqrt(w))) OPT, the
  form of the paper's Theorems 4.1/4.2 (`fptas_nn_bound`).

  Difference from the paper: its FPTAS-NN rescales the profit grid online
  as items arrive (one more layer, depth 5) because it does not know the
  profit sum in advance. Ours normalises by the sum before the recurrence
  (as the classical FPTAS computes its K from p_max and n before the DP),
  so it has depth 4 per item plus that normalisation.

Conventions (the paper's): sizes scaled by the capacity, so capacity is 1
and sizes lie in [0, 1]; "infinite" (a profit no subset reaches) is the
constant INFEASIBLE = 2 > 1. The models read one input [batch, n, 2] of
(profit, scaled size) per item and return the solution value [batch]: the
largest profit level whose state is <= 1 + tolerance (float32 sums of sizes
carry rounding; the tolerance is far below the size resolution of the
instances the tests use). The RNN is unrolled over the n items (one cell,
one copy of its weights), so TFLite gets plain FULLY_CONNECTED / RELU ops.

Check inputs with `dp_nn_inputs` / `fptas_nn_inputs` (the models cannot
raise on bad data); `solve_dp_nn` / `solve_fptas_nn` do both and predict.

This module imports Keras; `hads_keras.knapsack` does not import it.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

INFEASIBLE = 2.0  # stands for +infinity: larger than the capacity 1
BIG_M = 4.0  # > INFEASIBLE + 1: a gate of 1 zeroes any state value
DEFAULT_TOLERANCE = 1e-5


# --------------------------------------------------------------- widths


def dp_nn_widths(p_star: int) -> tuple:
    """Widths of the DP-NN's three hidden layers for profit bound p*."""
    p = int(p_star)
    return (3 * p + 1, p * (p + 1) // 2 + p + 1, 2 * p)


def fptas_nn_widths(levels: int) -> tuple:
    """Widths of the FPTAS-NN's three hidden layers with L profit levels."""
    L = int(levels)
    return (3 * L + 3, L * (L + 3) // 2 + L + 1, 2 * L)


def fptas_nn_levels(width: int) -> int:
    """The most profit levels L whose FPTAS-NN is at most `width` wide."""
    width = int(width)
    if width < max(fptas_nn_widths(1)):
        raise ValueError(
            f"FPTAS-NN width={width} is too small: one profit level already "
            f"needs width {max(fptas_nn_widths(1))}; use width >= 6.")
    L = 1
    while max(fptas_nn_widths(L + 1)) <= width:
        L += 1
    return L


def fptas_nn_bound(n_items: int, levels: int) -> float:
    """Proven ratio: FPTAS-NN value >= this times OPT (may be <= 0: vacuous)."""
    return 1.0 - n_items * (2 * n_items + 1) / levels


# --------------------------------------------------------------- weights
#
# Both cells are x -> relu(W1 x + b1) -> relu(W2 . + b2) -> relu(W3 . + b3)
# -> W4 . + b4 on x = [state, item]. The matrices are built for the state in
# its natural form f (INFEASIBLE at the start) and then rewritten for
# h = INFEASIBLE - f, so that the RNN's default all-zero initial state is
# the DP's initial state.


def _dp_weights(p_star):
    P = int(p_star)
    n_in = P + 2  # f(1..P), p_i, s_i
    i_p, i_s = P, P + 1
    w1, w2, w3 = dp_nn_widths(P)
    W1, b1 = np.zeros((n_in, w1)), np.zeros(w1)
    a = lambda j: j            # relu(p_i - j), j = 0..P-1
    b = lambda j: P + j        # relu(j - p_i)
    F1 = lambda q: 2 * P + q - 1  # f(q), q = 1..P
    S1 = 3 * P
    for j in range(P):
        W1[i_p, a(j)], b1[a(j)] = 1.0, -j
        W1[i_p, b(j)], b1[b(j)] = -1.0, j
    for q in range(1, P + 1):
        W1[q - 1, F1(q)] = 1.0
    W1[i_s, S1] = 1.0

    W2, b2 = np.zeros((w1, w2)), np.zeros(w2)
    pairs = [(p, j) for p in range(1, P + 1) for j in range(p)]
    for u, (p, j) in enumerate(pairs):  # relu(f(p - j) - M |p_i - j|)
        W2[F1(p - j), u] = 1.0
        W2[a(j), u] = W2[b(j), u] = -BIG_M
    F2 = lambda q: len(pairs) + q - 1
    S2 = len(pairs) + P
    for q in range(1, P + 1):
        W2[F1(q), F2(q)] = 1.0
    W2[S1, S2] = 1.0

    W3, b3 = np.zeros((w2, w3)), np.zeros(w3)
    for p in range(1, P + 1):  # relu(f(p) - f(p - p_i) - s_i), and f(p)
        W3[F2(p), p - 1] = 1.0
        W3[S2, p - 1] = -1.0
        W3[F2(p), P + p - 1] = 1.0
    for u, (p, j) in enumerate(pairs):
        W3[u, p - 1] = -1.0

    W4, b4 = np.zeros((w3, P)), np.zeros(P)
    for p in range(1, P + 1):  # min(f(p), f(p - p_i) + s_i)
        W4[P + p - 1, p - 1] = 1.0
        W4[p - 1, p - 1] = -1.0
    return _shift_state(P, [W1, b1, W2, b2, W3, b3, W4, b4])


def _fptas_weights(levels):
    L = int(levels)
    n_in = L + 2  # g(1..L), r_i (normalised profit), s_i
    i_r, i_s = L, L + 1
    w1, w2, w3 = fptas_nn_widths(L)
    W1, b1 = np.zeros((n_in, w1)), np.zeros(w1)
    G = lambda m: m + L - 1  # relu(m - 1 + L r), m = 1-L..1 (m = j - k)
    D = lambda j: L + 1 + j - 1  # relu(g(j) - g(j - 1)), j = 1..L+1
    F1 = lambda k: 2 * L + 2 + k - 1  # g(k)
    S1 = 3 * L + 2
    for m in range(1 - L, 2):
        W1[i_r, G(m)], b1[G(m)] = L, m - 1.0
    for j in range(1, L + 2):
        if j <= L:
            W1[j - 1, D(j)] = 1.0
        else:
            b1[D(j)] = INFEASIBLE  # g(L + 1) = infinity
        if j >= 2:
            W1[j - 2, D(j)] = -1.0
    for k in range(1, L + 1):
        W1[k - 1, F1(k)] = 1.0
    W1[i_s, S1] = 1.0

    W2, b2 = np.zeros((w1, w2)), np.zeros(w2)
    pairs = [(k, j) for k in range(1, L + 1) for j in range(1, k + 2)]
    for u, (k, j) in enumerate(pairs):  # relu(d_j - M relu(j - 1 - y_k))
        W2[D(j), u] = 1.0
        W2[G(j - k), u] = -BIG_M
    F2 = lambda k: len(pairs) + k - 1
    S2 = len(pairs) + L
    for k in range(1, L + 1):
        W2[F1(k), F2(k)] = 1.0
    W2[S1, S2] = 1.0

    W3, b3 = np.zeros((w2, w3)), np.zeros(w3)
    for k in range(1, L + 1):
        W3[F2(k), k - 1] = 1.0
        W3[S2, k - 1] = -1.0
        W3[F2(k), L + k - 1] = 1.0
    for u, (k, j) in enumerate(pairs):
        W3[u, k - 1] = -1.0

    W4, b4 = np.zeros((w3, L)), np.zeros(L)
    for k in range(1, L + 1):
        W4[L + k - 1, k - 1] = 1.0
        W4[k - 1, k - 1] = -1.0
    return _shift_state(L, [W1, b1, W2, b2, W3, b3, W4, b4])


def _shift_state(n_state, weights):
    """Rewrites weights for f on state h = INFEASIBLE - f (zeros at start)."""
    W1, b1, W2, b2, W3, b3, W4, b4 = weights
    b1 = b1 + INFEASIBLE * W1[:n_state].sum(axis=0)
    W1 = W1.copy()
    W1[:n_state] *= -1.0
    return [W1, b1, W2, b2, W3, b3, -W4, INFEASIBLE - b4]


# --------------------------------------------------------------- layers


class ReluDPCell(keras.layers.Layer):
    """One DP step as three hidden ReLU layers and a linear output.

    Weights are constants (non-trainable). State: h = INFEASIBLE - f.
    """

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        self._init = [np.asarray(w, np.float32) for w in weights]
        self.state_size = self._init[-1].shape[0]
        self.output_size = self.state_size

    def build(self, input_shape):
        self.w = [self.add_weight(shape=v.shape, name=f"w{i}", trainable=False,
                                  initializer=keras.initializers.Constant(v))
                  for i, v in enumerate(self._init)]

    def call(self, inputs, states):
        h = states[0] if isinstance(states, (list, tuple)) else states
        x = ops.concatenate([h, inputs], axis=-1)
        W1, b1, W2, b2, W3, b3, W4, b4 = self.w
        x = ops.relu(ops.matmul(x, W1) + b1)
        x = ops.relu(ops.matmul(x, W2) + b2)
        x = ops.relu(ops.matmul(x, W3) + b3)
        h_new = ops.matmul(x, W4) + b4
        return h_new, [h_new]


class ProfitNormalization(keras.layers.Layer):
    """(profit, size) -> (profit / sum of profits, size); the FPTAS-NN's input."""

    def call(self, x):
        total = ops.sum(x[..., :1], axis=1, keepdims=True)
        r = x[..., :1] / ops.maximum(total, 1e-30)
        return ops.concatenate([r, x[..., 1:]], axis=-1)


class BestFeasibleLevel(keras.layers.Layer):
    """Largest level k with f(k) <= 1 + tolerance, times `scale` (per sample).

    With `profit_sum`, the scale is (sum of the input profits) / levels.
    """

    def __init__(self, levels, tolerance, profit_sum=False, **kwargs):
        super().__init__(**kwargs)
        self.levels, self.tolerance = int(levels), float(tolerance)
        self.profit_sum = bool(profit_sum)

    def call(self, h, items):
        f = INFEASIBLE - h
        k = ops.arange(1, self.levels + 1, dtype="float32")
        best = ops.max(ops.where(f <= 1.0 + self.tolerance, k, 0.0), axis=-1)
        if self.profit_sum:
            best = best * ops.sum(items[..., 0], axis=-1) / self.levels
        return best


def _model(cell, n_items, readout, normalize, name):
    n_items = int(n_items)
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}.")
    items = keras.Input((n_items, 2), name="items")
    x = ProfitNormalization(name="normalize_profits")(items) if normalize else items
    h = keras.layers.RNN(cell, unroll=True, name="dp_steps")(x)
    return keras.Model(items, readout(h, items), name=name)


def build_dp_nn(p_star: int, n_items: int, *, width: int | None = None,
                tolerance: float = DEFAULT_TOLERANCE):
    """The DP-NN for n_items items and optimum <= p_star (exact, Theorem 3.1).

    Args:
        p_star: bound on the optimum profit; the state has one entry per
            profit 1..p_star.
        n_items: items per instance (the RNN is unrolled over them).
        width: if given, the widest hidden layer allowed; raises when p_star
            needs more (p*(p* + 1)/2 + p* + 1).
        tolerance: a packing fits if its scaled size is <= 1 + tolerance.
    """
    p_star = _positive_int(p_star, "p_star")
    need = max(dp_nn_widths(p_star))
    if width is not None and need > int(width):
        fit = max(p for p in range(1, p_star + 1) if max(dp_nn_widths(p)) <= width) \
            if width >= max(dp_nn_widths(1)) else 0
        raise ValueError(
            f"DP-NN with p_star={p_star} needs width {need} (layer 2 has "
            f"p*(p*+1)/2 + p* + 1 units), more than width={width}: use "
            f"p_star <= {fit}, a larger width, or build_fptas_nn(n, width).")
    cell = ReluDPCell(_dp_weights(p_star), name="dp_cell")
    readout = BestFeasibleLevel(p_star, tolerance, name="optimum")
    model = _model(cell, n_items, readout, False, f"dp_nn_p{p_star}_n{n_items}")
    model.p_star = p_star
    return model


def build_fptas_nn(n_items: int, width: int, *,
                   tolerance: float = DEFAULT_TOLERANCE):
    """The FPTAS-NN for n_items items, at most `width` units per layer.

    Uses L = fptas_nn_levels(width) profit levels; its value is feasible and
    >= fptas_nn_bound(n_items, L) * OPT.
    """
    levels = fptas_nn_levels(width)
    cell = ReluDPCell(_fptas_weights(levels), name="fptas_cell")
    readout = BestFeasibleLevel(levels, tolerance, profit_sum=True, name="value")
    model = _model(cell, n_items, readout, True,
                   f"fptas_nn_w{int(width)}_n{n_items}")
    model.levels = levels
    return model


# --------------------------------------------------------------- inputs


def _positive_int(v, name):
    if isinstance(v, bool) or int(v) != v or int(v) < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    return int(v)


def _items(profits, sizes, capacity):
    profits = np.asarray(profits, np.float64)
    sizes = np.asarray(sizes, np.float64)
    if profits.ndim == 1:
        profits, sizes = profits[None], sizes[None]
    if profits.ndim != 2 or profits.shape != sizes.shape:
        raise ValueError(
            f"profits and sizes must both be [n] or [batch, n]; got shapes "
            f"{profits.shape} and {sizes.shape}.")
    if not np.all(np.isfinite(profits)) or np.any(profits < 0):
        bad = profits[~(np.isfinite(profits) & (profits >= 0))][0]
        raise ValueError(f"profits must be finite and >= 0; got {float(bad)!r}.")
    capacity = np.broadcast_to(np.asarray(capacity, np.float64),
                               (profits.shape[0],))
    if np.any(~np.isfinite(capacity)) or np.any(capacity <= 0):
        raise ValueError(f"capacity must be > 0; got {float(capacity.min())!r}.")
    scaled = sizes / capacity[:, None]
    if not np.all(np.isfinite(scaled)) or np.any(scaled < 0) or np.any(scaled > 1):
        b, i = np.argwhere(~((scaled >= 0) & (scaled <= 1)))[0]
        raise ValueError(
            f"item {i} of instance {b}: size / capacity = {float(scaled[b, i])!r} is "
            "outside [0, 1] (the paper's scaling: capacity 1). Sizes must be "
            ">= 0; drop items larger than the capacity (they never fit).")
    return profits, scaled


def dp_nn_inputs(profits, sizes, capacity, p_star=None) -> np.ndarray:
    """Checks an instance batch and returns the DP-NN input [batch, n, 2].

    Raises ValueError for non-integer or negative profits, sizes outside
    [0, 1] after division by the capacity, or (with p_star) an item whose
    profit alone exceeds p_star (every item fits, so the optimum does too).
    """
    profits, scaled = _items(profits, sizes, capacity)
    if np.any(profits != np.round(profits)):
        bad = profits[profits != np.round(profits)][0]
        raise ValueError(
            f"the DP-NN needs integer profits, got {float(bad)!r}: round them (the "
            "FPTAS-NN, build_fptas_nn, takes any profits >= 0).")
    if p_star is not None and np.any(profits.max(axis=1) > p_star):
        raise ValueError(
            f"a profit of {float(profits.max())!r} exceeds p_star={p_star}; the "
            "optimum may too: build the DP-NN with p_star >= the sum of profits.")
    return np.stack([profits, scaled], axis=-1).astype(np.float32)


def fptas_nn_inputs(profits, sizes, capacity) -> np.ndarray:
    """Checks an instance batch and returns the FPTAS-NN input [batch, n, 2]."""
    profits, scaled = _items(profits, sizes, capacity)
    return np.stack([profits, scaled], axis=-1).astype(np.float32)


def solve_dp_nn(model, profits, sizes, capacity) -> np.ndarray:
    """Optimum values [batch] from a DP-NN; raises if p_star may be too small."""
    x = dp_nn_inputs(profits, sizes, capacity, model.p_star)
    values = np.round(model.predict(x, verbose=0, batch_size=1024)).astype(np.int64)
    saturated = (values >= model.p_star) & (x[..., 0].sum(axis=1) > model.p_star)
    if np.any(saturated):
        raise ValueError(
            f"instance {int(np.argmax(saturated))} reaches p_star={model.p_star}: "
            "its optimum may be larger; rebuild with p_star >= its profit sum.")
    return values


def solve_fptas_nn(model, profits, sizes, capacity) -> np.ndarray:
    """Feasible values [batch] >= fptas_nn_bound(n, model.levels) * OPT."""
    return model.predict(fptas_nn_inputs(profits, sizes, capacity), verbose=0,
                         batch_size=1024).astype(np.float64)


def model_size(model) -> dict:
    """Parameters of the (shared) DP cell and widths of its hidden layers."""
    cell = model.get_layer("dp_steps").cell
    return {"parameters": int(sum(int(np.prod(w.shape)) for w in cell.w)),
            "nonzero_parameters": int(sum(int(np.count_nonzero(v)) for v in cell._init)),
            "hidden_widths": [int(v.shape[1]) for v in cell._init[0:6:2]]}
