"""The model zoo: architectures, costs against hand arithmetic, errors."""

import math

import keras
import numpy as np
import pytest

import hads_keras
from hads_keras import layers as hl
from hads_keras import models


# --- independent cost arithmetic (no hads_keras.costs) -------------------

def dense(n_in, n_out):
    return n_in * n_out, n_in * n_out + n_out


def conv(h_out, w_out, kh, kw, c_in, c_out):
    return h_out * w_out * kh * kw * c_in * c_out, kh * kw * c_in * c_out + c_out


def depthwise(h_out, w_out, kh, kw, c):
    return h_out * w_out * kh * kw * c, kh * kw * c + c


def bn(c):
    return 0, 4 * c


def total(*parts):
    return {"macs": sum(p[0] for p in parts), "params": sum(p[1] for p in parts)}


def valid(n, k, s):
    return (n - k) // s + 1


def same(n, s):
    return math.ceil(n / s)


def dnn_expected(units, features=250, classes=12):
    sizes = [features] + list(units)
    return total(*[dense(a, b) for a, b in zip(sizes, sizes[1:])], dense(units[-1], classes))


def cnn_expected(f1, f2, linear, fc=128, classes=12):
    h1, w1 = valid(49, 10, 1), valid(10, 4, 1)          # 40 x 7
    h2, w2 = valid(h1, 10, 2), valid(w1, 4, 1)          # 16 x 4
    return total(conv(h1, w1, 10, 4, 1, f1), bn(f1),
                 conv(h2, w2, 10, 4, f1, f2), bn(f2),
                 dense(h2 * w2 * f2, linear), dense(linear, fc), bn(fc),
                 dense(fc, classes))


def ds_cnn_expected(c, conv_kernel, conv_stride, block_strides, shape=(49, 10, 1),
                    classes=12):
    h, w = same(shape[0], conv_stride[0]), same(shape[1], conv_stride[1])
    parts = [conv(h, w, *conv_kernel, shape[2], c), bn(c)]
    for s in block_strides:
        h, w = same(h, s), same(w, s)
        parts += [depthwise(h, w, 3, 3, c), bn(c), conv(h, w, 1, 1, c, c), bn(c)]
    parts.append(dense(c, classes))
    return total(*parts)


EXPECTED = {
    ("dnn", "s"): dnn_expected((144,) * 3),
    ("dnn", "l"): dnn_expected((436,) * 3),
    ("cnn", "s"): cnn_expected(28, 30, 16),
    ("cnn", "l"): cnn_expected(60, 76, 58),
    ("ds_cnn", "s"): ds_cnn_expected(64, (10, 4), (2, 2), [1] * 4),
    ("ds_cnn", "l"): ds_cnn_expected(276, (10, 4), (2, 1), [2, 1, 1, 1, 1]),
}


@pytest.mark.parametrize("name,size", sorted(EXPECTED))
def test_kws_costs_match_hand_arithmetic(name, size):
    model = models.get_model(name, size)
    costs = hads_keras.model_costs(model)
    assert costs == EXPECTED[(name, size)]
    assert costs["params"] == model.count_params()
    assert model.output_shape == (None, 12)


def test_hello_edge_operation_counts():
    """Hello Edge Table 4 counts ~2 ops per MAC plus one per bias: the DNN
    figures (158.8 K, 990.2 K) and CNN ones (5.0 M, 25.3 M) come out to the
    digit it shows; DS-CNN (5.4 M, 56.9 M) also counts BN/ReLU/pooling, so
    2 x MACs must land a little below (within 2 %)."""
    def ops(name, size):
        model = models.get_model(name, size)
        costs = hads_keras.model_costs(model)
        biases = sum(int(np.prod(l.bias.shape)) for l in model.layers
                     if getattr(l, "bias", None) is not None)
        return 2 * costs["macs"] + biases

    assert round(ops("dnn", "s") / 1e2) / 10 == 158.8
    assert round(ops("dnn", "l") / 1e2) / 10 == 990.2
    assert round(ops("cnn", "s") / 1e5) / 10 == 5.0
    assert round(ops("cnn", "l") / 1e5) / 10 == 25.3
    for (name, size), paper in {("ds_cnn", "s"): 5.4e6, ("ds_cnn", "l"): 56.9e6}.items():
        assert 0.98 * paper < ops(name, size) <= paper


def test_paper_macs_ordering_and_vision_model():
    vision = models.get_model("ds_cnn_vision", "s", input_shape=(32, 32, 3))
    expected = ds_cnn_expected(64, (3, 3), (2, 2), [1] * 4, shape=(32, 32, 3), classes=10)
    assert hads_keras.model_costs(vision) == expected
    fmnist = models.get_model("ds_cnn_vision", input_shape=(28, 28, 1))
    assert hads_keras.model_costs(fmnist) == ds_cnn_expected(
        64, (3, 3), (2, 2), [1] * 4, shape=(28, 28, 1), classes=10)
    assert any(isinstance(l, keras.layers.LeakyReLU) for l in vision.layers)


def test_models_are_made_of_hads_layers_and_sliceable():
    model = models.get_model("ds_cnn", "s")
    kinds = {type(l) for l in model.layers}
    assert {hl.Conv2D, hl.DepthwiseConv2D, hl.BatchNormalization, hl.Dense} <= kinds
    assert not any(type(l) in (keras.layers.Conv2D, keras.layers.Dense) for l in model.layers)
    analysis = hads_keras.groups(model)
    assert [g.name for g in analysis.sliceable] == [
        "conv1", "ds1_pointwise", "ds2_pointwise", "ds3_pointwise", "ds4_pointwise"]
    assert [g.name for g in hads_keras.groups(models.get_model("cnn", "s")).sliceable] == [
        "conv1", "conv2", "linear", "fc1"]
    assert [g.name for g in hads_keras.groups(models.get_model("dnn", "l")).sliceable] == [
        "fc1", "fc2", "fc3"]


def test_nested_subnetwork_of_zoo_model_runs():
    model = models.get_model("cnn", "s")
    plan = hads_keras.Plan({"conv1": [28, 14], "conv2": [30, 15],
                            "linear": [16, 8], "fc1": [128, 64]})
    nested = hads_keras.apply(model, plan)
    x = np.random.default_rng(0).normal(size=(3, 49, 10, 1)).astype("float32")
    full = nested.predict(x, verbose=0)
    np.testing.assert_allclose(full, model.predict(x, verbose=0), atol=1e-5)
    nested.set_subnetwork(1)
    half = nested.predict(x, verbose=0)
    np.testing.assert_allclose(half.sum(axis=1), 1.0, atol=1e-5)
    assert hads_keras.subnetwork_costs(nested, plan)[1]["macs"] < \
        hads_keras.model_costs(model)["macs"] / 2


def test_dnn_on_49x10_and_logits():
    model = models.get_model("dnn", "s", input_shape=(49, 10, 1),
                             classifier_activation=None)
    assert hads_keras.model_costs(model) == dnn_expected((144,) * 3, features=490)
    assert model.get_layer("classifier").activation is keras.activations.linear


@pytest.mark.parametrize("args,match", [
    (("resnet",), "valid models: dnn .*cnn .*ds_cnn"),
    (("dnn", "m"), "valid sizes: s, l"),
    (("ds_cnn_vision", "l"), "valid sizes: s"),
])
def test_bad_name_or_size_lists_choices(args, match):
    with pytest.raises(ValueError, match=match):
        models.get_model(*args)


def test_bad_shape_and_classes():
    with pytest.raises(ValueError, match="input_shape must be 3"):
        models.get_model("ds_cnn", "s", input_shape=(49, 10))
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        models.get_model("cnn", "s", num_classes=1)
