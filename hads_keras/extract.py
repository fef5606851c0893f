"""Physically slice one subnetwork out of a nested model."""

import keras
import numpy as np

from hads_keras import _keras_compat
from hads_keras import conversion
from hads_keras._runtime import segment_indices
from hads_keras.layers._base import SlicedLayerMixin
from hads_keras.permute import expand

# The inverse of `convert`'s table: each HADS class -> its Keras class.
_KERAS_CLASSES = {cls: keras_cls for keras_cls, cls in conversion.HADS_CLASSES}


def extract_subnetwork(model, index):
    """A plain Keras model computing subnetwork `index`, with sliced weights.

    Every HADS layer becomes its `keras.layers` class with only its active
    units; kernels are the prefixes (`kernel[:in_k, :out_k]`, through Flatten
    the strided rows, behind a concatenation the rows of every segment's
    active prefix, which the sliced Concatenate packs side by side),
    BatchNormalization gets subnetwork `index`'s moving statistics. This is what a single subnetwork is exported from, and the
    reference the nested model is tested against.

    Args:
        model: a `NestedModel` (or a HADS/Keras model without a plan, for
            which only index 0 exists).
        index: subnetwork index, 0 = full network.
    """
    plan = getattr(model, "plan", None)
    if plan is not None:
        plan.check_subnetwork(index)
    elif index != 0:
        raise ValueError(
            f"Model '{model.name}' has no plan installed, so only subnetwork "
            f"0 exists; got {index}.")
    network = _keras_compat.unwrap(model)

    def widths(layer):
        slicing = layer.hads_slicing if isinstance(layer, SlicedLayerMixin) else None
        if slicing is None:
            return None, None, 1
        in_w = None if slicing.in_widths is None else slicing.in_widths[index]
        out_w = None if slicing.out_widths is None else slicing.out_widths[index]
        if slicing.in_segments is not None:  # the active input channels
            in_w = segment_indices([(c, w[index]) for c, w in slicing.in_segments])
        elif in_w is not None:
            in_w = np.arange(in_w)
        return in_w, out_w, slicing.in_spatial

    def clone_layer(layer):
        config = layer.get_config()
        cls = layer.__class__
        if isinstance(layer, SlicedLayerMixin):
            cls = _KERAS_CLASSES[cls]
            config.pop("num_subnetworks", None)
            config.pop("hads_keep", None)
            _, out_w, _ = widths(layer)
            if out_w is not None:
                config["units" if "units" in config else "filters"] = out_w
        return cls.from_config(config)

    sliced = _keras_compat.clone_graph(network, clone_layer)
    for layer in _keras_compat.layers_with_weights(sliced):
        source = network.get_layer(layer.name)
        values = source.get_weights()
        if isinstance(source, SlicedLayerMixin):
            values = _slice_weights(source, values, index, *widths(source))
        layer.set_weights(values)
    return sliced


def _slice_weights(layer, values, index, in_channels, out_w, in_spatial):
    """Weights of subnetwork `index`; `in_channels`: the indices of its
    active input channels (None: all)."""
    out = list(values)
    if isinstance(layer, keras.layers.BatchNormalization):
        # The row the layer uses in subnetwork `index`: its own when it has
        # widths per subnetwork, row 0 when no sliced layer feeds it.
        row = index if in_channels is not None else 0
        result = []
        for variable, value in zip(layer.weights, values):
            name = variable.path.split("/")[-1]
            if name in ("moving_mean", "moving_variance"):
                value = value[row]
            result.append(value if in_channels is None else value[in_channels])
        return result
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        if in_channels is not None:
            out[0] = values[0][..., in_channels, :]
            if layer.use_bias:
                out[1] = values[1][expand(in_channels, layer.depth_multiplier)]
        return out
    kernel = values[0]
    if in_channels is not None:
        if in_spatial == 1:
            kernel = kernel[..., in_channels, :]
        else:
            channels = kernel.shape[0] // in_spatial
            view = kernel.reshape(in_spatial, channels, kernel.shape[-1])
            kernel = view[:, in_channels, :].reshape(-1, kernel.shape[-1])
    if out_w is not None:
        kernel = kernel[..., :out_w]
        if layer.use_bias:
            out[1] = values[1][:out_w]
    out[0] = np.ascontiguousarray(kernel)
    return out
