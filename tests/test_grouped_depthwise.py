"""ConvNeXt's depthwise convolution, a Conv2D with groups == input channels
== filters, is rewritten by `convert` into a DepthwiseConv2D (same
function); other grouped convolutions and LayerNormalization on sliced
groups stay rejected with the keep=[...] way out."""

import keras
import numpy as np
import pytest

import hads_keras as hads
from hads_keras import layers as hads_layers


def _model(groups=6, norm=None):
    inputs = keras.Input((8, 8, 6))
    x = keras.layers.Conv2D(6, 1, name="a")(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", groups=groups, activation="relu",
                            name="grouped")(x)
    if norm is not None:
        x = norm(x)
    x = keras.layers.Conv2D(4, 1, name="b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


def test_depthwise_grouped_conv_becomes_depthwise_with_the_same_function():
    keras.utils.set_random_seed(0)
    plain = _model()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 6)).astype("float32")
    converted = hads.convert(plain)
    layer = converted.get_layer("grouped")
    assert type(layer) is hads_layers.DepthwiseConv2D and layer.depth_multiplier == 1
    np.testing.assert_allclose(converted(x), plain(x), atol=1e-5)
    # Its channels belong to the group of 'a': sliced with it.
    assert hads.groups(converted).wiring["grouped"].in_group == "a"
    nested = hads.apply(converted, hads.Plan({"a": [6, 3], "b": [4, 2]}))
    nested.set_subnetwork(1)
    np.testing.assert_allclose(nested(x), hads.extract_subnetwork(nested, 1)(x),
                               atol=1e-5)


def test_other_grouped_convs_and_layer_normalization_stay_rejected():
    with pytest.raises(ValueError, match=r"'grouped'.*groups=2.*keep=\['a'\]"):
        hads.convert(_model(groups=2))
    norm = keras.layers.LayerNormalization(name="ln")
    with pytest.raises(ValueError, match=r"'ln' \(LayerNormalization\).*keep=\['a'\]"):
        hads.convert(_model(norm=norm))
