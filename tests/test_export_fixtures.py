"""Trained nested models of the three families on the demo data, for the
export tests (imported by the other `test_export*` files).

Data: scikit-learn's `load_digits` (8x8 images, 10 classes), 1000 samples
for training, the other 797 for testing (1 point = 8 samples), the first
500 training samples for int8 calibration. Each family is trained as a
plain model, turned into a nested model of 3 subnetworks and fine-tuned
with `NestedModel.fit`, so every subnetwork (and every per-subnetwork BN
statistic) is a trained one. Exports are computed once per session and
cached.
"""

import functools

import keras
import numpy as np
import pytest

import hads_keras as hads
from hads_keras import export
from hads_keras import layers as L

FAMILIES = ("dnn", "cnn", "ds_cnn")

PLANS = {
    "dnn": {"fc1": [32, 20, 12], "fc2": [24, 16, 10]},
    "cnn": {"conv1": [8, 6, 4], "conv2": [8, 5, 3], "fc1": [24, 16, 8]},
    "ds_cnn": {"conv0": [12, 9, 6], "pw1": [16, 12, 8], "pw2": [16, 12, 8]},
}


@functools.lru_cache(maxsize=None)
def digits():
    """(x_train, y_train, x_test, y_test, representative) of load_digits."""
    from sklearn.datasets import load_digits
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    return x[:1000], y[:1000], x[1000:], y[1000:], x[:500]


def build(family):
    """A small model of `family` for 8x8x1 inputs, made of HADS layers."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1), name="image")
    if family == "dnn":
        x = keras.layers.Flatten(name="flatten")(inputs)
        x = L.Dense(32, activation="relu", name="fc1")(x)
        x = L.Dense(24, name="fc2")(x)
        x = keras.layers.ReLU(name="relu2")(x)
        outputs = L.Dense(10, name="logits")(x)  # logits: no softmax
    elif family == "cnn":
        x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = L.Conv2D(8, 3, padding="valid", activation="relu", name="conv2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = L.Dense(24, activation="relu", name="fc1")(x)
        outputs = L.Dense(10, activation="softmax", name="probs")(x)
    elif family == "ds_cnn":
        x = L.Conv2D(12, 3, padding="same", use_bias=False, name="conv0")(inputs)
        x = L.BatchNormalization(momentum=0.9, name="bn0")(x)
        x = keras.layers.ReLU(name="relu0")(x)
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw1")(x)
        x = L.BatchNormalization(momentum=0.9, name="dw1_bn")(x)
        x = keras.layers.ReLU(name="dw1_relu")(x)
        x = L.Conv2D(16, 1, use_bias=False, name="pw1")(x)
        x = L.BatchNormalization(momentum=0.9, name="pw1_bn")(x)
        x = keras.layers.ReLU(name="pw1_relu")(x)
        # A depth multiplier of 2 and a stride: out channel c*2+m reads c.
        x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                              use_bias=False, name="dw2")(x)
        x = L.BatchNormalization(momentum=0.9, name="dw2_bn")(x)
        x = keras.layers.ReLU(name="dw2_relu")(x)
        x = L.Conv2D(16, 1, use_bias=False, name="pw2")(x)
        x = L.BatchNormalization(momentum=0.9, name="pw2_bn")(x)
        x = keras.layers.ReLU(name="pw2_relu")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = L.Dense(10, name="logits")(x)
    else:
        raise ValueError(family)
    return keras.Model(inputs, outputs, name=family)


def _loss(family):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=family != "cnn")


@functools.lru_cache(maxsize=None)
def trained(family):
    """The fine-tuned `NestedModel` of `family`."""
    x, y, _, _, _ = digits()
    model = build(family)
    model.compile(keras.optimizers.Adam(0.01), _loss(family), metrics=["accuracy"])
    model.fit(x, y, epochs=18, batch_size=64, verbose=0)
    nested = hads.apply(model, hads.Plan(PLANS[family]))
    nested.compile(keras.optimizers.Adam(0.005), _loss(family), metrics=["accuracy"])
    nested.fit(x, y, epochs=12, batch_size=64, verbose=0)
    return nested


@functools.lru_cache(maxsize=None)
def exported(family):
    """Everything the export tests look at, computed once per family."""
    _, _, x_test, y_test, rep = digits()
    nested = trained(family)
    nested_bytes = export.tflite_nested(nested, None, rep,
                                        labels=[f"digit {d}" for d in range(10)])
    report = export.subnetwork_report(nested, x_test, y_test, rep,
                                      nested_bytes=nested_bytes)
    return nested, nested_bytes, report


@functools.lru_cache(maxsize=None)
def exported_reduced():
    """The trained DS-CNN's full network under a plan whose subnetwork 0 is
    below the model (its subnetworks 1 and 2): (nested model, bytes of its
    nested export). `hads.apply` keeps only subnetwork 0's units."""
    x, _, _, _, rep = digits()
    model = hads.extract_subnetwork(trained("ds_cnn"), 0)
    plan = hads.Plan({g: w[1:] for g, w in PLANS["ds_cnn"].items()},
                     full_widths={g: w[0] for g, w in PLANS["ds_cnn"].items()})
    nested = hads.apply(model, plan, calibration_data=x)
    return nested, export.tflite_nested(nested, None, rep)


def test_families_train_to_useful_accuracy():
    """The fixtures are trained models, so 1-point comparisons mean something."""
    _, _, x_test, y_test, _ = digits()
    for family in FAMILIES:
        nested = trained(family)
        for k in range(nested.plan.num_subnetworks):
            with nested.subnetwork(k):
                out = nested.predict(x_test, verbose=0)
            acc = float(np.mean(out.argmax(-1) == y_test))
            assert acc > 0.7, (family, k, acc)  # chance is 0.1


@pytest.fixture(scope="session", params=FAMILIES)
def family_export(request):
    """(family, nested model, nested bytes, report) for each family."""
    return (request.param,) + exported(request.param)
