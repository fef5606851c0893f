"""Switchable batch normalization: one set of moving statistics per subnetwork."""

import keras
import tensorflow as tf

from hads_keras._runtime import (pad_channels, segment_indices, spread_segments,
                                 take_prefix, take_segments)
from hads_keras.layers._base import SlicedLayerMixin


@keras.saving.register_keras_serializable(package="hads_keras")
class BatchNormalization(SlicedLayerMixin, keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with per-subnetwork statistics.

    Subnetworks see different activation statistics (Yu et al., Slimmable
    networks), so this layer keeps `moving_mean` and `moving_variance` of
    shape `[num_subnetworks, channels]`; row k belongs to subnetwork k and
    `gamma`/`beta` are shared. In subnetwork k it normalizes the first `c_k`
    channels with row k and, in training, updates only that row's prefix.
    Inactive channels come out as zeros (not `beta`), so they stay inert.
    On a concatenated input the active channels are the active prefix of
    every segment.

    Which row a subnetwork uses, the same in `call`, in
    `hads_keras.extract_subnetwork` and in the TFLite export: row k when the
    layer's input differs between subnetworks (its group is sliced, or
    sliced layers feed it), row 0 for every subnetwork when no sliced layer
    feeds it (a BatchNormalization right after the model input sees the same
    data in every subnetwork, so one set of statistics is right and every
    subnetwork trains it).

    Args:
        num_subnetworks: number of rows of moving statistics (1 for a plain
            model; `hads_keras.apply` builds models with one row per
            subnetwork of the plan).
        **kwargs: the arguments of `keras.layers.BatchNormalization`
            (axis must be the last one; renorm is not supported).
    """

    def __init__(self, num_subnetworks=1, **kwargs):
        super().__init__(**kwargs)
        if int(num_subnetworks) < 1:
            raise ValueError(
                f"Layer '{self.name}': num_subnetworks must be >= 1, got "
                f"{num_subnetworks}."
            )
        if self.renorm:
            raise ValueError(
                f"Layer '{self.name}': HADS BatchNormalization does not "
                "support renorm=True."
            )
        self.num_subnetworks = int(num_subnetworks)

    def build(self, input_shape):
        rank = len(input_shape)
        if self.axis not in (-1, rank - 1):
            raise ValueError(
                f"Layer '{self.name}': HADS BatchNormalization normalizes the "
                f"last (channels) axis only; got axis={self.axis}."
            )
        self.axis = rank - 1
        channels = input_shape[-1]
        if self.scale:
            self.gamma = self.add_weight(
                shape=(channels,), name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True, autocast=False)
        if self.center:
            self.beta = self.add_weight(
                shape=(channels,), name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True, autocast=False)
        # Row k: the moving statistics of subnetwork k.
        stats_shape = (self.num_subnetworks, channels)
        self.moving_mean = self.add_weight(
            shape=stats_shape, name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False, autocast=False)
        self.moving_variance = self.add_weight(
            shape=stats_shape, name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False, autocast=False)
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={self.axis: channels})
        self._reduction_axes = list(range(rank - 1))

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError(
                f"Layer '{self.name}': masks are not supported by HADS "
                "BatchNormalization."
            )
        slicing = self._hads_slicing
        channels = self.moving_mean.shape[-1]
        segments = None
        if slicing is None or slicing.in_widths is None:
            index, width = 0, channels
        else:
            index = slicing.index(self.name)
            width = slicing.width(slicing.in_widths, self.name)
            if slicing.in_segments is not None:
                segments = slicing.active_segments(self.name)
        # The active channels: a prefix, or the prefix of every segment.
        if segments is None:
            active = lambda v: take_prefix(v, width)
        else:
            active = lambda v: take_segments(v, segments)
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = tf.cast(active(inputs), compute_dtype)
        moving_mean = tf.cast(self.moving_mean, compute_dtype)
        moving_variance = tf.cast(self.moving_variance, compute_dtype)
        gamma = tf.cast(active(self.gamma), compute_dtype) if self.scale else None
        beta = tf.cast(active(self.beta), compute_dtype) if self.center else None

        if training and self.trainable:
            mean, variance = keras.ops.moments(
                x, axes=self._reduction_axes, synchronized=self.synchronized)
            self._update_row(self.moving_mean, moving_mean, index, width,
                             mean, segments)
            self._update_row(self.moving_variance, moving_variance, index,
                             width, variance, segments)
        else:
            mean = active(moving_mean[index])
            variance = active(moving_variance[index])

        outputs = tf.nn.batch_normalization(
            x, mean, variance, beta, gamma, self.epsilon)
        outputs = tf.cast(outputs, self.compute_dtype)
        if segments is not None:
            return spread_segments(outputs, segments)
        return pad_channels(outputs, width, channels)

    def _update_row(self, variable, value, index, width, batch_stat, segments=None):
        """Moving average on row `index`, prefix `[:width]` (or the active
        prefix of every segment) only."""
        row = value[index]
        if segments is None:
            updated = row[:width] * self.momentum + batch_stat * (1.0 - self.momentum)
            new_row = tf.concat([updated, row[width:]], axis=0)
        else:
            channels = tf.reshape(tf.cast(segment_indices(segments), tf.int32), [-1, 1])
            updated = (tf.gather_nd(row, channels) * self.momentum
                       + batch_stat * (1.0 - self.momentum))
            new_row = tf.tensor_scatter_nd_update(row, channels, updated)
        variable.assign(tf.tensor_scatter_nd_update(
            value, [[index]], tf.expand_dims(new_row, 0)))

    def get_config(self):
        config = super().get_config()
        config["num_subnetworks"] = self.num_subnetworks
        return config
