"""Which channels of a Keras model are coupled: the *groups*.

A slicing point belongs to a group of coupled channels, not to a layer: the
output units of a Dense/Conv1D/Conv2D, the BatchNormalization after it, a
following DepthwiseConv2D (its channels follow its input) and the input rows
of the next Dense/Conv (through Flatten: one channel is H*W rows).
Element-wise merges (Add, Subtract, Multiply, Average, Maximum, Minimum and
the keras.ops forms `x + y`, `x * y`) join the groups of every tensor that
meets there into one group (union-find over channel spaces): a ResNet stage
or a squeeze-and-excite block shares one slicing point. A tensor whose last
axis is 1 broadcasts and joins nothing. A Concatenate on the channel axis
makes a *segmented* channel space: an ordered list of segments, each the
units of its own group at a fixed offset of the concatenated tensor (nested
concatenations are flattened); its consumers read, per subnetwork, the
active prefix of every segment. Permutation, slicing, costs and export all
read this one description.

Why slicing stays exact through these structures: every HADS layer reads
only the active prefix of its input, and every layer allowed in between acts
on each channel on its own (activations, pooling, padding, Dropout,
Reshape/Flatten that keep the channel axis last) or element-wise across
tensors of the same group. An inactive channel therefore never reaches an
active one, whatever it holds (sigmoid(0) = 0.5 in a squeeze-and-excite
gate only ever meets inactive channels; a concatenation keeps every
segment's channels in their own lanes). Softmax over channels, Concatenate
on another axis, merges of tensors with different segments, Dot and
channel-regrouping reshapes would break that and are rejected unless the
groups they touch are kept whole (`keep=`).

    >>> print(hads_keras.groups(model))
"""

import dataclasses
import math

import keras
import numpy as np

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
    keras.layers.ZeroPadding1D,
    keras.layers.Cropping1D,
    keras.layers.UpSampling1D,
    keras.layers.Softmax,
)

# Element-wise merges of tensors: their sliced inputs share one group.
_ELEMENTWISE_MERGE = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)

# keras.ops operations in a Functional graph (`x + 3.0`, `x * gate`): with
# one tensor and scalar constants they act per element; with two tensors
# they are element-wise merges.
_ELEMENTWISE_OPS = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
    "Minimum", "Negative", "Abs", "Square", "Sqrt", "Exp", "Clip",
    "Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Tanh",
    "Elu", "Gelu", "LeakyRelu", "Softplus", "Power",
}
_MERGING_OPS = {"Add", "Subtract", "Multiply", "Maximum", "Minimum"}

# Element-wise but mixing channels: fine on fixed groups only.
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")

_OTHER_MERGE = (keras.layers.Dot,)


@dataclasses.dataclass(frozen=True)
class Member:
    """One layer's share of a group.

    Attributes:
        layer: the layer's name.
        role: "producer" (output units of a Dense/Conv1D/Conv2D),
            "batchnorm", "depthwise" (channels of a DepthwiseConv2D) or
            "consumer" (input channels of a Dense/Conv1D/Conv2D).
        multiplier: channels of this layer per unit of the group (depthwise
            multipliers upstream multiply it); unit u owns channels
            [u * multiplier, (u + 1) * multiplier).
        spatial: for a consumer behind Flatten, positions per channel: the
            flattened input is spatial x channels, channels fastest.
        offset: for a layer reading a concatenation, the channel of its
            input where this group's segment starts (0 otherwise).
    """

    layer: str
    role: str
    multiplier: int = 1
    spatial: int = 1
    offset: int = 0

    def __str__(self):
        text = f"{self.layer}:{self.role}"
        if self.multiplier != 1:
            text += f"x{self.multiplier}"
        if self.spatial != 1:
            text += f"@{self.spatial}pos"
        if self.offset:
            text += f"+{self.offset}"
        return text


@dataclasses.dataclass(eq=False)
class Group:
    """Channels that share one slicing point.

    Attributes:
        name: the first producing layer's name (a group joined at merges
            has several producers), or "input" for a model input.
        width: number of units (full width).
        members: every layer that touches these channels.
        fixed: True for model inputs, for groups that reach a model output
            and for groups kept whole (`keep=`): these are never sliced.
        kept: True when the group is fixed because the user kept it.
    """

    name: str
    width: int
    members: list
    fixed: bool = False
    kept: bool = False
    # Union-find: the group this one was merged into (None for a root).
    merged_into: "Group" = dataclasses.field(default=None, repr=False,
                                             compare=False)

    def members_with_role(self, role):
        return [m for m in self.members if m.role == role]


@dataclasses.dataclass(frozen=True)
class Segment:
    """One group's channels inside a layer's (concatenated) input.

    Attributes:
        group: the group's name.
        offset: first channel of the segment in the layer's input.
        channels: full width of the segment in channels (the group's width
            times `multiplier`).
        multiplier: channels per unit of the group.
    """

    group: str
    offset: int
    channels: int
    multiplier: int = 1


@dataclasses.dataclass(frozen=True)
class LayerWiring:
    """Where one Dense/Conv1D/Conv2D/DepthwiseConv2D/BatchNormalization sits.

    Attributes:
        layer: layer name.
        kind: "dense", "conv1d", "conv2d", "depthwise" or "batchnorm".
        in_group: name of the group of its input channels; None when the
            input is a concatenation of several segments (see `in_segments`).
        in_multiplier: input channels per unit of `in_group` (None with
            several segments).
        in_spatial: positions per channel of a flattened input (Dense).
        out_group: name of the group it produces (Dense/Conv), else None.
        varies: for a BatchNormalization, whether its input differs between
            subnetworks (some sliced group lies upstream). Only then does it
            keep one row of statistics per subnetwork in use; otherwise
            every subnetwork uses and trains row 0 (see
            `hads_keras.layers.BatchNormalization`).
        in_segments: the `Segment`s of its input channels in channel order
            (one for a plain input, one per concatenated group otherwise).
    """

    layer: str
    kind: str
    in_group: str
    in_multiplier: int = 1
    in_spatial: int = 1
    out_group: str = None
    varies: bool = True
    in_segments: tuple = ()

    @property
    def segmented(self):
        """True when the input is a concatenation of several segments."""
        return len(self.in_segments) > 1


@dataclasses.dataclass(frozen=True)
class FixedLayer:
    """A layer with weights that HADS never slices, with its constant cost.

    Layers on never-sliced groups that are not Dense/Conv/Depthwise/BN
    (recurrent layers, grouped convolutions, Normalization at the input, ...)
    are accepted as they are; their MACs and parameters still count.
    """

    layer: str
    macs: int
    params: int


class GraphAnalysis:
    """The groups of a model and the wiring of its sliceable layers."""

    def __init__(self, groups, wiring, model, fixed_layers=()):
        self.groups = groups
        self.wiring = wiring
        self.model = model
        self.fixed_layers = list(fixed_layers)

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
        segmented = [w for w in self.wiring.values() if w.segmented]
        if segmented:
            lines.append("inputs concatenated from segments (group+offset:channels):")
        for w in segmented:
            lines.append(f"  {w.layer}: " + " ".join(
                f"{s.group}+{s.offset}:{s.channels}" for s in w.in_segments))
        return "\n".join(lines)

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class _Tag:
    """What the last axis of a tensor holds: units of `group`."""

    group: Group
    multiplier: int = 1
    spatial: int = 1

    @property
    def root(self):
        return _find(self.group)

    @property
    def parts(self):
        return (self,)


@dataclasses.dataclass(frozen=True)
class _Concat:
    """A last axis concatenated from `parts` (`_Tag`s with spatial 1), in
    channel order; `spatial` as for `_Tag` (a Flatten of it)."""

    parts: tuple
    spatial: int = 1


def _roots(tag):
    return [part.root for part in tag.parts]


def _channels(tag):
    return tag.group.width * tag.multiplier


def _offsets(tag):
    """(part, first channel) of every part of `tag`."""
    out, offset = [], 0
    for part in tag.parts:
        out.append((part, offset))
        offset += _channels(part)
    return out


def _find(group):
    while group.merged_into is not None:
        group = group.merged_into
    return group


def _kind(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, keras.layers.Conv2D):
        return "conv2d"
    if isinstance(layer, keras.layers.Conv1D):
        return "conv1d"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "batchnorm"
    return None


KEEP_HINT = "hads_keras.convert(model, keep=[...]) or hads_keras.solve(..., keep=[...])"


def analyze(model, keep=()):
    """Find the groups of a built Sequential or Functional Keras model.

    Args:
        model: a built Sequential/Functional model.
        keep: names of groups or of layers whose groups are kept whole
            (never sliced; their costs still count). HADS layers converted
            with `hads_keras.convert(model, keep=...)` remember it.

    Raises:
        ValueError: naming the layer and the way out, for structures that
            cannot be sliced (merges that mix channels, recurrent layers or
            grouped convolutions on sliced groups, nested models, shared
            layers, channels_first, ...).
    """
    functional = _keras_compat.as_functional(model)
    groups, wiring, tags, upstream = [], {}, {}, {}
    deferred = []      # (layer, in_tags, message): fine iff all inputs fixed
    fixed_layers = []  # (layer, in_tags): weighted layers that must see fixed data
    mixing_checks = []

    def new_group(name, width, fixed=False):
        group = Group(name=name, width=int(width), members=[], fixed=fixed)
        groups.append(group)
        return group

    def union(a, b, layer):
        ra, rb = _find(a), _find(b)
        if ra is rb:
            return ra
        if ra.width != rb.width:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) merges groups "
                f"'{ra.name}' ({ra.width} units) and '{rb.name}' ({rb.width} "
                "units) of different widths.")
        if groups.index(rb) < groups.index(ra):
            ra, rb = rb, ra
        rb.merged_into = ra
        ra.members.extend(rb.members)
        rb.members = []
        ra.fixed = ra.fixed or rb.fixed
        return ra

    def set_out(tensors, tag, extra=()):
        up = frozenset().union(*(upstream.get(id(t), frozenset()) for t in extra))
        for t in tensors:
            tags[id(t)] = tag
            upstream[id(t)] = up | {part.group for part in tag.parts}

    def fixed_output(layer, in_tags, inputs, outputs):
        """Outputs of a layer on (eventually) fixed data: a new fixed group,
        or the input's group when the layer keeps its channels."""
        for t in outputs:
            same = (len(in_tags) == 1 and t.shape[-1] == inputs[0].shape[-1]
                    and in_tags[0].spatial == 1)
            set_out([t], in_tags[0] if same else _Tag(
                new_group(layer.name, t.shape[-1], fixed=True)), inputs)

    seen_layers = set()
    for node in _keras_compat.ordered_nodes(functional):
        layer = node.operation
        if id(layer) in seen_layers:
            raise ValueError(
                f"Layer '{layer.name}' is called more than once (a shared "
                "layer); HADS cannot slice shared layers. Give every call "
                "its own layer (the same weights can be copied in).")
        seen_layers.add(id(layer))
        inputs = node.input_tensors
        outputs = node.output_tensors
        if isinstance(layer, keras.layers.InputLayer) or not inputs:
            for t in outputs:
                name = "input" if len(functional.inputs) == 1 else f"input:{layer.name}"
                set_out([t], _Tag(new_group(name, t.shape[-1], fixed=True)))
            continue
        in_tags = [tags[id(t)] for t in inputs]
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Layer '{layer.name}' is a nested model; HADS needs a flat "
                "model. Build it as one Sequential/Functional model (for a "
                "keras.applications backbone: call it on a keras.Input "
                "without wrapping, e.g. MobileNet(input_tensor=x)).")
        kind = _kind(layer)
        if kind is not None and len(inputs) != 1:
            raise ValueError(f"Layer '{layer.name}' has {len(inputs)} inputs; expected 1.")
        if kind in ("conv1d", "conv2d") and getattr(layer, "groups", 1) != 1:
            # A grouped convolution cannot be cut to one prefix; accepted on
            # groups kept whole, its cost counted as a constant.
            deferred.append((layer, in_tags,
                             f"a grouped convolution (groups={layer.groups}) "
                             "cannot be cut to one prefix of its channels"))
            fixed_layers.append((layer, in_tags))
            fixed_output(layer, in_tags, inputs, outputs)
            continue
        if kind is not None:
            _check_channels_last(layer)
            tag = in_tags[0]
            out = outputs[0]
            if kind in ("dense", "conv1d", "conv2d"):
                if kind != "dense" and tag.spatial != 1:
                    deferred.append((layer, in_tags,
                                     "a convolution after a Flatten of a sliced group"))
                for part, offset in _offsets(tag):
                    part.root.members.append(Member(
                        layer.name, "consumer", part.multiplier, tag.spatial, offset))
                produced = new_group(layer.name, out.shape[-1])
                produced.members.append(Member(layer.name, "producer"))
                wiring[layer.name] = (kind, tag, produced)
                set_out([out], _Tag(produced), inputs)
            else:
                if tag.spatial != 1:
                    deferred.append((layer, in_tags,
                                     "it follows a Flatten of a sliced group"))
                role = "depthwise" if kind == "depthwise" else "batchnorm"
                for part, offset in _offsets(tag):
                    part.root.members.append(Member(
                        layer.name, role, part.multiplier, offset=offset))
                wiring[layer.name] = (kind, tag, None)
                depth = layer.depth_multiplier if kind == "depthwise" else 1
                set_out([out], _multiplied(tag, depth), inputs)
            continue

        if isinstance(layer, keras.layers.Flatten):
            tag = in_tags[0]
            spatial = math.prod(inputs[0].shape[1:-1]) * tag.spatial
            set_out(outputs, dataclasses.replace(tag, spatial=spatial), inputs)
        elif isinstance(layer, keras.layers.Reshape):
            tag, x, y = in_tags[0], inputs[0], outputs[0]
            if y.shape[-1] == x.shape[-1] and tag.spatial == 1:
                set_out(outputs, tag, inputs)  # channel axis stays last
            elif len(y.shape) == 2 and y.shape[-1] == math.prod(x.shape[1:]):
                spatial = math.prod(x.shape[1:-1]) * tag.spatial
                set_out(outputs, dataclasses.replace(tag, spatial=spatial), inputs)
            else:
                deferred.append((layer, in_tags,
                                 f"it regroups the channels to the fixed shape "
                                 f"{layer.target_shape}, which narrower "
                                 "subnetworks cannot match (use Flatten, or a "
                                 "Reshape that keeps the channel axis last)"))
                fixed_output(layer, in_tags, inputs, outputs)
        elif isinstance(layer, keras.layers.Concatenate):
            why = _concatenation_problem(layer, in_tags)
            if why:
                deferred.append((layer, in_tags, why))
                fixed_output(layer, in_tags, inputs, outputs)
            else:  # nested concatenations flatten into one list of segments
                set_out(outputs, _Concat(tuple(
                    part for t in in_tags for part in t.parts)), inputs)
        elif isinstance(layer, _ELEMENTWISE_MERGE) or (
                _is_op(layer, _MERGING_OPS) and len(inputs) > 1):
            _merge(layer, in_tags, inputs, outputs, union, set_out, deferred)
        elif isinstance(layer, _CHANNELWISE) or _is_op(layer, _ELEMENTWISE_OPS):
            if len(inputs) != 1:
                raise ValueError(f"Layer '{layer.name}' has {len(inputs)} inputs; expected 1.")
            if _mixes_channels(layer):
                mixing_checks.append((layer, in_tags[0]))
            if not isinstance(layer, keras.layers.Layer) and not _scalar_constants(node):
                deferred.append((layer, in_tags,
                                 "it combines the channels with a constant that "
                                 "is not a scalar"))
            set_out(outputs, in_tags[0], inputs)
        else:
            if layer.weights or isinstance(layer, _OTHER_MERGE):
                deferred.append((layer, in_tags,
                                 f"HADS cannot slice a {type(layer).__name__}; it "
                                 "reads its inputs as whole tensors"))
            else:
                deferred.append((layer, in_tags,
                                 "it is not known to act on every channel on its "
                                 "own (HADS supports Dense, Conv1D, Conv2D, "
                                 "DepthwiseConv2D, BatchNormalization, channel-wise "
                                 "layers and element-wise merges between them)"))
            if layer.weights:
                fixed_layers.append((layer, in_tags))
            fixed_output(layer, in_tags, inputs, outputs)

    for t in functional.outputs:
        for root in _roots(tags[id(t)]):
            root.fixed = True
    _apply_keep(groups, keep, model)
    for layer, in_tags, why in deferred:
        sliced = sorted({r.name for t in in_tags for r in _roots(t) if not r.fixed})
        if sliced:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) reads the sliced "
                f"group(s) {sliced}: {why}. Keep them whole with keep="
                f"{sliced} ({KEEP_HINT}), or rewrite the model.")
    for layer, tag in mixing_checks:
        for root in _roots(tag):
            if not root.fixed:
                raise ValueError(
                    f"Layer '{layer.name}' mixes channels (softmax) of the sliced "
                    f"group '{root.name}'; apply it to the model output only, "
                    f"or keep the group whole with keep=['{root.name}'] "
                    f"({KEEP_HINT}).")

    roots = [g for g in groups if g.merged_into is None]
    analysis_wiring = {}
    for name, (kind, tag, produced) in wiring.items():
        varies = True
        if kind == "batchnorm":
            layer = functional.get_layer(name)
            varies = any(not _find(g).fixed
                         for g in upstream.get(id(layer.input), ()))
        segments = tuple(Segment(part.root.name, offset, _channels(part),
                                 part.multiplier)
                         for part, offset in _offsets(tag))
        single = segments[0] if len(segments) == 1 else None
        analysis_wiring[name] = LayerWiring(
            name, kind, single and single.group, single and single.multiplier,
            tag.spatial, None if produced is None else _find(produced).name,
            varies, segments)
    fixed = [_fixed_layer(layer) for layer, _ in fixed_layers]
    return GraphAnalysis(roots, analysis_wiring, model, fixed)


def _merge(layer, in_tags, inputs, outputs, union, set_out, deferred):
    """Element-wise merge: every input of full channel width joins one group
    (concatenations: segment by segment); inputs with one channel broadcast
    and join nothing."""
    channels = outputs[0].shape[-1]
    widths = [x.shape[-1] for x in inputs]
    if any(w not in (1, channels) for w in widths):
        raise ValueError(f"Layer '{layer.name}' merges tensors of channel "
                         f"widths {widths}.")
    joined = [t for t, w in zip(in_tags, widths) if w == channels]
    first = joined[0]
    if not all(_same_layout(t, first) for t in joined):
        deferred.append((layer, in_tags,
                         "its inputs hold the channels in different layouts "
                         "(depth multipliers, Flatten, or concatenations of "
                         "different segments)"))
        set_out(outputs, first, inputs)
        return
    parts = []
    for i, part in enumerate(first.parts):
        root = part.root
        for t in joined[1:]:
            root = union(root, t.parts[i].group, layer)
        parts.append(_Tag(root, part.multiplier))
    set_out(outputs, parts[0] if isinstance(first, _Tag) else _Concat(tuple(parts)),
            inputs)


def _same_layout(a, b):
    """Whether two merged tensors hold their channels the same way: the same
    kind of tag, no Flatten, the same segments (widths, multipliers)."""
    return (type(a) is type(b) and a.spatial == 1 and b.spatial == 1
            and len(a.parts) == len(b.parts)
            and all(p.multiplier == q.multiplier and _channels(p) == _channels(q)
                    for p, q in zip(a.parts, b.parts)))


def _multiplied(tag, depth):
    """The tag of a DepthwiseConv2D's output: `depth` channels per channel."""
    if isinstance(tag, _Tag):
        return _Tag(tag.group, tag.multiplier * depth, tag.spatial)
    return _Concat(tuple(_multiplied(p, depth) for p in tag.parts), tag.spatial)


def _concatenation_problem(layer, in_tags):
    """Why a Concatenate cannot be followed segment by segment, or None."""
    rank = len(layer.output.shape)
    if layer.axis not in (-1, rank - 1):
        return (f"it concatenates along axis {layer.axis}, not the channel "
                "axis, so the channels of narrower subnetworks would not line up")
    if any(t.spatial != 1 for t in in_tags):
        return "it concatenates flattened tensors (concatenate before the Flatten)"
    return None


def _apply_keep(groups, keep, model):
    """Mark kept groups fixed: by name in `keep`, or remembered by HADS layers."""
    keep = [keep] if isinstance(keep, str) else list(keep or ())
    roots = [g for g in groups if g.merged_into is None]
    by_layer = {}
    for g in roots:
        for m in g.members:
            if m.role != "consumer":
                by_layer[m.layer] = g
    unknown = []
    for name in keep:
        group = next((g for g in roots if g.name == name), None) or by_layer.get(name)
        if group is None:
            unknown.append(name)
            continue
        group.kept = group.kept or not group.fixed
        group.fixed = True
    if unknown:
        raise ValueError(
            f"keep={unknown}: no group or layer of that name produces units "
            f"in model '{model.name}'. Groups: {[g.name for g in roots]}.")
    functional = _keras_compat.as_functional(model)
    for layer_name, group in by_layer.items():
        if getattr(functional.get_layer(layer_name), "hads_keep", False):
            group.kept = group.kept or not group.fixed
            group.fixed = True


def _is_op(operation, names):
    """A keras.ops operation (not a layer) of one of `names`."""
    return (not isinstance(operation, keras.layers.Layer)
            and type(operation).__name__ in names)


def _scalar_constants(node):
    """True when every non-tensor argument of an ops node is a scalar."""
    values = list(node.arguments.args) + list(node.arguments.kwargs.values())
    for v in values:
        if isinstance(v, keras.KerasTensor) or v is None or isinstance(v, (bool, str)):
            continue
        try:
            size = int(np.size(v))
        except Exception:  # pragma: no cover - unknown argument types
            return False
        if size != 1:
            return False
    return True


def _fixed_layer(layer):
    """The constant MACs and parameters of a weighted layer HADS keeps whole."""
    params = int(layer.count_params())
    out_positions = lambda: math.prod(layer.output.shape[1:-1])
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        c_in = layer.input.shape[-1]
        k = math.prod(layer.kernel_size)
        # The depthwise part runs at the input's positions reduced by stride.
        macs = out_positions() * c_in * layer.depth_multiplier * (k + layer.filters)
    elif isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        macs = (out_positions() * math.prod(layer.kernel_size)
                * layer.input.shape[-1] * layer.depth_multiplier)
    elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        c_in = layer.input.shape[-1] // getattr(layer, "groups", 1)
        macs = out_positions() * math.prod(layer.kernel_size) * c_in * layer.filters
    elif isinstance(layer, keras.layers.Dense):
        macs = (math.prod(layer.output.shape[1:-1]) * layer.input.shape[-1]
                * layer.units)
    elif isinstance(layer, (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)):
        gates = {keras.layers.SimpleRNN: 1, keras.layers.GRU: 3,
                 keras.layers.LSTM: 4}[type(layer)]
        steps, features = layer.input.shape[1], layer.input.shape[-1]
        units = layer.units
        macs = steps * gates * (features + units) * units
    elif isinstance(layer, (keras.layers.Normalization, keras.layers.LayerNormalization,
                            keras.layers.GroupNormalization, keras.layers.BatchNormalization,
                            keras.layers.UnitNormalization, keras.layers.Embedding,
                            keras.layers.PReLU)):
        macs = 0  # as BatchNormalization: parameters, no multiply-accumulates
    else:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has weights, and "
            "HADS can neither slice it nor count its cost; remove or rewrite "
            "it (Dense, Conv1D, Conv2D, DepthwiseConv2D, BatchNormalization "
            "are sliced).")
    if type(layer) not in (keras.layers.SimpleRNN, keras.layers.GRU,
                           keras.layers.LSTM) and any(
            d is None for d in layer.output.shape[1:]):
        raise ValueError(f"Layer '{layer.name}': unknown output shape "
                         f"{layer.output.shape}; give keras.Input a full shape.")
    return FixedLayer(layer.name, int(macs), params)


def groups(model, keep=()):
    """The groups of `model` (a `GraphAnalysis`; print it for a table)."""
    return analyze(model, keep)


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
        if layer.axis not in (-1, rank - 1) and layer.axis != [rank - 1]:
            raise ValueError(
                f"Layer '{layer.name}': BatchNormalization must normalize the "
                f"last axis to be sliced; got axis={layer.axis}.")
