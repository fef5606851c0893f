"""DepthwiseConv2D with a runtime width."""

import keras

from hads_keras._runtime import (is_full, pad_channels, spread_segments,
                                 take_prefix, take_segments)
from hads_keras.layers._base import SlicedLayerMixin


@keras.saving.register_keras_serializable(package="hads_keras")
class DepthwiseConv2D(SlicedLayerMixin, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that follows its input's width.

    Takes exactly the arguments of `keras.layers.DepthwiseConv2D`
    (channels_last). Its channels belong to the group of its input: in
    subnetwork k it filters the first `in_k` input channels with
    `kernel[..., :in_k, :]`, producing `in_k * depth_multiplier` channels
    (channel c*M + m, so the active outputs are again a prefix), zero-padded
    to the full output width. On a concatenated input it filters the active
    prefix of every segment, and its output has the same segments times
    `depth_multiplier`.
    """

    def build(self, input_shape):
        self._check_channels_last()
        super().build(input_shape)

    def call(self, inputs):
        slicing = self._hads_slicing
        if slicing is None or slicing.in_widths is None:
            return super().call(inputs)
        if slicing.in_segments is not None:
            return self._call_on_segments(inputs, slicing)
        full_in = self.kernel.shape[-2]
        multiplier = self.depth_multiplier
        in_w = slicing.width(slicing.in_widths, self.name)
        if is_full(in_w, full_in):
            return super().call(inputs)
        outputs = self._filter(take_prefix(inputs, in_w), self.kernel[..., :in_w, :])
        out_w = in_w * multiplier
        if self.use_bias:
            outputs = outputs + self.bias[:out_w]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return pad_channels(outputs, out_w, full_in * multiplier)

    def _call_on_segments(self, inputs, slicing):
        segments = slicing.active_segments(self.name)
        out_segments = slicing.active_segments(self.name, self.depth_multiplier)
        outputs = self._filter(take_segments(inputs, segments),
                               take_segments(self.kernel, segments, axis=-2))
        if self.use_bias:
            outputs = outputs + take_segments(self.bias, out_segments)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return spread_segments(outputs, out_segments)

    def _filter(self, x, kernel):
        return keras.ops.depthwise_conv(
            x,
            kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
