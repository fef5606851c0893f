"""Turn a Keras model into its HADS equivalent, keeping the trained weights."""

import keras
import numpy as np

from hads_keras import _keras_compat
from hads_keras import graph as graph_lib
from hads_keras import layers as hads_layers

HADS_CLASSES = (
    (keras.layers.DepthwiseConv2D, hads_layers.DepthwiseConv2D),
    (keras.layers.Conv2D, hads_layers.Conv2D),
    (keras.layers.Dense, hads_layers.Dense),
    (keras.layers.BatchNormalization, hads_layers.BatchNormalization),
)


def hads_class(layer):
    """The HADS class replacing `layer`'s class, or None."""
    for keras_cls, cls in HADS_CLASSES:
        if isinstance(layer, keras_cls):
            if type(layer) not in (keras_cls, cls):
                raise ValueError(
                    f"Layer '{layer.name}' is a {type(layer).__name__}, a "
                    f"subclass of {keras_cls.__name__} that HADS cannot "
                    "convert safely; use the plain Keras class.")
            return cls
    return None


def convert(model, num_subnetworks=1):
    """Convert a built Sequential/Functional model to HADS layers.

    Dense, Conv2D, DepthwiseConv2D and BatchNormalization become their
    `hads_keras.layers` counterparts with the same configuration and weights;
    width-agnostic layers (activations, pooling, Flatten, Dropout, Reshape,
    Softmax) are copied as they are. Before a plan is installed the result
    computes exactly what the original computes.

    Args:
        model: a built `keras.Sequential` or Functional model (HADS or plain
            Keras layers).
        num_subnetworks: rows of BatchNormalization statistics (1 for a
            plain conversion; `hads_keras.apply` uses the plan's count and
            starts every row from the trained statistics).

    A compiled `model` gives a result compiled the same way (Keras's
    `clone_model` does it: same loss, metrics and optimizer settings, a
    fresh optimizer state), so `fit` works right away; an uncompiled one
    must be compiled before `fit`.

    Raises:
        ValueError: naming the layer, for subclassed or unbuilt models and for
            structures HADS cannot slice (merges of sliced branches, RNNs,
            grouped convolutions, ...).
    """
    graph_lib.analyze(model)  # rejects unsupported structures up front

    def clone_layer(layer):
        cls = hads_class(layer)
        config = layer.get_config()
        if cls is None:
            return layer.__class__.from_config(config)
        if cls is hads_layers.BatchNormalization:
            config["num_subnetworks"] = num_subnetworks
        return cls.from_config(config)

    converted = _keras_compat.clone_graph(model, clone_layer)
    copy_weights(model, converted)
    return converted


def copy_weights(source, target):
    """Copy weights layer by layer (same names), tiling BN statistics rows."""
    for layer in _keras_compat.layers_with_weights(target):
        src = source.get_layer(layer.name)
        values = src.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization) and values:
            values = _bn_weights_for(layer, src, values)
        layer.set_weights(values)


def _bn_weights_for(target, source, values):
    """Map BN weights between plain (C,) and per-subnetwork (S, C) statistics.

    Statistics of the same shape are copied as they are; otherwise every row
    of the target starts from the source's full-network statistics.
    """
    out = []
    for variable, value in zip(target.weights, values):
        if tuple(variable.shape) != value.shape:
            base = value if value.ndim == 1 else value[0]
            value = (base if len(variable.shape) == 1
                     else np.tile(base, (variable.shape[0], 1)))
        out.append(value)
    return out
