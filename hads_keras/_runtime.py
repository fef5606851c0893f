"""Which subnetwork a HADS layer computes, and how it looks its widths up.

Two ways to pick the active subnetwork:

* **Dynamic** (inference, ordinary `fit`): one int32 `keras.Variable` owned by
  the nested model. Layers read it inside the traced graph, so switching is a
  variable assignment and never retraces. Widths are then tensors and slices
  have dynamic shapes (fine in TensorFlow graphs; under XLA each new value is
  folded into a constant and recompiles).
* **Static** (the multi-width training step): `static_subnetwork(k)` is a
  context manager used while tracing; inside it every layer slices with plain
  Python integers, so shapes are static and XLA-friendly.
"""

import contextlib
import threading

import numpy as np
import tensorflow as tf

_state = threading.local()


def current_static_subnetwork():
    """The subnetwork index set by `static_subnetwork`, or None."""
    return getattr(_state, "subnetwork", None)


@contextlib.contextmanager
def static_subnetwork(index):
    """Trace layers with the widths of subnetwork `index` as Python integers.

    Thread-local on purpose: `tf.distribute` runs one replica per thread and
    each replica enters the context inside its own step function.
    """
    previous = current_static_subnetwork()
    _state.subnetwork = int(index)
    try:
        yield
    finally:
        _state.subnetwork = previous


class LayerSlicing:
    """The widths one HADS layer uses in every subnetwork.

    A plain object on purpose: Keras does not track it, so the shared
    selector variable is not duplicated into every layer's weights.

    Attributes:
        in_widths: active input channels per subnetwork (None: no input slicing).
        out_widths: active output channels per subnetwork (None: full).
        in_spatial: positions per channel in the input feature vector (a
            Flatten of NHWC feeding a Dense makes this H*W).
        selector: the nested model's int32 subnetwork variable, or None.
        in_segments: for an input concatenated from several groups, one
            `(channels, active channels per subnetwork)` per segment in
            channel order (None otherwise); `in_widths` is then their sum.
    """

    def __init__(self, in_widths=None, out_widths=None, in_spatial=1,
                 selector=None, in_segments=None):
        if in_segments is not None:
            in_segments = tuple((int(c), tuple(int(w) for w in widths))
                                for c, widths in in_segments)
            in_widths = [sum(widths[k] for _, widths in in_segments)
                         for k in range(len(in_segments[0][1]))]
        self.in_segments = in_segments
        self.in_widths = None if in_widths is None else tuple(int(w) for w in in_widths)
        self.out_widths = None if out_widths is None else tuple(int(w) for w in out_widths)
        self.in_spatial = int(in_spatial)
        self.selector = selector

    @property
    def num_subnetworks(self):
        for widths in (self.in_widths, self.out_widths):
            if widths is not None:
                return len(widths)
        return 1

    def index(self, layer_name):
        """Active subnetwork index: a Python int when static, else a tensor."""
        static = current_static_subnetwork()
        if static is not None:
            if not 0 <= static < self.num_subnetworks:
                raise ValueError(
                    f"Layer '{layer_name}' has {self.num_subnetworks} "
                    f"subnetworks; cannot trace subnetwork {static}."
                )
            return static
        if self.selector is None:
            return 0
        return tf.convert_to_tensor(self.selector)

    def width(self, widths, layer_name):
        """The active entry of `widths` (int when static, else int32 tensor)."""
        index = self.index(layer_name)
        if isinstance(index, int):
            return widths[index]
        return tf.gather(tf.constant(widths, dtype=tf.int32), index)

    def active_segments(self, layer_name, multiplier=1):
        """Per input segment `(channels, active width)` of the active
        subnetwork (widths: ints when static, else int32 tensors); channels
        and widths times `multiplier` (a depthwise layer's output)."""
        return [(channels * multiplier,
                 self.width(widths, layer_name) * multiplier)
                for channels, widths in self.in_segments]


def segment_indices(segments):
    """Channels of the active prefixes of `segments` ((channels, active)
    pairs in channel order) in the full layout: a numpy array when the
    widths are ints, else an int32 tensor."""
    ranges, offset = [], 0
    static = all(isinstance(w, int) for _, w in segments)
    for channels, width in segments:
        ranges.append(np.arange(offset, offset + width) if static
                      else tf.range(offset, offset + width))
        offset += channels
    return np.concatenate(ranges) if static else tf.concat(ranges, axis=0)


def take_segments(x, segments, axis=-1):
    """The active prefix of every segment of `x` along `axis`, packed.

    `x` holds the full layout (dynamic subnetworks, kernels) or, in a static
    subnetwork, may already be packed (a concatenation of narrow tensors):
    then it is returned as is.
    """
    if (all(isinstance(w, int) for _, w in segments)
            and x.shape[axis] == sum(w for _, w in segments)):
        return x
    return tf.gather(x, segment_indices(segments), axis=axis)


def spread_segments(y, segments):
    """The output layout of a channel-wise layer on segments: packed active
    channels `y` back to the full layout, every segment zero-padded to its
    width (dynamic subnetwork); a static subnetwork keeps `y` packed."""
    if current_static_subnetwork() is not None or all(
            is_full(w, c) for c, w in segments):
        return y
    pieces, start = [], 0
    for channels, width in segments:
        pieces.append(pad_channels(y[..., start:start + width], width, channels))
        start = start + width
    return tf.concat(pieces, axis=-1)


def is_full(width, full):
    """True when `width` is statically known to be the full width."""
    return isinstance(width, int) and width == full


def take_prefix(x, width):
    """The first `width` channels of `x` (a no-op when `x` already has them)."""
    if isinstance(width, int) and x.shape[-1] == width:
        return x
    return x[..., :width]


def pad_channels(x, width, full):
    """The output layout of a HADS layer with `width` of `full` channels active.

    Dynamic subnetwork (inference, switching through the selector
    variable): zero-pad the last axis to `full` channels. Activations keep
    their full static shape, the standard Keras layers in between (ReLU,
    pooling, Flatten, Dropout) see the shapes they were built for, and the
    next HADS layer reads only its active prefix, so nothing in the inactive
    channels can leak into an active one.

    Static subnetwork (`static_subnetwork`, the multi-width training step):
    shapes are known while tracing, so the tensor stays truly narrow. Padding
    and re-slicing every activation (and their gradients) made a training
    step about 3x slower than the standalone subnetwork on CPU; narrow
    tensors cost what the standalone subnetwork costs.
    """
    if is_full(width, full) or current_static_subnetwork() is not None:
        return x
    rank = len(x.shape)
    paddings = [[0, 0]] * (rank - 1) + [[0, full - width]]
    y = tf.pad(x, paddings)
    y.set_shape(x.shape[:-1].concatenate([full]))
    return y
