"""Multi-width training: NestedModel.compile / fit / evaluate."""

import glob
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import hads_keras as hads
from hads_keras import layers as L
from hads_keras.training import subnetwork_loss_weights

PLAN = {"conv": [16, 12, 8, 4], "pointwise": [16, 12, 8, 4]}
SMALL_PLAN = {"conv": [16, 6], "pointwise": [16, 6]}


def build_network(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = L.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = L.BatchNormalization(name="depthwise_bn")(x)
    x = keras.layers.ReLU()(x)
    x = L.Conv2D(16, 1, name="pointwise")(x)
    x = L.BatchNormalization(name="pointwise_bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = L.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs)


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 1)).astype("float32")
    # Learnable labels: the class is the brightest of 10 pixel blocks.
    y = x.reshape(n, -1)[:, :60].reshape(n, 10, 6).mean(-1).argmax(-1)
    return x, y.astype("int32")


def nested_model(plan=PLAN, **compile_kwargs):
    nested = hads.apply(build_network(), hads.Plan(plan))
    compile_kwargs.setdefault("optimizer", "adam")
    nested.compile(loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"], **compile_kwargs)
    return nested


def accuracy_by_predict(nested, x, y):
    """Per subnetwork, through the dynamic path (selector variable)."""
    accuracies = []
    for k in range(nested.num_subnetworks):
        nested.set_subnetwork(k)
        predictions = nested.predict(x, verbose=0, batch_size=32)
        accuracies.append(float(np.mean(predictions.argmax(-1) == y)))
    nested.set_subnetwork(0)
    return accuracies


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One nested model fitted with validation data and a checkpoint."""
    x, y = data()
    nested = nested_model()
    path = str(tmp_path_factory.mktemp("checkpoint") / "nested.keras")
    history = nested.fit(x, y, epochs=2, batch_size=32, verbose=0,
                         validation_data=(x[:32], y[:32]),
                         callbacks=[keras.callbacks.ModelCheckpoint(path)])
    return nested, history, path


def test_history_and_evaluate_report_every_subnetwork(trained):
    nested, history, _ = trained
    x, y = data()
    for k in range(4):
        for key in (f"sub{k}_loss", f"sub{k}_accuracy",
                    f"val_sub{k}_loss", f"val_sub{k}_accuracy"):
            assert key in history.history and len(history.history[key]) == 2
    results = nested.evaluate(x, y, verbose=0, return_dict=True)
    assert set(results) == {"loss"} | {f"sub{k}_{m}" for k in range(4)
                                       for m in ("loss", "accuracy")}
    # evaluate traces static widths, predict reads the selector: same numbers.
    by_predict = accuracy_by_predict(nested, x, y)
    np.testing.assert_allclose(
        [results[f"sub{k}_accuracy"] for k in range(4)], by_predict, atol=1e-6)
    # The total is the pi-weighted sum of the subnetworks' losses.
    total = sum(w * results[f"sub{k}_loss"]
                for k, w in enumerate(nested.subnetwork_loss_weights))
    assert results["loss"] == pytest.approx(total, rel=1e-5)
    # The list form follows Keras: loss first.
    as_list = nested.evaluate(x, y, verbose=0)
    assert as_list[0] == pytest.approx(results["loss"])


def test_default_weights_are_parameter_shares():
    network = build_network()
    plan = hads.Plan(PLAN)
    nested = hads.apply(network, plan)
    # Independent reference: parameters of the standalone subnetworks.
    params = np.array([hads.extract_subnetwork(nested, k).count_params()
                       for k in range(4)], dtype=float)
    share = params / params[0]
    np.testing.assert_allclose(
        subnetwork_loss_weights(nested, plan), share / share.sum())
    np.testing.assert_allclose(
        subnetwork_loss_weights(nested, plan, "sqrt_params"),
        np.sqrt(share) / np.sqrt(share).sum())
    np.testing.assert_allclose(
        subnetwork_loss_weights(nested, plan, [2, 1, 1, 0]), [.5, .25, .25, 0])


@pytest.mark.parametrize("weights, full_only_changes", [
    ([0.0, 1.0], False),   # the full subnetwork's own loss has weight 0
    ([1.0, 0.0], True),
])
def test_zero_weight_gives_no_gradient(weights, full_only_changes):
    """Units only the full subnetwork uses learn from its loss alone."""
    x, y = data(32)
    nested = nested_model(plan=SMALL_PLAN,
                          optimizer=keras.optimizers.SGD(0.5),
                          subnetwork_weights=weights)
    kernel = nested.network.get_layer("pointwise").kernel
    before = keras.ops.convert_to_numpy(kernel).copy()
    nested.fit(x, y, epochs=1, batch_size=32, verbose=0)
    after = keras.ops.convert_to_numpy(kernel)
    full_only = np.abs(after[..., 6:] - before[..., 6:]).max()
    shared = np.abs(after[..., :6] - before[..., :6]).max()
    assert shared > 0
    if full_only_changes:
        assert full_only > 0
    else:
        assert full_only == 0.0


def test_batchnorm_updates_each_subnetworks_row_prefix(trained):
    nested = trained[0]
    mean = keras.ops.convert_to_numpy(
        nested.network.get_layer("pointwise_bn").moving_mean)
    for k, width in enumerate(PLAN["pointwise"]):
        assert np.all(mean[k, :width] != 0)       # updated by subnetwork k
        assert np.all(mean[k, width:] == 0)       # never seen by it
    # Pointwise channel 0 sums over 16 inputs in subnetwork 0, over 4 in
    # subnetwork 3: different statistics, each kept in its own row.
    assert not np.allclose(mean[0, :4], mean[3, :4])


def test_compute_shrinks_in_the_traced_step(trained):
    """Each subnetwork's convolution runs on the sliced kernel."""
    nested = trained[0]
    step = tf.function(nested.train_step)
    graph = step.get_concrete_function(
        (tf.TensorSpec((32, 8, 8, 1)), tf.TensorSpec((32,), tf.int32))).graph
    pointwise = sorted({int(op.inputs[1].shape[-1])
                        for op in graph.get_operations() if op.type == "Conv2D"
                        and op.inputs[1].shape[:2] == (1, 1)})
    assert pointwise == [4, 8, 12, 16]


def test_distillation_loss_uses_full_predictions_as_targets():
    x, y = data(64)
    nested = nested_model(plan=SMALL_PLAN, distillation=1.0,
                          subnetwork_weights=[1, 1])
    nested.fit(x, y, epochs=1, batch_size=32, verbose=0)
    results = nested.evaluate(x, y, verbose=0, return_dict=True, batch_size=64)
    probabilities = []
    for k in (0, 1):
        nested.set_subnetwork(k)
        probabilities.append(nested.predict(x, verbose=0))
    expected = -np.mean(np.sum(probabilities[0] * np.log(
        np.clip(probabilities[1], 1e-7, 1)), axis=-1))
    assert results["sub1_loss"] == pytest.approx(expected, rel=1e-4)


def test_checkpoint_reloads_with_every_subnetwork(trained):
    nested, _, path = trained
    x, y = data()
    expected = nested.evaluate(x, y, verbose=0, return_dict=True)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded, hads.NestedModel)
    assert reloaded.plan == nested.plan
    np.testing.assert_allclose(reloaded.subnetwork_loss_weights,
                               nested.subnetwork_loss_weights)
    got = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    for k in range(4):
        assert got[f"sub{k}_accuracy"] == pytest.approx(
            expected[f"sub{k}_accuracy"])
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)


def test_tf_data_early_stopping_jit(tmp_path):
    x, y = data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    nested = nested_model(plan=SMALL_PLAN, jit_compile=True)
    best = tmp_path / "best.keras"
    history = nested.fit(
        dataset, epochs=5, verbose=0, validation_data=dataset,
        # mode="auto" must find out that accuracy goes up and loss down.
        callbacks=[keras.callbacks.EarlyStopping("val_sub1_accuracy",
                                                 patience=0, min_delta=10.0),
                   keras.callbacks.ModelCheckpoint(
                       str(best), monitor="val_sub1_loss", save_best_only=True)])
    assert len(history.history["loss"]) == 2       # no gain of 10: stop
    assert best.exists()
    # Under XLA, predict still follows the selector.
    np.testing.assert_allclose(
        accuracy_by_predict(nested, x, y),
        [nested.evaluate(dataset, verbose=0, return_dict=True)[f"sub{k}_accuracy"]
         for k in range(2)], atol=1e-6)


def test_tensorboard_logs_every_subnetwork(tmp_path):
    pytest.importorskip("tensorboard")   # keras.callbacks.TensorBoard needs it
    x, y = data(32)
    nested = nested_model(plan=SMALL_PLAN)
    logs = str(tmp_path / "logs")
    nested.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
               callbacks=[keras.callbacks.TensorBoard(logs)])
    tags = set()
    for path in glob.glob(os.path.join(logs, "**", "events.*"), recursive=True):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    assert {"epoch_sub0_accuracy", "epoch_sub1_loss", "epoch_loss"} <= tags


def test_bad_input_errors():
    x, y = data(32)
    nested = nested_model(plan=SMALL_PLAN)
    with pytest.raises(ValueError, match=r"Labels of shape \(32, 10\).*"
                                         "class indices"):
        nested.fit(x, keras.utils.to_categorical(y, 10), verbose=0)
    with pytest.raises(ValueError, match="subnetwork_weights has 4 entries"):
        nested.compile(loss="sparse_categorical_crossentropy",
                       subnetwork_weights=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        nested.compile(loss="sparse_categorical_crossentropy",
                       subnetwork_weights=[1, -1])
    with pytest.raises(ValueError, match="another model"):
        hads.apply(build_network(), hads.Plan({"classifier": [10, 5]}))
    with pytest.raises(ValueError, match="another model"):
        hads.apply(build_network(), hads.Plan({"conv": [32, 8],
                                               "pointwise": [16, 8]}))
    categorical = nested_model(plan=SMALL_PLAN)
    categorical.compile(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="expects one-hot labels"):
        categorical.fit(x, y, verbose=0)


_MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, sys.argv[1])
    import test_training as t
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    x, y = t.data(128)
    with strategy.scope():
        nested = t.nested_model()
    history = nested.fit(x, y, epochs=2, batch_size=32, verbose=0)
    results = nested.evaluate(x, y, verbose=0, return_dict=True)
    acc = t.accuracy_by_predict(nested, x, y)
    np.testing.assert_allclose(
        [results[f"sub{k}_accuracy"] for k in range(4)], acc, atol=1e-6)
    total = sum(w * results[f"sub{k}_loss"]
                for k, w in enumerate(nested.subnetwork_loss_weights))
    np.testing.assert_allclose(results["loss"], total, rtol=1e-5)
    assert history.history["loss"][1] < history.history["loss"][0]
    print("MIRRORED_OK", history.history["loss"])
""")


def test_mirrored_strategy_two_cpus():
    """In a fresh process: logical devices must be set before TF starts."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", _MIRRORED, os.path.dirname(__file__)],
        capture_output=True, text=True, env=env, timeout=600)
    assert "MIRRORED_OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
