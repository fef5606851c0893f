"""Which channels of a Keras model are coupled: the *groups*.

A slicing point belongs to a group of coupled channels, not to a layer: the
output units of a Dense/Conv2D, the BatchNormalization after it, a following
DepthwiseConv2D (its channels follow its input) and the input rows of the
next Dense/Conv2D (through Flatten: one channel is H*W rows). Permutation,
slicing, costs and export all read this one description.

    >>> print(hads_keras.groups(model))
"""

import dataclasses
import math

import keras

from hads_keras import _keras_compat

# Layers that act on every channel independently (or on no channel axis at
# all): a zero-padded inactive channel stays in its own lane through them.
_CHANNELWISE = (
    keras.layers.InputLayer,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.ELU,
    keras.layers.LeakyReLU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.MaxPooling1D,
    keras.layers.AveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
)

# Element-wise but mixing channels: fine on fixed groups only.
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")

_MERGE = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Concatenate,
    keras.layers.Dot,
)


@dataclasses.dataclass(frozen=True)
class Member:
    """One layer's share of a group.

    Attributes:
        layer: the layer's name.
        role: "producer" (output units of a Dense/Conv2D), "batchnorm",
            "depthwise" (channels of a DepthwiseConv2D) or "consumer"
            (input channels of a Dense/Conv2D).
        multiplier: channels of this layer per unit of the group (depthwise
            multipliers upstream multiply it); unit u owns channels
            [u * multiplier, (u + 1) * multiplier).
        spatial: for a consumer behind Flatten, positions per channel: the
            flattened input is spatial x channels, channels fastest.
    """

    layer: str
    role: str
    multiplier: int = 1
    spatial: int = 1

    def __str__(self):
        text = f"{self.layer}:{self.role}"
        if self.multiplier != 1:
            text += f"x{self.multiplier}"
        if self.spatial != 1:
            text += f"@{self.spatial}pos"
        return text


@dataclasses.dataclass
class Group:
    """Channels that share one slicing point.

    Attributes:
        name: the producing layer's name, or "input" for a model input.
        width: number of units (full width).
        members: every layer that touches these channels.
        fixed: True for model inputs and for groups that reach a model
            output: these are never sliced.
    """

    name: str
    width: int
    members: list
    fixed: bool = False

    def members_with_role(self, role):
        return [m for m in self.members if m.role == role]


@dataclasses.dataclass(frozen=True)
class LayerWiring:
    """Where one Dense/Conv2D/DepthwiseConv2D/BatchNormalization sits.

    Attributes:
        layer: layer name.
        kind: "dense", "conv2d", "depthwise" or "batchnorm".
        in_group: name of the group of its input channels.
        in_multiplier: input channels per unit of `in_group`.
        in_spatial: positions per channel of a flattened input (Dense).
        out_group: name of the group it produces (Dense/Conv2D), else None.
    """

    layer: str
    kind: str
    in_group: str
    in_multiplier: int = 1
    in_spatial: int = 1
    out_group: str = None


class GraphAnalysis:
    """The groups of a model and the wiring of its sliceable layers."""

    def __init__(self, groups, wiring, model):
        self.groups = groups
        self.wiring = wiring
        self.model = model

    def __iter__(self):
        return iter(self.groups)

    def __len__(self):
        return len(self.groups)

    def __getitem__(self, name):
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"No group named '{name}'. Groups: "
                       f"{[g.name for g in self.groups]}")

    @property
    def sliceable(self):
        """The groups a plan may slice, in network order."""
        return [g for g in self.groups if not g.fixed]

    def __str__(self):
        rows = [("group", "width", "sliced", "members")]
        for g in self.groups:
            rows.append((g.name, str(g.width), "no" if g.fixed else "yes",
                         " ".join(str(m) for m in g.members)))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = []
        for r in rows:
            lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3))
                         + "  " + r[3])
        return "\n".join(lines)

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class _Tag:
    """What the last axis of a tensor holds: units of `group`."""

    group: Group
    multiplier: int = 1
    spatial: int = 1


def _kind(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, keras.layers.Conv2D):
        return "conv2d"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "batchnorm"
    return None


def analyze(model):
    """Find the groups of a built Sequential or Functional Keras model.

    Raises:
        ValueError: naming the layer, for structures that cannot be sliced
            yet (merges of sliced branches, recurrent layers, nested models,
            shared layers, channels_first, ...).
    """
    functional = _keras_compat.as_functional(model)
    groups, wiring, tags = [], {}, {}
    mixing_checks = []

    def new_group(name, width, fixed=False):
        group = Group(name=name, width=int(width), members=[], fixed=fixed)
        groups.append(group)
        return group

    seen_layers = set()
    for node in _keras_compat.ordered_nodes(functional):
        layer = node.operation
        if id(layer) in seen_layers:
            raise ValueError(
                f"Layer '{layer.name}' is called more than once (a shared "
                "layer); HADS cannot slice shared layers.")
        seen_layers.add(id(layer))
        inputs = node.input_tensors
        outputs = node.output_tensors
        if isinstance(layer, keras.layers.InputLayer) or not inputs:
            for i, t in enumerate(outputs):
                name = "input" if len(functional.inputs) == 1 else f"input:{layer.name}"
                tags[id(t)] = _Tag(new_group(name, t.shape[-1], fixed=True))
            continue
        in_tags = [tags[id(t)] for t in inputs]
        kind = _kind(layer)
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Layer '{layer.name}' is a nested model; HADS needs a flat "
                "model. Build it as one Sequential/Functional model.")
        if kind is not None and len(inputs) != 1:
            raise ValueError(f"Layer '{layer.name}' has {len(inputs)} inputs; expected 1.")
        if kind is not None:
            _check_channels_last(layer)
            tag = in_tags[0]
            out = outputs[0]
            if kind in ("dense", "conv2d"):
                if kind == "conv2d" and tag.spatial != 1:
                    raise ValueError(
                        f"Layer '{layer.name}': a Conv2D after a Flatten of a "
                        "sliced group is not supported.")
                if getattr(layer, "groups", 1) != 1:
                    raise ValueError(
                        f"Layer '{layer.name}': Conv2D with groups="
                        f"{layer.groups} cannot be sliced; use groups=1.")
                tag.group.members.append(Member(
                    layer.name, "consumer", tag.multiplier, tag.spatial))
                produced = new_group(layer.name, out.shape[-1])
                produced.members.append(Member(layer.name, "producer"))
                wiring[layer.name] = LayerWiring(
                    layer.name, kind, tag.group.name, tag.multiplier,
                    tag.spatial, produced.name)
                tags[id(out)] = _Tag(produced)
            else:
                if tag.spatial != 1:
                    raise ValueError(
                        f"Layer '{layer.name}' follows a Flatten of a sliced "
                        "group; HADS cannot slice that.")
                role = "depthwise" if kind == "depthwise" else "batchnorm"
                tag.group.members.append(Member(layer.name, role, tag.multiplier))
                wiring[layer.name] = LayerWiring(
                    layer.name, kind, tag.group.name, tag.multiplier)
                multiplier = tag.multiplier * (
                    layer.depth_multiplier if kind == "depthwise" else 1)
                tags[id(out)] = _Tag(tag.group, multiplier)
            continue

        all_fixed = all(t.group.fixed for t in in_tags)
        if isinstance(layer, keras.layers.Flatten):
            tag = in_tags[0]
            spatial = math.prod(inputs[0].shape[1:-1]) * tag.spatial
            tags[id(outputs[0])] = _Tag(tag.group, tag.multiplier, spatial)
        elif isinstance(layer, keras.layers.Reshape) and all_fixed:
            tags[id(outputs[0])] = _Tag(in_tags[0].group)
        elif isinstance(layer, keras.layers.Reshape):
            raise ValueError(
                f"Layer '{layer.name}' reshapes the sliced group "
                f"'{in_tags[0].group.name}' to the fixed shape "
                f"{layer.target_shape}, which narrower subnetworks cannot "
                "match; use Flatten (or reshape before the first sliced layer).")
        elif isinstance(layer, _CHANNELWISE) or (
                isinstance(layer, keras.layers.Softmax)):
            if len(inputs) != 1:
                raise ValueError(f"Layer '{layer.name}' has {len(inputs)} inputs; expected 1.")
            if _mixes_channels(layer):
                mixing_checks.append((layer, in_tags[0]))
            for t in outputs:
                tags[id(t)] = in_tags[0]
        elif all_fixed:
            # Anything on unsliced data (preprocessing of the model input,
            # say) is fine: its output is another fixed group.
            for t in outputs:
                tags[id(t)] = _Tag(in_tags[0].group if len(in_tags) == 1 and
                                   t.shape[-1] == inputs[0].shape[-1]
                                   else new_group(layer.name, t.shape[-1], fixed=True))
        elif isinstance(layer, _MERGE):
            sliced = sorted({t.group.name for t in in_tags if not t.group.fixed})
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) merges "
                f"branches that carry sliced groups {sliced}; HADS cannot "
                "slice residual/concatenated structures yet. Remove the "
                "merge or keep its branches unsliced.")
        else:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) follows the "
                f"sliced group '{in_tags[0].group.name}' and is not known to "
                "be width-agnostic; HADS supports Dense, Conv2D, "
                "DepthwiseConv2D, BatchNormalization and channel-wise layers "
                "(activations, pooling, Flatten, Dropout) between them.")

    for t in functional.outputs:
        tags[id(t)].group.fixed = True
    for layer, tag in mixing_checks:
        if not tag.group.fixed:
            raise ValueError(
                f"Layer '{layer.name}' mixes channels (softmax) of the sliced "
                f"group '{tag.group.name}'; apply it to the model output only.")
    return GraphAnalysis(groups, wiring, model)


def groups(model):
    """The groups of `model` (a `GraphAnalysis`; print it for a table)."""
    return analyze(model)


def _mixes_channels(layer):
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return name in _CHANNEL_MIXING_ACTIVATIONS


def _check_channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"Layer '{layer.name}': only data_format='channels_last' is "
            "supported.")
    if isinstance(layer, keras.layers.BatchNormalization):
        rank = len(layer.input.shape)
        if layer.axis not in (-1, rank - 1):
            raise ValueError(
                f"Layer '{layer.name}': BatchNormalization must normalize the "
                f"last axis to be sliced; got axis={layer.axis}.")
