"""Reorder units without changing the function the model computes.

Neurons of a layer can be permuted freely as long as every coupled tensor is
permuted the same way (permutation invariance): the producer's output axis
and bias, the BN parameters and the moving statistics of every subnetwork,
depthwise channels, and the consumer's input rows (through Flatten: one
unit is a strided set of H*W rows; behind a concatenation only the rows of
the group's segment move). Sorting by importance makes every
subnetwork a prefix of every group.
"""

import numpy as np

from hads_keras import _keras_compat
from hads_keras import graph as graph_lib


def order_by_importance(importance):
    """Unit order per group: most important first (stable for ties)."""
    order = {}
    for name, scores in importance.items():
        scores = np.asarray(scores, dtype=np.float64)
        order[name] = np.argsort(-scores, kind="stable")
    return order


def permute(model, order):
    """Return a copy of `model` with the units of each group reordered.

    Args:
        model: a built Sequential/Functional model (HADS or Keras layers).
        order: mapping group name -> permutation of `range(width)`; new unit
            i is old unit `order[group][i]`. Groups not named keep their order.

    Raises:
        ValueError: for unknown or fixed groups and invalid permutations.
    """
    analysis = graph_lib.analyze(model)
    for name, perm in order.items():
        group = analysis[name]
        if group.fixed:
            raise ValueError(f"Group '{name}' is fixed (model input/output) "
                             "and cannot be permuted.")
        if sorted(np.asarray(perm).tolist()) != list(range(group.width)):
            raise ValueError(f"order['{name}'] is not a permutation of "
                             f"range({group.width}).")
    clone = _keras_compat.clone_graph(
        model, lambda layer: layer.__class__.from_config(layer.get_config()))
    weights = {layer.name: layer.get_weights()
               for layer in _keras_compat.layers_with_weights(model)}
    for name, perm in order.items():
        for member in analysis[name].members:
            layer = model.get_layer(member.layer)
            weights[member.layer] = _permute_member(
                layer, weights[member.layer], member, np.asarray(perm))
    for layer in _keras_compat.layers_with_weights(clone):
        layer.set_weights(weights[layer.name])
    return clone


def expand(perm, multiplier):
    """Channel permutation for units of `multiplier` consecutive channels."""
    perm = np.asarray(perm)
    if multiplier == 1:
        return perm
    return (perm[:, None] * multiplier + np.arange(multiplier)).reshape(-1)


def _in_segment(channels, member, axis_length):
    """Full index along an input axis of `axis_length` channels that moves
    only the member's segment, which starts at `member.offset`."""
    if member.offset == 0 and len(channels) == axis_length:
        return channels
    index = np.arange(axis_length)
    index[member.offset:member.offset + len(channels)] = member.offset + channels
    return index


def _permute_member(layer, values, member, perm):
    values = list(values)
    channels = expand(perm, member.multiplier)
    if member.role != "producer":
        in_channels = (values[0].shape[-1] if member.role == "batchnorm"
                       else values[0].shape[-2] if member.spatial == 1
                       else values[0].shape[0] // member.spatial)
        channels = _in_segment(channels, member, in_channels)
    if member.role == "producer":
        values[0] = values[0][..., channels]
        if getattr(layer, "use_bias", False):
            values[1] = values[1][channels]
    elif member.role == "consumer":
        kernel = values[0]
        if member.spatial == 1:
            values[0] = kernel[..., channels, :]
        else:
            full = kernel.shape[0] // member.spatial
            view = kernel.reshape(member.spatial, full, kernel.shape[-1])
            values[0] = view[:, channels, :].reshape(kernel.shape)
    elif member.role == "depthwise":
        values[0] = values[0][..., channels, :]
        if getattr(layer, "use_bias", False):
            values[1] = values[1][expand(channels, layer.depth_multiplier)]
    elif member.role == "batchnorm":
        # gamma, beta: (C,); moving statistics: (C,) or (S, C).
        values = [v[..., channels] for v in values]
    else:  # pragma: no cover - roles are produced by graph.analyze
        raise AssertionError(member.role)
    return values

