"""Reorder units without changing the function the model computes.

Neurons of a layer can be permuted freely as long as every coupled tensor is
permuted the same way (permutation invariance): the producer's output axis
and bias, the BN parameters and the moving statistics of every subnetwork,
depthwise channels, and the consumer's input rows (through Flatten: one
unit is a strided set of H*W rows; behind a concatenation only the rows of
the group's segment move). Sorting by importance makes every
subnetwork a prefix of every group.

`select_units` is the same with fewer units: it keeps a list of units per
group (a largest subnetwork under budget keeps only the units it uses), so
the copy is physically smaller.
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
        group = _sliceable(analysis, name, "permuted")
        if sorted(np.asarray(perm).tolist()) != list(range(group.width)):
            raise ValueError(f"order['{name}'] is not a permutation of "
                             f"range({group.width}).")
    return _gather(model, analysis, order)


def select_units(model, units):
    """A copy of `model` keeping, per group, only the listed units.

    Args:
        model: a built Sequential/Functional model (HADS or Keras layers).
        units: mapping group name -> distinct unit indices; new unit i is
            old unit `units[group][i]` (a prefix of an importance order
            keeps the most important units). Groups not named keep all
            their units. Layers producing a group get `units`/`filters`
            set to the number kept.

    Raises:
        ValueError: for unknown or fixed groups, repeated or out-of-range
            indices, or an empty selection.
    """
    analysis = graph_lib.analyze(model)
    for name, kept in units.items():
        group = _sliceable(analysis, name, "cut")
        kept = np.asarray(kept)
        if kept.ndim != 1 or kept.size == 0 or len(set(kept.tolist())) != kept.size \
                or kept.min() < 0 or kept.max() >= group.width:
            raise ValueError(
                f"units['{name}'] must list distinct unit indices in "
                f"range({group.width}) (at least one), got {kept.tolist()}.")
    return _gather(model, analysis, units)


def _sliceable(analysis, name, what):
    group = analysis[name]
    if group.fixed:
        raise ValueError(f"Group '{name}' is fixed (model input/output or kept "
                         f"whole) and cannot be {what}.")
    return group


def _gather(model, analysis, units):
    """Clone `model` with the units of each named group taken in the order
    (and number) `units` gives."""
    from hads_keras.conversion import channel_reshapes
    counts = {}
    for name, kept in units.items():
        for member in analysis[name].members:
            if member.role == "producer":
                counts[member.layer] = len(kept)
    reshapes = channel_reshapes(model)

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in counts:
            config["units" if "units" in config else "filters"] = counts[layer.name]
        if layer.name in reshapes:
            config["target_shape"] = reshapes[layer.name]
        return layer.__class__.from_config(config)

    clone = _keras_compat.clone_graph(model, clone_layer)
    weights = {layer.name: layer.get_weights()
               for layer in _keras_compat.layers_with_weights(model)}
    for name, kept in units.items():
        for member in analysis[name].members:
            layer = model.get_layer(member.layer)
            weights[member.layer] = _permute_member(
                layer, weights[member.layer], member, np.asarray(kept),
                analysis[name].width)
    for layer in _keras_compat.layers_with_weights(clone):
        layer.set_weights(weights[layer.name])
    return clone


def expand(perm, multiplier):
    """Channel permutation for units of `multiplier` consecutive channels."""
    perm = np.asarray(perm)
    if multiplier == 1:
        return perm
    return (perm[:, None] * multiplier + np.arange(multiplier)).reshape(-1)


def _in_segment(channels, member, axis_length, segment_length):
    """Full index along an input axis of `axis_length` channels that takes
    `channels` (reordered, or fewer of them when units are dropped) from the
    member's segment of `segment_length` channels at `member.offset` and
    keeps every channel outside it."""
    start, end = member.offset, member.offset + segment_length
    return np.concatenate([np.arange(start), start + np.asarray(channels),
                           np.arange(end, axis_length)]).astype(np.int64)


def _permute_member(layer, values, member, perm, group_width):
    values = list(values)
    channels = expand(perm, member.multiplier)
    if member.role != "producer":
        in_channels = (values[0].shape[-1] if member.role == "batchnorm"
                       else values[0].shape[-2] if member.spatial == 1
                       else values[0].shape[0] // member.spatial)
        channels = _in_segment(channels, member, in_channels,
                               group_width * member.multiplier)
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
            values[0] = view[:, channels, :].reshape(-1, kernel.shape[-1])
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

