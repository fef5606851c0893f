"""Turn a Keras model into its HADS equivalent, keeping the trained weights."""

import keras
import numpy as np

from hads_keras import _keras_compat
from hads_keras import graph as graph_lib
from hads_keras import layers as hads_layers

HADS_CLASSES = (
    (keras.layers.DepthwiseConv2D, hads_layers.DepthwiseConv2D),
    (keras.layers.Conv2D, hads_layers.Conv2D),
    (keras.layers.Conv1D, hads_layers.Conv1D),
    (keras.layers.Dense, hads_layers.Dense),
    (keras.layers.BatchNormalization, hads_layers.BatchNormalization),
)

_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


def hads_class(layer):
    """The HADS class replacing `layer`'s class, or None."""
    if getattr(layer, "groups", 1) != 1:
        return None  # grouped convolutions stay Keras layers (kept whole)
    for keras_cls, cls in HADS_CLASSES:
        if isinstance(layer, keras_cls):
            if type(layer) not in (keras_cls, cls):
                raise ValueError(
                    f"Layer '{layer.name}' is a {type(layer).__name__}, a "
                    f"subclass of {keras_cls.__name__} that HADS cannot "
                    "convert safely; use the plain Keras class.")
            return cls
    return None


def convert(model, num_subnetworks=1, keep=()):
    """Convert a built Sequential/Functional model to HADS layers.

    Dense, Conv1D, Conv2D, DepthwiseConv2D and BatchNormalization become
    their `hads_keras.layers` counterparts with the same configuration and
    weights; SeparableConv2D becomes DepthwiseConv2D (named
    `<name>_depthwise`) followed by a 1x1 Conv2D (keeping the name), and a
    Conv2D with groups == input channels == filters (ConvNeXt's depthwise
    convolution) a DepthwiseConv2D of the same name, which compute the same
    functions; width-agnostic layers (activations, pooling,
    Flatten, Dropout, Reshape, merges, preprocessing) are copied as they are.
    Before a plan is installed the result computes what the original
    computes.

    Args:
        model: a built `keras.Sequential` or Functional model (HADS or plain
            Keras layers).
        num_subnetworks: rows of BatchNormalization statistics (1 for a
            plain conversion; `hads_keras.apply` uses the plan's count and
            starts every row from the trained statistics).
        keep: names of groups or layers to keep whole: their groups are
            never sliced (their costs still count). The converted layers
            remember it (`hads_keep` in their config).

    A compiled `model` gives a result compiled the same way (Keras's
    `clone_model` does it: same loss, metrics and optimizer settings, a
    fresh optimizer state), so `fit` works right away; an uncompiled one
    must be compiled before `fit`.

    Raises:
        ValueError: naming the layer, for subclassed or unbuilt models and for
            structures HADS cannot slice (with the way out: `keep=`, a
            rewrite).
    """
    model = rewrite_separable(model)
    analysis = graph_lib.analyze(model, keep)  # rejects what cannot be sliced
    kept_layers = {m.layer for g in analysis.groups if g.kept
                   for m in g.members if m.role != "consumer"}
    reshapes = channel_reshapes(model)

    def clone_layer(layer):
        cls = hads_class(layer)
        config = layer.get_config()
        if layer.name in reshapes:
            config["target_shape"] = reshapes[layer.name]
        if cls is None:
            return layer.__class__.from_config(config)
        if cls is hads_layers.BatchNormalization:
            config["num_subnetworks"] = num_subnetworks
        if layer.name in kept_layers:
            config["hads_keep"] = True
        return cls.from_config(config)

    converted = _keras_compat.clone_graph(model, clone_layer)
    copy_weights(model, converted)
    return converted


def channel_reshapes(model):
    """Reshapes that keep the channel axis last get `-1` there, so that the
    narrow tensors of a static subnetwork pass them (same function)."""
    out = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Reshape):
            continue
        target = tuple(layer.target_shape)
        if -1 not in target[:-1] and target[-1] == layer.input.shape[-1]:
            out[layer.name] = target[:-1] + (-1,)
    return out


def _is_depthwise_grouped(layer):
    """A Conv2D with groups == input channels == filters (ConvNeXt): the
    same function as a DepthwiseConv2D with depth multiplier 1."""
    return (type(layer) is keras.layers.Conv2D and layer.groups != 1
            and layer.groups == layer.input.shape[-1] == layer.filters)


def rewrite_separable(model):
    """The same model with every SeparableConv2D written as DepthwiseConv2D +
    1x1 Conv2D, and every depthwise-grouped Conv2D (groups == input channels
    == filters) as DepthwiseConv2D (exactly the same functions;
    SeparableConv1D is rejected)."""
    separable = [l for l in model.layers if isinstance(l, _SEPARABLE)]
    grouped = {l.name for l in model.layers if _is_depthwise_grouped(l)}
    if not separable and not grouped:
        return model
    for layer in separable:
        if isinstance(layer, keras.layers.SeparableConv1D):
            raise ValueError(
                f"Layer '{layer.name}' is a SeparableConv1D, which HADS does not "
                "support; write it as DepthwiseConv2D + 1x1 Conv2D on a "
                "Reshape to (T, 1, C), or use Conv1D.")
    functional = _keras_compat.as_functional(model)
    if isinstance(model, keras.Sequential):
        functional = keras.Model(model.inputs, model.outputs, name=model.name)
    pieces = {}

    def clone_layer(layer):
        c = layer.get_config()
        if layer.name in grouped:
            return keras.layers.DepthwiseConv2D(
                kernel_size=c["kernel_size"], strides=c["strides"],
                padding=c["padding"], depth_multiplier=1,
                dilation_rate=c["dilation_rate"], activation=c["activation"],
                use_bias=c["use_bias"],
                depthwise_initializer=c["kernel_initializer"],
                depthwise_regularizer=c["kernel_regularizer"],
                depthwise_constraint=c["kernel_constraint"],
                bias_initializer=c["bias_initializer"],
                bias_regularizer=c["bias_regularizer"],
                bias_constraint=c["bias_constraint"],
                activity_regularizer=c.get("activity_regularizer"),
                name=layer.name, dtype=c.get("dtype"))
        if not isinstance(layer, _SEPARABLE):
            return layer.__class__.from_config(c)
        depthwise = keras.layers.DepthwiseConv2D(
            kernel_size=c["kernel_size"], strides=c["strides"],
            padding=c["padding"], depth_multiplier=c["depth_multiplier"],
            dilation_rate=c["dilation_rate"], use_bias=False,
            depthwise_initializer=c["depthwise_initializer"],
            depthwise_regularizer=c["depthwise_regularizer"],
            depthwise_constraint=c["depthwise_constraint"],
            name=f"{layer.name}_depthwise", dtype=c.get("dtype"))
        pointwise = keras.layers.Conv2D(
            c["filters"], 1, activation=c["activation"], use_bias=c["use_bias"],
            kernel_initializer=c["pointwise_initializer"],
            kernel_regularizer=c["pointwise_regularizer"],
            kernel_constraint=c["pointwise_constraint"],
            bias_initializer=c["bias_initializer"],
            bias_regularizer=c["bias_regularizer"],
            bias_constraint=c["bias_constraint"],
            activity_regularizer=c.get("activity_regularizer"),
            name=layer.name, dtype=c.get("dtype"))
        pieces[layer.name] = (depthwise, pointwise)
        return pointwise

    def call_function(layer, *args, **kwargs):
        if layer.name in pieces and layer is pieces[layer.name][1]:
            return layer(pieces[layer.name][0](*args, **kwargs))
        return layer(*args, **kwargs)

    rewritten = keras.models.clone_model(functional, clone_function=clone_layer,
                                         call_function=call_function)
    depthwise_names = {d.name for d, _ in pieces.values()}
    for layer in _keras_compat.layers_with_weights(rewritten):
        if layer.name in depthwise_names:
            continue  # set with its pointwise half below
        values = model.get_layer(layer.name).get_weights()
        if layer.name in pieces:
            # SeparableConv weights: depthwise kernel, pointwise kernel, bias.
            layer.set_weights([values[1]] + values[2:])
            pieces[layer.name][0].set_weights([values[0]])
        elif layer.name in grouped:
            # Grouped kernel (kh, kw, 1, C): output channel c reads input c,
            # the depthwise kernel (kh, kw, C, 1).
            kernel = values[0]
            layer.set_weights([np.swapaxes(kernel, 2, 3)] + values[1:])
        else:
            layer.set_weights(values)
    return rewritten


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
