"""BN recalibration per subnetwork, and the BN-folded L1 baseline."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import hads_keras as hads


def _digits():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    return x[:1300], digits.target[:1300], x[1300:], digits.target[1300:]


def _bn_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, name="conv_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(h)
    h = keras.layers.BatchNormalization(momentum=0.9, name="dw_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(16, 1, use_bias=False, name="pw")(h)
    h = keras.layers.BatchNormalization(momentum=0.9, name="pw_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained():
    x, y, x_test, y_test = _digits()
    model = _bn_model()
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    plan = hads.uniform_plan(model, [1.0, 0.75, 0.5, 0.25])
    return model, plan, (x, y, x_test, y_test)


def _accuracies(nested, x, y):
    nested.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    result = nested.evaluate(x, y, verbose=0, return_dict=True)
    return [result[f"sub{k}_accuracy"] for k in range(nested.num_subnetworks)]


def _bn_layers(nested):
    return [l for l in nested.network.layers
            if isinstance(l, hads.layers.BatchNormalization)]


def test_statistics_are_those_of_the_sliced_activations(trained):
    model, plan, (x, y, x_test, y_test) = trained
    nested = hads.apply(model, plan)
    before = _accuracies(nested, x_test, y_test)
    weights = [v.numpy().copy() for v in nested.trainable_variables]
    old_stats = {l.name: (l.moving_mean.numpy().copy(), l.moving_variance.numpy().copy())
                 for l in _bn_layers(nested)}
    assert hads.calibrate_batch_norm(nested, x, batch_size=100) is nested
    after = _accuracies(nested, x_test, y_test)

    # Weights (kernels, gamma, beta) are untouched.
    for old, new in zip(weights, nested.trainable_variables):
        np.testing.assert_array_equal(old, new.numpy())
    # Independent reference: each subnetwork extracted as a plain Keras model
    # (physically sliced weights, its own statistics); numpy statistics of
    # every BN layer's input over all samples must be the moving statistics.
    for k in range(nested.num_subnetworks):
        standalone = hads.extract_subnetwork(nested, k)
        names = [l.name for l in _bn_layers(nested)]
        probe = keras.Model(standalone.inputs,
                            [standalone.get_layer(n).input for n in names])
        for name, act in zip(names, probe.predict(x, verbose=0)):
            act = act.astype(np.float64).reshape(-1, act.shape[-1])
            width = act.shape[1]
            layer = nested.network.get_layer(name)
            mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
            np.testing.assert_allclose(mean[k, :width], act.mean(0),
                                       rtol=1e-4, atol=1e-6, err_msg=f"{name} sub{k}")
            np.testing.assert_allclose(var[k, :width], act.var(0),
                                       rtol=1e-4, atol=1e-7, err_msg=f"{name} sub{k}")
            # Inactive channels of row k keep their values.
            np.testing.assert_array_equal(mean[k, width:], old_stats[name][0][k, width:])
            np.testing.assert_array_equal(var[k, width:], old_stats[name][1][k, width:])
    # Sliced subnetworks recover without any training.
    print("accuracy before / after calibration:", before, after)
    # (Measured: 87/37/16/18 % -> 92/73/26/21 %.)
    assert after[0] >= before[0] - 0.02
    for k in (1, 2, 3):
        assert after[k] >= before[k] - 0.01, (k, before, after)
    assert after[1] > before[1] + 0.2
    assert sum(after[1:]) > sum(before[1:]) + 0.3, (before, after)


def test_calibration_does_not_depend_on_batching(trained):
    model, plan, (x, _, _, _) = trained
    by_array = hads.apply(model, plan, calibration_data=x[:600])
    dataset = tf.data.Dataset.from_tensor_slices((x[:600], np.zeros(600))).batch(37)
    by_dataset = hads.calibrate_batch_norm(hads.apply(model, plan), dataset)
    for a, b in zip(_bn_layers(by_array), _bn_layers(by_dataset)):
        np.testing.assert_allclose(a.moving_mean.numpy(), b.moving_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.moving_variance.numpy(),
                                   b.moving_variance.numpy(), rtol=1e-5, atol=1e-7)
    # batches= limits the data used: 2 batches of 37 = the first 74 samples.
    limited = hads.calibrate_batch_norm(hads.apply(model, plan), dataset, batches=2)
    first = hads.apply(model, plan, calibration_data=x[:74])
    for a, b in zip(_bn_layers(limited), _bn_layers(first)):
        np.testing.assert_allclose(a.moving_mean.numpy(), b.moving_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_calibration_rejects_bad_input(trained):
    model, plan, (x, _, _, _) = trained
    nested = hads.apply(model, plan)
    with pytest.raises(TypeError, match="needs a nested model"):
        hads.calibrate_batch_norm(model, x)
    with pytest.raises(ValueError, match="no batches"):
        hads.calibrate_batch_norm(nested, tf.data.Dataset.from_tensor_slices(x[:0]).batch(8))
    with pytest.raises(ValueError, match="no samples"):
        hads.calibrate_batch_norm(nested, x[:0])
    with pytest.raises(ValueError, match="batches must be >= 1"):
        hads.calibrate_batch_norm(nested, x, batches=0)
    with pytest.raises(ValueError):
        hads.calibrate_batch_norm(nested, x, subnetworks=[4])


# L1 baseline ---------------------------------------------------------------

def _dense_bn_model():
    inputs = keras.Input((2,))
    h = keras.layers.Dense(3, use_bias=False, name="fc1")(inputs)
    h = keras.layers.BatchNormalization(epsilon=0.0, name="fc1_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Dense(2, use_bias=False, name="fc2")(h)
    h = keras.layers.ReLU()(h)
    outputs = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(inputs, outputs)
    model.get_layer("fc1").set_weights([np.array([[1., -2., 3.], [1., 2., 0.5]])])
    # gamma, beta, moving mean, moving variance
    model.get_layer("fc1_bn").set_weights([np.array([0.5, -1., 2.]), np.zeros(3),
                                           np.zeros(3), np.array([4., 16., 1.])])
    model.get_layer("fc2").set_weights([np.array([[1., 0.], [-1., 2.], [3., -3.]])])
    return model


def test_l1_folds_batch_norm_by_hand():
    model = _dense_bn_model()
    scores = hads.l1_importance(model)
    # fc1: |W| column sums 2, 4, 3.5; |gamma| / sqrt(var) = 0.25, 0.25, 2.
    np.testing.assert_allclose(scores["fc1"], [0.5, 1.0, 7.0])
    # fc2 has no BN after it: plain column sums of |W|.
    np.testing.assert_allclose(scores["fc2"], [5.0, 5.0])
    # The former behaviour, only on request.
    raw = hads.l1_importance(model, fold_batch_norm=False)
    np.testing.assert_allclose(raw["fc1"], [2.0, 4.0, 3.5])
    # Same numbers on the converted and on the nested model (row 0 = full).
    converted = hads.convert(model)
    np.testing.assert_allclose(hads.l1_importance(converted)["fc1"], [0.5, 1.0, 7.0])
    nested = hads.apply(model, hads.uniform_plan(model, [1.0, 0.5]))
    np.testing.assert_allclose(np.sort(hads.l1_importance(nested)["fc1"]),
                               [0.5, 1.0, 7.0])


def test_l1_folded_is_scale_free_like_the_network():
    """Rescaling a kernel before BN changes nothing the network computes,
    and now nothing in the L1 ranking either."""
    model = _dense_bn_model()
    before = hads.l1_importance(model)["fc1"]
    kernel = model.get_layer("fc1").get_weights()[0]
    gamma, beta, mean, var = model.get_layer("fc1_bn").get_weights()
    scale = np.array([100.0, 1.0, 0.01])
    model.get_layer("fc1").set_weights([kernel * scale])
    model.get_layer("fc1_bn").set_weights([gamma, beta, mean * scale, var * scale ** 2])
    np.testing.assert_allclose(hads.l1_importance(model)["fc1"], before, rtol=1e-6)
    raw = hads.l1_importance(model, fold_batch_norm=False)["fc1"]
    assert np.argsort(-raw).tolist() != np.argsort(-before).tolist()
