"""DepthwiseConv2D with a runtime width."""

import keras

from hads_keras._runtime import is_full, pad_channels, take_prefix
from hads_keras.layers._base import SlicedLayerMixin


@keras.saving.register_keras_serializable(package="hads_keras")
class DepthwiseConv2D(SlicedLayerMixin, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that follows its input's width.

    Takes exactly the arguments of `keras.layers.DepthwiseConv2D`
    (channels_last). Its channels belong to the group of its input: in
    subnetwork k it filters the first `in_k` input channels with
    `kernel[..., :in_k, :]`, producing `in_k * depth_multiplier` channels
    (channel c*M + m, so the active outputs are again a prefix), zero-padded
    to the full output width.
    """

    def build(self, input_shape):
        self._check_channels_last()
        super().build(input_shape)

    def call(self, inputs):
        slicing = self._hads_slicing
        if slicing is None or slicing.in_widths is None:
            return super().call(inputs)
        full_in = self.kernel.shape[-2]
        multiplier = self.depth_multiplier
        in_w = slicing.width(slicing.in_widths, self.name)
        if is_full(in_w, full_in):
            return super().call(inputs)
        outputs = keras.ops.depthwise_conv(
            take_prefix(inputs, in_w),
            self.kernel[..., :in_w, :],
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        out_w = in_w * multiplier
        if self.use_bias:
            outputs = outputs + self.bias[:out_w]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return pad_channels(outputs, out_w, full_in * multiplier)
