"""Problem description, exact costs, targets and bad input (no Keras)."""

import numpy as np
import pytest

from hads_keras.knapsack import (CostTerm, GroupSpec, Problem, allowed_widths,
                                 resolve_targets, solve_problem)
from hads_keras.knapsack import shapes


def _dnn_macs_by_hand(widths, n_in=490, n_out=12):
    """MACs of a Dense chain counted layer by layer (independent of terms)."""
    dims = [n_in, *widths, n_out]
    return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def _dnn_params_by_hand(widths, n_in=490, n_out=12):
    dims = [n_in, *widths, n_out]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def test_dnn_costs_match_layer_by_layer_count():
    p = shapes.dnn((144, 144, 144))
    for w in [(144, 144, 144), (1, 2, 3), (100, 7, 144)]:
        assert p.cost(w, "macs") == _dnn_macs_by_hand(w)
        assert p.cost(w, "params") == _dnn_params_by_hand(w)
    assert p.full_cost("macs") == 490 * 144 + 2 * 144 * 144 + 144 * 12


def test_ds_cnn_costs_match_layer_by_layer_count():
    p = shapes.ds_cnn(64, 4, (25, 5), kernel=(10, 4))
    w = [10, 20, 30, 40, 50]
    hw = 25 * 5
    macs = hw * 10 * 4 * 1 * w[0]
    for i in range(4):
        macs += hw * 9 * w[i]          # depthwise 3x3 on the input channels
        macs += hw * w[i] * w[i + 1]   # pointwise 1x1
    macs += w[-1] * 12                 # classifier after pooling
    assert p.cost(w, "macs") == macs
    assert p.cost(dict(zip(p.names, w)), "macs") == macs


def test_cnn_flatten_couples_conv_and_dense():
    p = shapes.cnn(((28, 10, 4, 40, 7), (30, 10, 4, 31, 2)), (16, 128))
    w = [5, 6, 7, 8]
    macs = (40 * 7 * 40 * 5 + 31 * 2 * 40 * 5 * 6 + 31 * 2 * 6 * 7 + 7 * 8 + 8 * 12)
    assert p.cost(w, "macs") == macs


def test_unit_weights_over_estimate_exact_costs():
    p = shapes.ds_cnn(16, 3, (5, 5))
    const, w = p.unit_weights("macs")
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = rng.integers(1, 17, size=len(p.groups))
        assert const + w @ s >= p.cost(s, "macs")
    assert const + w @ p.full_widths == pytest.approx(p.full_cost("macs"))


@pytest.mark.parametrize("bad, msg", [
    ([3.0, np.nan, 1.0], "NaN/inf"),
    ([3.0, np.inf, 1.0], "NaN/inf"),
    ([1.0, 2.0, 0.5], "sorted non-increasing"),
    ([], "non-empty"),
])
def test_bad_importance_names_the_group(bad, msg):
    with pytest.raises(ValueError, match=f"conv2d_7.*{msg}|{msg}.*conv2d_7"):
        GroupSpec("conv2d_7", np.array(bad))


def test_bad_terms_and_groups():
    g = GroupSpec("a", [2.0, 1.0])
    with pytest.raises(ValueError, match="unknown group 'b'"):
        Problem((g,), (CostTerm("dense", "macs", 1, ("a", "b")),))
    with pytest.raises(ValueError, match="coef"):
        CostTerm("dense", "macs", -1.0, ("a",))
    with pytest.raises(ValueError, match="min_width"):
        GroupSpec("a", [2.0, 1.0], min_width=3)
    with pytest.raises(ValueError, match="Duplicate"):
        Problem((g, g), ())


def test_targets_fractions_absolute_and_full_network_prepended():
    p = shapes.dnn((8, 8))
    full = p.full_cost("macs")
    a = resolve_targets(p, {"macs": [1.0, 0.75, 0.5, 0.25]})
    b = resolve_targets(p, {"macs": [0.75, 0.5, 0.25]})
    c = resolve_targets(p, {"macs": [0.75 * full, 0.5 * full, 0.25 * full]})
    want = [full, 0.75 * full, 0.5 * full, 0.25 * full]
    for t in (a, b, c):
        assert [x["macs"] for x in t] == pytest.approx(want)


@pytest.mark.parametrize("targets, msg", [
    ({"macs": [0.5, 0.75]}, "strictly decreasing"),
    ({"macs": [0.5, 0.5]}, "strictly decreasing"),
    ({"macs": [0.5, 0.0]}, r"\(0, 1\]"),
    ({"macs": [0.5, -0.2]}, r"\(0, 1\]"),
    ({"macs": [1e12]}, "exceeds the full"),
    ({"flops": [0.5]}, "Unknown resource 'flops'"),
    ({"macs": [0.5], "params": [0.5, 0.25]}, "same"),
    ([0.5, 0.25], "dict"),
])
def test_bad_targets(targets, msg):
    p = shapes.dnn((8, 8))
    with pytest.raises((ValueError, TypeError), match=msg):
        resolve_targets(p, targets)


def test_budget_below_smallest_network_states_smallest_feasible_budget():
    p = shapes.dnn((8, 8), min_width=2)
    floor = p.cost([2, 2], "macs")
    frac = floor / p.full_cost("macs")
    with pytest.raises(ValueError, match=f"smallest feasible budget is {floor:g}"):
        solve_problem(p, {"macs": [0.5, 0.9 * frac]})
    # multiple_of raises the floor: widths 4 instead of 2.
    with pytest.raises(ValueError, match="multiple_of=4"):
        solve_problem(p, {"macs": [0.5, 1.01 * frac]}, multiple_of=4)


def test_equation1_floor_is_reported():
    p = shapes.dnn((8, 8), min_width=1)
    floor = p.cost([1, 1], "macs")
    # Feasible with exact costs, but equation 1 charges the smallest
    # network more (its units at full neighbour width).
    b = (floor + 2) / p.full_cost("macs")
    solve_problem(p, {"macs": [b]}, costs="exact")
    with pytest.raises(ValueError, match="equation 1"):
        solve_problem(p, {"macs": [b]}, costs="paper")


def test_bad_options():
    p = shapes.dnn((8, 8))
    with pytest.raises(ValueError, match="method"):
        solve_problem(p, {"macs": [0.5]}, method="sideways")
    with pytest.raises(ValueError, match="solver='knapsack' is not available"):
        solve_problem(p, {"macs": [0.5]}, solver="knapsack", costs="exact")
    with pytest.raises(ValueError, match="integer importance"):
        solve_problem(p, {"macs": [0.5]}, solver="dp")
    with pytest.raises(ValueError, match="one resource.*solver='fptas'"):
        solve_problem(p, {"macs": [0.5], "params": [0.5]}, solver="dp")


def test_non_chain_problem_needs_cp_sat():
    gs = tuple(GroupSpec(n, [3.0, 2.0, 1.0]) for n in "abc")
    p = Problem(gs, (CostTerm("x", "macs", 1, ("a", "c")),
                     CostTerm("y", "macs", 1, ("b",))))
    with pytest.raises(ValueError, match="not a chain.*cp-sat"):
        solve_problem(p, {"macs": [0.5]})
    r = solve_problem(p, {"macs": [0.5]}, solver="cp-sat")
    assert r.stages[1].cost["macs"] <= 0.5 * p.full_cost("macs")


def test_allowed_widths_multiple_of():
    g = GroupSpec("a", np.ones(10), min_width=2)
    assert allowed_widths(g, 4).tolist() == [4, 8, 10]
    assert allowed_widths(g, 1).tolist() == list(range(2, 11))
    assert allowed_widths(GroupSpec("b", np.ones(3), min_width=1), 4).tolist() == [3]


def test_importance_of_wrong_length_names_the_group():
    p = shapes.dnn((8, 6))
    p.check_widths({"dense_0": 8, "dense_1": 6})
    with pytest.raises(ValueError, match="'dense_1'.*6 scores.*7 units"):
        p.check_widths({"dense_0": 8, "dense_1": 7})
    with pytest.raises(ValueError, match="No importance for groups \\['dense_9'\\]"):
        p.check_widths({"dense_9": 3})


def test_knapsack_package_imports_neither_keras_nor_tensorflow():
    """The solvers are pure NumPy + OR-Tools (checked in a fresh process that
    skips hads_keras/__init__, which loads Keras)."""
    import os
    import subprocess
    import sys

    import hads_keras.knapsack as kn
    pkg = os.path.dirname(os.path.dirname(kn.__file__))
    code = (
        "import sys, types\n"
        "m = types.ModuleType('hads_keras'); m.__path__ = [sys.argv[1]]\n"
        "sys.modules['hads_keras'] = m\n"
        "import hads_keras.knapsack as k\n"
        "r = k.solve_problem(k.shapes.dnn((8, 8)), {'macs': [0.5]})\n"
        "assert r.stages[1].cost['macs'] <= r.stages[1].budget['macs']\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print('LOADED', bad)\n")
    out = subprocess.run([sys.executable, "-c", code, pkg], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout
