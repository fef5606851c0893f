"""Issue 2: HADS layers, runtime width, plan, switchable BN, convert, saving, costs."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import families
import hads_keras as hads
from hads_keras import layers as hads_layers


def nested_family(name, seed=0):
    model = families.BUILDERS[name](hads=True, seed=seed)
    nested = hads.apply(model, hads.Plan(families.PLANS[name]))
    families.randomize_batchnorm(nested.network, seed=seed)
    return nested


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
def test_every_subnetwork_equals_the_physically_sliced_model(family):
    nested = nested_family(family)
    x = families.inputs_for(nested.network)
    outputs = []
    for k in range(4):
        nested.set_subnetwork(k)
        got = nested.predict(x, verbose=0)
        standalone = hads.extract_subnetwork(nested, k)
        # The reference is plain Keras: no HADS layer in it.
        assert not any(isinstance(l, hads_layers.Dense.__mro__[1]) for l in standalone.layers)
        want = standalone.predict(x, verbose=0)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        outputs.append(got)
    # Subnetworks really differ from each other.
    assert np.abs(outputs[0] - outputs[3]).max() > 1e-3


def test_depth_multiplier_two_slices_blocks_of_channels():
    model = families.ds_cnn(hads=True, depth_multiplier=2, blocks=1)
    plan = hads.Plan({"conv0": [8, 5, 2], "pw1": [8, 4, 2]})
    nested = hads.apply(model, plan)
    families.randomize_batchnorm(nested.network)
    x = families.inputs_for(model)
    for k in range(3):
        nested.set_subnetwork(k)
        np.testing.assert_allclose(
            nested(x, training=False).numpy(),
            hads.extract_subnetwork(nested, k)(x, training=False).numpy(), atol=1e-5)
    dw = hads.extract_subnetwork(nested, 1).get_layer("dw1")
    assert dw.kernel.shape == (3, 3, 5, 2)


def test_dense_on_flattened_conv_uses_strided_rows():
    nested = nested_family("cnn")
    fc1 = hads.extract_subnetwork(nested, 2).get_layer("fc1")
    conv2_out = nested.network.get_layer("conv2").output.shape
    positions = conv2_out[1] * conv2_out[2]
    assert fc1.kernel.shape == (positions * 3, 8)
    full = nested.network.get_layer("fc1").kernel.numpy()
    rows = full.reshape(positions, 5, 16)[:, :3, :8].reshape(-1, 8)
    np.testing.assert_array_equal(fc1.kernel.numpy(), rows)


def test_inactive_channels_are_zero():
    nested = nested_family("ds_cnn")
    nested.set_subnetwork(3)
    probe = keras.Model(nested.network.inputs, nested.network.get_layer("pw1_bn").output)
    out = probe(families.inputs_for(nested.network), training=False).numpy()
    assert np.all(out[..., 3:] == 0)
    assert np.abs(out[..., :3]).max() > 0


class _TraceCounter:
    """Counts Python executions of HADS Dense.call (they happen only while tracing)."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = hads_layers.Dense.call

        def counting_call(layer, *args, **kwargs):
            self.count += 1
            return original(layer, *args, **kwargs)

        monkeypatch.setattr(hads_layers.Dense, "call", counting_call)


def test_switching_does_not_retrace(monkeypatch):
    nested = nested_family("dnn")
    x = families.inputs_for(nested.network)
    counter = _TraceCounter(monkeypatch)
    nested.predict(x, verbose=0)
    traced = counter.count
    assert traced > 0
    results = []
    for k in (1, 2, 3, 0, 2):
        nested.set_subnetwork(k)
        results.append(nested.predict(x, verbose=0))
    assert counter.count == traced
    call = tf.function(lambda t: nested(t, training=False))
    call(x)
    nested.set_subnetwork(3)
    y3 = call(x)
    assert call.experimental_get_tracing_count() == 1
    np.testing.assert_allclose(y3.numpy(), results[2], atol=1e-6)


def test_set_subnetwork_is_an_assignment_and_context_manager_restores():
    nested = nested_family("dnn")
    hads.set_subnetwork(nested, 2)
    assert nested.active_subnetwork == 2
    with nested.subnetwork(3):
        assert nested.active_subnetwork == 3
    assert nested.active_subnetwork == 2


@pytest.mark.parametrize("bad", [4, -1, 1.5, True])
def test_subnetwork_index_out_of_range(bad):
    nested = nested_family("dnn")
    with pytest.raises((ValueError, TypeError), match="ubnetwork"):
        nested.set_subnetwork(bad)
    with pytest.raises((ValueError, TypeError), match="ubnetwork"):
        hads.extract_subnetwork(nested, bad)


def test_plain_model_has_only_the_full_subnetwork():
    model = families.dnn(hads=True)
    hads.set_subnetwork(model, 0)
    with pytest.raises(ValueError, match="no plan installed"):
        hads.set_subnetwork(model, 1)


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
def test_save_load_round_trip_keeps_every_subnetwork(family, tmp_path):
    nested = nested_family(family)
    nested.set_subnetwork(2)
    path = tmp_path / "nested.keras"
    nested.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, hads.NestedModel)
    assert loaded.active_subnetwork == 2
    assert loaded.plan == nested.plan
    x = families.inputs_for(nested.network)
    for k in range(4):
        nested.set_subnetwork(k)
        loaded.set_subnetwork(k)
        np.testing.assert_array_equal(nested.predict(x, verbose=0), loaded.predict(x, verbose=0))
    for a, b in zip(nested.network.weights, loaded.network.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_layers_round_trip_through_config():
    for layer in (hads_layers.Dense(3, activation="relu"), hads_layers.Conv2D(4, 3, strides=2),
                  hads_layers.DepthwiseConv2D(3, depth_multiplier=2),
                  hads_layers.BatchNormalization(num_subnetworks=3, momentum=0.9)):
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
        assert isinstance(clone, keras.layers.Layer)


def test_hads_layers_are_keras_layers_with_familiar_weights():
    model = families.ds_cnn(hads=True)
    assert isinstance(model.get_layer("conv0"), keras.layers.Conv2D)
    assert isinstance(model.get_layer("dw1"), keras.layers.DepthwiseConv2D)
    bn = model.get_layer("bn0")
    assert isinstance(bn, keras.layers.BatchNormalization)
    assert [w.path.split("/")[-1] for w in bn.weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
def test_convert_keeps_outputs_and_weights(family):
    original = families.BUILDERS[family](hads=False)
    families.randomize_batchnorm(original)
    converted = hads.convert(original)
    x = families.inputs_for(original)
    np.testing.assert_allclose(converted(x, training=False).numpy(),
                               original(x, training=False).numpy(), atol=1e-6, rtol=0)
    for name in ("logits",):
        assert type(converted.get_layer(name)) is hads_layers.Dense
    assert type(original.get_layer("logits")) is keras.layers.Dense  # untouched


def test_convert_sequential():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2)])
    converted = hads.convert(model)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_allclose(converted(x).numpy(), model(x).numpy(), atol=1e-6)


def _concatenated_model():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="branch_a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="branch_b")(inputs)
    # Along the height, not the channels: narrower subnetworks would not
    # line up (a channel concatenation is sliced segment by segment).
    x = keras.layers.Concatenate(axis=1, name="concat")([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_convert_rejects_unsupported_structures_naming_the_layer():
    with pytest.raises(ValueError, match=r"'concat'.*keep=\['branch_a', 'branch_b'\]"):
        hads.convert(_concatenated_model())
    inputs = keras.Input((10, 4))
    x = keras.layers.LSTM(3, name="lstm")(keras.layers.Dense(5, name="d")(inputs))
    with pytest.raises(ValueError, match=r"'lstm'.*keep=\['d'\]"):
        hads.convert(keras.Model(inputs, keras.layers.Dense(2)(x)))
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)
    with pytest.raises(ValueError, match=r"'grouped'.*keep=\['conv'\]"):
        hads.convert(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x))))


def test_convert_rejects_subclassed_models_with_a_hint():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="hads_keras.layers"):
        hads.convert(net)


def test_fit_on_hads_model_matches_keras():
    def train(model):
        model.compile(keras.optimizers.SGD(0.05),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 16, 10, 1)).astype("float32")
        y = rng.integers(0, 12, 64)
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    keras_weights = train(families.ds_cnn(hads=False, seed=3))
    hads_weights = train(families.ds_cnn(hads=True, seed=3))
    assert len(keras_weights) == len(hads_weights)
    for a, b in zip(keras_weights, hads_weights):
        np.testing.assert_allclose(a.reshape(b.shape), b, atol=1e-5)


def test_switchable_bn_updates_only_the_active_row():
    nested = nested_family("ds_cnn")
    bn = nested.network.get_layer("pw1_bn")
    before = bn.moving_mean.numpy().copy()
    nested.set_subnetwork(2)
    nested(families.inputs_for(nested.network, n=8), training=True)
    after = bn.moving_mean.numpy()
    width = nested.plan.widths("pw1")[2]
    assert not np.allclose(after[2, :width], before[2, :width])
    np.testing.assert_array_equal(after[2, width:], before[2, width:])
    np.testing.assert_array_equal(np.delete(after, 2, axis=0), np.delete(before, 2, axis=0))


# Plan ---------------------------------------------------------------------

def test_plan_json_round_trip(tmp_path):
    plan = hads.Plan(families.PLANS["cnn"], order={"conv1": [5, 4, 3, 2, 1, 0]},
                     info={"method": "hand"})
    path = tmp_path / "plan.json"
    plan.save(path)
    again = hads.Plan.load(path)
    assert again == plan
    assert again.widths("conv1") == (6, 5, 3, 2)
    assert "conv1" in str(plan)


@pytest.mark.parametrize("widths,message", [
    ({"fc1": [24, 25, 12, 5], "fc2": [20, 16, 9, 3]}, "group 'fc1', subnetwork 1"),
    ({"fc1": [24, 18, 12, 0], "fc2": [20, 16, 9, 3]}, "group 'fc1', subnetwork 3"),
    ({"fc1": [24, 18, 12], "fc2": [20, 16, 9, 3]}, "one per subnetwork"),
    ({"fc1": [24, 18.5, 12, 5], "fc2": [20, 16, 9, 3]}, "integers"),
])
def test_invalid_plans_name_group_and_subnetwork(widths, message):
    with pytest.raises(ValueError, match=message.replace("'", "'").replace("group", "[Gg]roup")):
        hads.Plan(widths)


def test_plan_for_another_model_is_rejected():
    model = families.dnn(hads=True)
    with pytest.raises(ValueError, match="another model"):
        hads.apply(model, hads.Plan(families.PLANS["cnn"]))
    with pytest.raises(ValueError, match="fc1"):
        hads.apply(model, hads.Plan({"fc1": [30, 20], "fc2": [20, 10]}))
    with pytest.raises(ValueError, match="fixed"):
        hads.apply(model, hads.Plan({"fc1": [24, 5], "fc2": [20, 3], "logits": [12, 6]}))


# Costs --------------------------------------------------------------------

def _independent_macs(model):
    """MACs of a plain Keras model, counted from its layers' shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            h, w, c = layer.output.shape[1:]
            total += h * w * math.prod(layer.kernel_size) * c
        elif isinstance(layer, keras.layers.Conv2D):
            h, w, c = layer.output.shape[1:]
            total += h * w * math.prod(layer.kernel_size) * layer.kernel.shape[-2] * c
        elif isinstance(layer, keras.layers.Dense):
            total += math.prod(layer.output.shape[1:-1]) * layer.kernel.shape[0] * layer.units
    return total


@pytest.mark.parametrize("family", ["dnn", "cnn", "ds_cnn"])
def test_costs_match_the_sliced_models(family):
    nested = nested_family(family)
    costs = hads.subnetwork_costs(nested, nested.plan)
    for k in range(4):
        standalone = hads.extract_subnetwork(nested, k)
        assert costs[k]["params"] == standalone.count_params()
        assert costs[k]["macs"] == _independent_macs(standalone)
    assert costs[0] == hads.model_costs(nested)
    assert costs[0]["macs"] > costs[1]["macs"] > costs[2]["macs"] > costs[3]["macs"]


def test_static_subnetworks_pass_truly_narrow_tensors():
    nested = nested_family("ds_cnn")
    x = families.inputs_for(nested.network)
    probe = keras.Model(nested.network.inputs,
                        [nested.network.get_layer("pw1_relu").output, nested.network.output])
    with hads.static_subnetwork(2):
        narrow, out = probe(x, training=False)
    assert narrow.shape[-1] == nested.plan.widths("pw1")[2]
    nested.set_subnetwork(2)
    np.testing.assert_allclose(out.numpy(), nested(x, training=False).numpy(), atol=1e-5)


def test_reshape_of_a_sliced_group_is_rejected():
    inputs = keras.Input((4, 5))
    x = keras.layers.Dense(6, name="hidden")(inputs)
    x = keras.layers.Reshape((2, 12), name="fold")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="fold"):
        hads.convert(model)
