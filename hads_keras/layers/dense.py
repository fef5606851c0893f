"""Dense with a runtime width."""

import keras
import tensorflow as tf

from hads_keras._runtime import is_full, pad_channels, take_prefix, take_segments
from hads_keras.layers._base import SlicedLayerMixin


@keras.saving.register_keras_serializable(package="hads_keras")
class Dense(SlicedLayerMixin, keras.layers.Dense):
    """`keras.layers.Dense` that computes with a prefix of its units.

    Takes exactly the arguments of `keras.layers.Dense`. In subnetwork k it
    multiplies the active input features by `kernel[:in_k, :out_k]` and
    zero-pads its output back to `units` (see `hads_keras._runtime`).

    When its input is a Flatten of an NHWC tensor (`in_spatial` = H*W > 1),
    an active channel is a set of H*W strided rows: the kernel is viewed as
    `[H*W, C, units]` and sliced `[:, :c_k, :out_k]`, which is still a strided
    view of the full kernel, never a copy of unused rows.

    When its input is a concatenation, it reads the active prefix of every
    segment (the kernel rows of those channels, per position behind a
    Flatten).
    """

    def call(self, inputs, training=None):
        slicing = self._hads_slicing
        if slicing is None:
            return super().call(inputs, training=training)
        full_in = self.kernel.shape[0]
        out_w = (self.units if slicing.out_widths is None
                 else slicing.width(slicing.out_widths, self.name))
        kernel = self.kernel
        if slicing.in_segments is not None:
            x, kernel = self._segment_inputs(inputs, slicing)
        elif slicing.in_widths is None:
            x = inputs
        else:
            in_w = slicing.width(slicing.in_widths, self.name)
            positions = slicing.in_spatial
            if positions == 1:
                x = take_prefix(inputs, in_w)
                kernel = kernel[:in_w]
            elif not is_full(in_w, full_in // positions):
                channels = full_in // positions
                if isinstance(in_w, int) and inputs.shape[-1] == positions * in_w:
                    x = inputs  # already the narrow layout (static subnetwork)
                else:
                    x = tf.reshape(inputs, [-1, positions, channels])[:, :, :in_w]
                    x = tf.reshape(x, [-1, positions * in_w])
                kernel = tf.reshape(kernel, [positions, channels, self.units])
                kernel = tf.reshape(kernel[:, :in_w], [positions * in_w, self.units])
            else:
                x = inputs
        if not is_full(out_w, self.units):
            kernel = kernel[:, :out_w]
        outputs = keras.ops.matmul(x, kernel)
        if self.bias is not None:
            outputs = outputs + self.bias[:out_w]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return pad_channels(outputs, out_w, self.units)

    def _segment_inputs(self, inputs, slicing):
        """Active input features and kernel rows of a concatenated input."""
        segments = slicing.active_segments(self.name)
        positions = slicing.in_spatial
        if positions == 1:
            return take_segments(inputs, segments), take_segments(self.kernel, segments, axis=0)
        channels = self.kernel.shape[0] // positions
        x = inputs
        if not (all(isinstance(w, int) for _, w in segments)
                and inputs.shape[-1] == positions * sum(w for _, w in segments)):
            x = tf.reshape(inputs, [-1, positions, channels])
            x = tf.reshape(take_segments(x, segments), [tf.shape(inputs)[0], -1])
        kernel = tf.reshape(self.kernel, [positions, channels, self.units])
        kernel = tf.reshape(take_segments(kernel, segments, axis=1), [-1, self.units])
        return x, kernel
