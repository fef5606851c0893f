"""Peak activation memory budgets and a largest subnetwork under budget.

* `hads_keras.memory` against the converter's own int8 files (per operator,
  the live tensor bytes read from the file: `export.checks.live_tensor_bytes`)
  on a squeeze-and-excite block with a residual and on a Conv1D model;
* a memory-limited plan on a small DS-CNN whose materialized subnetworks
  all fit the limit in the `tflite-micro` runtime's arena measurement;
* `solve(..., memory_limit=...)` against brute force on a tiny model, its
  errors, and `include_full`;
* a plan whose subnetwork 0 is below the model: `apply` keeps only its
  units (same outputs as the same subnetworks of the full nested model),
  round trips, and a smaller nested file.
"""

import itertools
import math

import keras
import numpy as np
import pytest

import hads_keras as hads
from hads_keras import export, memory
from hads_keras import layers as L
from hads_keras.export import checks

import model_zoo
from test_export_fixtures import PLANS, digits, exported_reduced, trained


def _int8(model, seed=0):
    x = np.random.default_rng(seed).normal(
        size=(8,) + tuple(model.input_shape[1:])).astype(np.float32)
    return export.keras_to_tflite(model, x, int8=True)


@pytest.mark.parametrize("name", ["se_toy", "conv1d_kws"])
def test_operators_match_the_converted_file(name):
    model = model_zoo.BUILDERS[name]()
    reference = checks.live_tensor_bytes(_int8(model))
    full = {g.name: g.width for g in hads.groups(model).sliceable}
    ours = [op.nbytes(full, alignment=1, scratch=False) for op in memory.operators(model)]
    assert ours == [size for _, size in reference]


def _ds_cnn(input_shape=(16, 12, 1)):
    """A small DS-CNN with logits (no softmax, whose int8 input range is
    degenerate for an untrained model)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input(input_shape)
    x = L.Conv2D(24, 3, strides=2, padding="same", name="conv0")(inputs)
    x = L.BatchNormalization(name="bn0")(x)
    x = keras.layers.ReLU()(x)
    for b in range(2):
        x = L.DepthwiseConv2D(3, padding="same", name=f"dw{b}")(x)
        x = L.BatchNormalization(name=f"dw{b}_bn")(x)
        x = keras.layers.ReLU()(x)
        x = L.Conv2D(32, 1, name=f"pw{b}")(x)
        x = L.BatchNormalization(name=f"pw{b}_bn")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="logits")(x))


def test_memory_limited_plan_fits_the_runtime_arena():
    model = _ds_cnn()
    full_bytes = memory.activation_memory(model)["bytes"]
    limit = int(0.6 * full_bytes)
    plan = hads.solve(model, hads.random_importance(model), mac_targets=[1.0, 0.4],
                      memory_limit=limit)
    assert plan.reduced and plan.num_subnetworks == 2
    rep = np.random.default_rng(1).normal(size=(16, 16, 12, 1)).astype(np.float32)
    nested = hads.apply(model, plan, calibration_data=rep)
    nested_bytes = export.tflite_nested(nested, None, rep)
    for k in range(plan.num_subnetworks):
        arena = checks.arena_usage(export.materialize(nested_bytes, k))
        modelled = plan.costs[k]["memory"]
        assert modelled <= limit
        # The planner's head holds exactly the live tensors, 16-byte aligned.
        assert arena["head"] == modelled, (k, arena, modelled)
        assert arena["total"] == arena["head"] + arena["tail"]


def _peak(peaks, widths):
    return max(sum(t.coef * math.prod(widths[g] for g in t.groups)
                   for t in p.terms) for p in peaks)


def test_memory_limit_against_brute_force():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = L.Conv2D(5, 3, strides=2, padding="same", name="b")(x)
    x = L.Conv2D(3, 1, name="c")(x)
    model = keras.Model(inputs, L.Dense(2, name="out")(keras.layers.Flatten()(x)))
    importance = hads.random_importance(model, seed=4)
    peaks = memory.memory_terms(model)
    names, widths = zip(*[(g.name, g.width) for g in hads.groups(model).sliceable])
    prefix = {g: np.concatenate([[0], np.cumsum(np.sort(importance[g])[::-1])])
              for g in names}
    for limit in (170, 200, 260):
        best = max((sum(prefix[g][w] for g, w in zip(names, ws)), ws)
                   for ws in itertools.product(*[range(1, w + 1) for w in widths])
                   if _peak(peaks, dict(zip(names, ws))) <= limit)
        plan = hads.solve(model, importance, memory_limit=limit, solver="cp-sat")
        chosen = {g: plan.widths(g)[0] for g in names}
        assert _peak(peaks, chosen) <= limit
        assert sum(prefix[g][w] for g, w in chosen.items()) == pytest.approx(best[0])
        assert plan.costs[0]["memory"] == memory.activation_memory(model, chosen)["bytes"]


def test_memory_limit_errors_and_include_full():
    model = _ds_cnn()
    imp = hads.random_importance(model)
    full_bytes = memory.activation_memory(model)["bytes"]
    floor = math.ceil(_peak(memory.memory_terms(model),
                            {g.name: 1 for g in hads.groups(model).sliceable}))
    with pytest.raises(ValueError, match=f"smallest feasible memory_limit is {floor:,} bytes"):
        hads.solve(model, imp, mac_targets=[1.0, 0.5], memory_limit=floor - 1)
    with pytest.raises(ValueError, match="include_full=True, but the full network needs"):
        hads.solve(model, imp, mac_targets=[1.0, 0.5], memory_limit=full_bytes // 2,
                   include_full=True)
    with pytest.raises(ValueError, match="memory_limit lists 3 limits for 2 budgets"):
        hads.solve(model, imp, mac_targets=[1.0, 0.5], memory_limit=[9e3, 8e3, 7e3])
    with pytest.raises(ValueError, match="not a number of bytes"):
        hads.solve(model, imp, mac_targets=[1.0, 0.5], memory_limit=0.5)
    with pytest.raises(ValueError, match="include_full must be None, True or False"):
        hads.solve(model, imp, mac_targets=[1.0, 0.5], include_full="yes")
    # A limit the full model meets: today's behaviour, full network first.
    plan = hads.solve(model, imp, mac_targets=[0.75, 0.5], memory_limit=full_bytes + 64)
    assert plan.num_subnetworks == 3 and not plan.reduced
    # include_full=False: the first budget's subnetwork is the largest.
    plan = hads.solve(model, imp, mac_targets=[0.6, 0.3], include_full=False)
    full_macs = hads.model_costs(model)["macs"]
    assert plan.num_subnetworks == 2 and plan.reduced
    assert 0.55 * full_macs < plan.costs[0]["macs"] <= 0.6 * full_macs
    assert plan.info["largest"]["fractions"]["macs"] == pytest.approx(
        plan.costs[0]["macs"] / full_macs)
    assert "largest subnetwork: " in str(plan) and "of the original model's MACs" in str(plan)
    # A memory limit alone: one subnetwork, the best that fits.
    plan = hads.solve(model, imp, memory_limit=full_bytes // 2)
    assert plan.num_subnetworks == 1 and plan.costs[0]["memory"] <= full_bytes // 2


def test_reduced_plan_keeps_only_the_largest_subnetworks_units(tmp_path):
    model = _ds_cnn()
    imp = hads.random_importance(model, seed=2)
    reduced = hads.solve(model, imp, mac_targets=[0.6, 0.3], include_full=False)
    assert reduced.to_dict()["format_version"] == 2
    path = tmp_path / "plan.json"
    reduced.save(path)
    assert hads.Plan.load(path) == reduced
    with_full = hads.Plan({g: [reduced.full_widths[g]] + list(reduced.widths(g))
                           for g in reduced.groups}, order=reduced.order)
    small, big = hads.apply(model, reduced), hads.apply(model, with_full)
    assert small.plan.full_widths == {g: reduced.widths(g)[0] for g in reduced.groups}
    assert not small.plan.reduced and small.plan.largest_summary() == reduced.largest_summary()
    assert small.count_params() < big.count_params()
    x = np.random.default_rng(0).normal(size=(4, 16, 12, 1)).astype(np.float32)
    for k in range(2):
        with small.subnetwork(k), big.subnetwork(k + 1):
            np.testing.assert_allclose(small.predict(x, verbose=0),
                                       big.predict(x, verbose=0), atol=1e-5)
    small.save(tmp_path / "small.keras")
    loaded = keras.saving.load_model(tmp_path / "small.keras")
    assert loaded.plan == small.plan


def test_reduced_plan_exports_a_smaller_nested_file():
    """Bit-exactness of its subnetworks: tests/native/test_nested_model_kernels.py."""
    nested, reduced_bytes = exported_reduced()
    full_bytes = export.tflite_nested(trained("ds_cnn"), None, digits()[4])
    assert len(reduced_bytes) < len(full_bytes)
    stored = export.read_plan(reduced_bytes)
    assert stored.num_subnetworks == 2 and not stored.reduced
    assert stored.full_widths == {g: w[1] for g, w in PLANS["ds_cnn"].items()}
