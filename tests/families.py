"""The paper's three model families, small, for tests (Hello Edge shapes).

Each builder returns a built Functional model made of `keras.layers`
(hads=False) or `hads_keras.layers` (hads=True) with identical names, plus a
hand-written plan of 4 nested subnetworks for it.
"""

import keras
import numpy as np

from hads_keras import layers as hads_layers


def _ns(hads):
    return hads_layers if hads else keras.layers


def dnn(hads=True, seed=0):
    """Dense-ReLU-Dense-ReLU-Dense on a 49x10 input (flattened)."""
    keras.utils.set_random_seed(seed)
    L = _ns(hads)
    inputs = keras.Input((49, 10), name="mfcc")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = L.Dense(24, activation="relu", name="fc1")(x)
    x = L.Dense(20, name="fc2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    outputs = L.Dense(12, name="logits")(x)
    return keras.Model(inputs, outputs, name="dnn")


def cnn(hads=True, seed=0):
    """Conv2D, Conv2D, Flatten, Dense, Dense (Flatten between conv and dense)."""
    keras.utils.set_random_seed(seed)
    L = _ns(hads)
    inputs = keras.Input((12, 10, 1), name="mfcc")
    x = L.Conv2D(6, (4, 3), padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(5, 3, strides=(2, 1), activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = L.Dense(16, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.1, name="dropout")(x)
    outputs = L.Dense(12, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="cnn")


def ds_cnn(hads=True, seed=0, blocks=2, channels=8, depth_multiplier=1):
    """Conv2D+BN+ReLU, DS blocks (DepthwiseConv2D+BN+ReLU, 1x1 Conv2D+BN+ReLU), GAP, Dense."""
    keras.utils.set_random_seed(seed)
    L = _ns(hads)
    inputs = keras.Input((16, 10, 1), name="mfcc")
    x = L.Conv2D(channels, (5, 3), strides=2, padding="same", use_bias=False, name="conv0")(inputs)
    x = L.BatchNormalization(name="bn0")(x)
    x = keras.layers.ReLU(name="relu0")(x)
    for b in range(1, blocks + 1):
        x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=depth_multiplier,
                              use_bias=False, name=f"dw{b}")(x)
        x = L.BatchNormalization(name=f"dw{b}_bn")(x)
        x = keras.layers.ReLU(name=f"dw{b}_relu")(x)
        x = L.Conv2D(channels, 1, use_bias=False, name=f"pw{b}")(x)
        x = L.BatchNormalization(name=f"pw{b}_bn")(x)
        x = keras.layers.ReLU(name=f"pw{b}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(12, name="logits")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


BUILDERS = {"dnn": dnn, "cnn": cnn, "ds_cnn": ds_cnn}

PLANS = {
    "dnn": {"fc1": [24, 18, 12, 5], "fc2": [20, 16, 9, 3]},
    "cnn": {"conv1": [6, 5, 3, 2], "conv2": [5, 4, 3, 1], "fc1": [16, 11, 8, 4]},
    "ds_cnn": {"conv0": [8, 6, 4, 2], "pw1": [8, 7, 5, 3], "pw2": [8, 5, 4, 1]},
}


def randomize_batchnorm(model, seed=0):
    """Give every BN non-trivial parameters and different statistics per row."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            values = []
            for w in layer.weights:
                name = w.path.split("/")[-1]
                shape = tuple(w.shape)
                if name == "moving_variance":
                    values.append(rng.uniform(0.5, 2.0, shape).astype("float32"))
                else:
                    values.append(rng.normal(0, 0.5, shape).astype("float32")
                                  + (1.0 if name == "gamma" else 0.0))
            layer.set_weights(values)


def inputs_for(model, n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + tuple(model.inputs[0].shape[1:])).astype("float32")


def conv_toy(filters=8, flatten_head=False):
    """Conv -> depthwise -> pointwise -> head, converted to HADS layers: the
    small model of the latency-table tests (two sliced groups, "conv" and
    "pw"). `flatten_head` puts Flatten + Dense "fc" before the head instead
    of global average pooling."""
    import hads_keras
    head = ([keras.layers.Flatten(), keras.layers.Dense(5, name="fc")]
            if flatten_head else [keras.layers.GlobalAveragePooling2D()])
    return hads_keras.convert(keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(filters, 3, name="conv"),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.Conv2D(6, 1, name="pw"),
        *head,
        keras.layers.Dense(4, name="head"),
    ], name="toy"))


def assert_subnetworks_match_extraction(nested, x, atol=1e-5):
    """Every subnetwork of `nested`, on the dynamic path and on the static
    training path (narrow or packed tensors), equals its extracted plain
    model on `x`. Returns the extracted models."""
    import hads_keras
    extracted = []
    for k in range(nested.num_subnetworks):
        nested.set_subnetwork(k)
        sub = hads_keras.extract_subnetwork(nested, k)
        want = sub(x)
        np.testing.assert_allclose(nested(x), want, atol=atol)
        with hads_keras.static_subnetwork(k):
            np.testing.assert_allclose(nested.hads_network(x), want, atol=atol)
        extracted.append(sub)
    return extracted
