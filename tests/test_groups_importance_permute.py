"""Issue 3: coupled groups, Taylor importance, permutation, baselines."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import families
import hads_keras as hads
from hads_keras import permute as permute_lib


def _summary(analysis):
    return {g.name: (g.width, g.fixed, [str(m) for m in g.members]) for g in analysis.groups}


EXPECTED_GROUPS = {
    "dnn": {
        "input": (10, True, ["fc1:consumer@49pos"]),
        "fc1": (24, False, ["fc1:producer", "fc2:consumer"]),
        "fc2": (20, False, ["fc2:producer", "logits:consumer"]),
        "logits": (12, True, ["logits:producer"]),
    },
    "cnn": {
        "input": (1, True, ["conv1:consumer"]),
        "conv1": (6, False, ["conv1:producer", "conv2:consumer"]),
        "conv2": (5, False, ["conv2:producer", "fc1:consumer@6pos"]),
        "fc1": (16, False, ["fc1:producer", "logits:consumer"]),
        "logits": (12, True, ["logits:producer"]),
    },
    "ds_cnn": {
        "input": (1, True, ["conv0:consumer"]),
        "conv0": (8, False, ["conv0:producer", "bn0:batchnorm", "dw1:depthwise",
                             "dw1_bn:batchnorm", "pw1:consumer"]),
        "pw1": (8, False, ["pw1:producer", "pw1_bn:batchnorm", "dw2:depthwise",
                           "dw2_bn:batchnorm", "pw2:consumer"]),
        "pw2": (8, False, ["pw2:producer", "pw2_bn:batchnorm", "logits:consumer"]),
        "logits": (12, True, ["logits:producer"]),
    },
}


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
def test_groups_are_the_expected_ones(family):
    model = families.BUILDERS[family](hads=True)
    assert _summary(hads.groups(model)) == EXPECTED_GROUPS[family]


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
def test_converted_models_have_the_same_groups(family):
    plain = families.BUILDERS[family](hads=False)
    assert _summary(hads.groups(hads.convert(plain))) == _summary(hads.groups(plain))
    assert _summary(hads.groups(plain)) == EXPECTED_GROUPS[family]


def test_group_table_is_readable():
    text = str(hads.groups(families.ds_cnn()))
    assert text.splitlines()[0].split() == ["group", "width", "sliced", "members"]
    assert "pw1:producer pw1_bn:batchnorm dw2:depthwise" in text


def test_depth_multiplier_multiplies_downstream_channels():
    analysis = hads.groups(families.ds_cnn(depth_multiplier=2, blocks=1))
    members = [str(m) for m in analysis["conv0"].members]
    assert members == ["conv0:producer", "bn0:batchnorm", "dw1:depthwise",
                       "dw1_bn:batchnormx2", "pw1:consumerx2"]


def test_merges_of_sliced_branches_name_the_layers():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="left")(inputs)
    b = keras.layers.Conv2D(4, 1, name="right")(inputs)
    x = keras.layers.Concatenate(name="concat")([a, b])
    # A concatenation (two segments) merged with one group of 8 units: the
    # segments cannot be followed through the Add.
    c = keras.layers.Conv2D(8, 1, name="other")(inputs)
    x = keras.layers.Add(name="add")([x, c])
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError, match=r"'add'.*concatenations.*keep=\['left', 'other', 'right'\]"):
        hads.groups(model)


def test_softmax_inside_the_network_is_rejected():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, name="hidden")(inputs)
    x = keras.layers.Softmax(name="inner_softmax")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError, match="inner_softmax"):
        hads.groups(model)


# Importance -------------------------------------------------------------

def _data(model, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    return x, rng.integers(0, 12, n)


def _compile(model, lr):
    model.compile(keras.optimizers.SGD(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def _tape_scores(model, x, y, batch, parameter_vars, mode):
    """Independent Taylor scores: GradientTape per batch, training=True as in fit."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    grads_sum = [np.zeros(v.shape) for v in parameter_vars]
    squares = 0.0
    for start in range(0, len(x), batch):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[start:start + batch], model(x[start:start + batch], training=True))
        grads = tape.gradient(loss, parameter_vars)
        for i, g in enumerate(grads):
            grads_sum[i] += g.numpy()
        if mode == "squared":
            squares = squares + sum(g.numpy() * v.numpy() for g, v in zip(grads, parameter_vars)) ** 2
    if mode == "squared":
        return squares
    return np.abs(sum(g * v.numpy() for g, v in zip(grads_sum, parameter_vars)))


@pytest.mark.parametrize("mode", ["accumulated", "squared"])
def test_callback_scores_equal_an_independent_gradient_tape(mode):
    model = families.ds_cnn(hads=True, seed=4)
    _compile(model, lr=0.0)  # weights stay put: the tape sees the same ones
    x, y = _data(model)
    callback = hads.TaylorImportance(mode=mode)
    model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    # Default parameter for groups with BN: gamma of the BN after the producer.
    for group, bn in (("conv0", "bn0"), ("pw1", "pw1_bn"), ("pw2", "pw2_bn")):
        gamma = model.get_layer(bn).gamma
        want = _tape_scores(model, x, y, 10, [gamma], mode)
        # |sum g * gamma| cancels: float32 gradient sums (fit) against float64
        # ones (tape) agree to ~1e-6 of the score's scale, not of each score.
        np.testing.assert_allclose(callback.scores[group], want, rtol=2e-4,
                                   atol=1e-4 * np.max(np.abs(want)))
    assert set(callback.scores) == {"conv0", "pw1", "pw2"}


def test_producer_parameter_for_groups_without_bn():
    model = families.dnn(hads=True, seed=2)
    _compile(model, lr=0.0)
    x, y = _data(model)
    callback = hads.TaylorImportance()
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(10), epochs=1,
              verbose=0, callbacks=[callback])
    fc1 = model.get_layer("fc1")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    gk, gb = np.zeros(fc1.kernel.shape), np.zeros(fc1.bias.shape)
    for s in range(0, 40, 10):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[s:s + 10], model(x[s:s + 10], training=True))
        a, b = tape.gradient(loss, [fc1.kernel, fc1.bias])
        gk += a.numpy()
        gb += b.numpy()
    want = np.abs((gk * fc1.kernel.numpy()).sum(axis=0) + gb * fc1.bias.numpy())
    np.testing.assert_allclose(callback.scores["fc1"], want, rtol=2e-4, atol=1e-9)


def test_callback_does_not_change_training():
    x, y = _data(families.ds_cnn())

    def train(callbacks):
        model = families.ds_cnn(hads=True, seed=7)
        _compile(model, lr=0.1)
        model.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
        return model.get_weights()

    with_cb = train([hads.TaylorImportance(batches=3)])
    without = train([])
    for a, b in zip(with_cb, without):
        np.testing.assert_array_equal(a, b)


def test_batches_limits_accumulation():
    model = families.dnn(hads=True)
    _compile(model, lr=0.0)
    x, y = _data(model)
    two = hads.TaylorImportance(batches=2)
    model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0, callbacks=[two])
    direct = hads.taylor_importance(
        model, tf.data.Dataset.from_tensor_slices((x, y)).batch(10), batches=2,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # No BN in the DNN: training and inference mode give the same gradients.
    for group in ("fc1", "fc2"):
        np.testing.assert_allclose(two.scores[group], direct[group], rtol=1e-4)


def test_zero_batches_and_empty_data_are_clear_errors():
    model = families.dnn(hads=True)
    with pytest.raises(ValueError, match="batches must be >= 1"):
        hads.TaylorImportance(batches=0)
    with pytest.raises(ValueError, match="batches must be >= 1"):
        hads.taylor_importance(model, [], batches=0)
    empty = tf.data.Dataset.from_tensor_slices(
        (np.zeros((0, 49, 10), "float32"), np.zeros((0,), "int64"))).batch(4)
    with pytest.raises(ValueError, match="No batch was seen"):
        hads.taylor_importance(model, empty)


def test_baselines_give_valid_scores_and_uniform_plan_is_nested():
    model = families.cnn(hads=True)
    for scores in (hads.l1_importance(model), hads.random_importance(model, seed=3)):
        assert set(scores) == {"conv1", "conv2", "fc1"}
        for name, values in scores.items():
            assert values.shape == (hads.groups(model)[name].width,)
            assert np.all(np.isfinite(values)) and np.all(values >= 0)
    np.testing.assert_array_equal(hads.random_importance(model, seed=3)["fc1"],
                                  hads.random_importance(model, seed=3)["fc1"])
    kernel = model.get_layer("conv2").kernel.numpy()
    np.testing.assert_allclose(hads.l1_importance(model)["conv2"],
                               np.abs(kernel).sum(axis=(0, 1, 2)), rtol=1e-6)
    plan = hads.uniform_plan(model, [1.0, 0.75, 0.5, 0.25])
    full = plan.costs[0]["macs"]
    for k, target in enumerate([1.0, 0.75, 0.5, 0.25]):
        assert plan.costs[k]["macs"] <= target * full
    hads.apply(model, plan)  # validates nesting and groups


# Permutation ------------------------------------------------------------

@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn", "ds_cnn_x2"])
def test_permutation_preserves_the_function(family):
    if family == "ds_cnn_x2":
        model = families.ds_cnn(hads=True, depth_multiplier=2)
    else:
        model = families.BUILDERS[family](hads=True)
    families.randomize_batchnorm(model)
    rng = np.random.default_rng(5)
    order = {g.name: rng.permutation(g.width) for g in hads.groups(model).sliceable}
    permuted = permute_lib.permute(model, order)
    x = families.inputs_for(model)
    np.testing.assert_allclose(permuted(x, training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-5, rtol=0)
    changed = [a for a, b in zip(model.get_weights(), permuted.get_weights())
               if not np.array_equal(a, b)]
    assert changed


def test_permutation_sorts_importance_and_keeps_the_function():
    model = families.cnn(hads=True, seed=1)
    x, y = _data(model)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    loss = keras.losses.SparseCategoricalCrossentropy()
    scores = hads.taylor_importance(model, data, loss=loss)
    order = permute_lib.order_by_importance(scores)
    permuted = permute_lib.permute(model, order)
    np.testing.assert_allclose(permuted.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    again = hads.taylor_importance(permuted, data, loss=loss)
    for name, values in again.items():
        assert np.all(np.diff(values) <= 1e-6 * values.max()), name
        np.testing.assert_allclose(values, scores[name][order[name]], rtol=1e-4, atol=1e-9)


def test_apply_with_importance_permutes_before_slicing():
    model = families.dnn(hads=True)
    scores = hads.random_importance(model, seed=1)
    plan = hads.Plan(families.PLANS["dnn"])
    nested = hads.apply(model, plan, importance=scores)
    x = families.inputs_for(model)
    nested.set_subnetwork(0)
    np.testing.assert_allclose(nested.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    best = int(np.argmax(scores["fc1"]))
    np.testing.assert_array_equal(nested.network.get_layer("fc1").kernel.numpy()[:, 0],
                                  model.get_layer("fc1").kernel.numpy()[:, best])
