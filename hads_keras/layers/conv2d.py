"""Conv2D and Conv1D with a runtime width."""

import keras

from hads_keras._runtime import is_full, pad_channels, take_prefix, take_segments
from hads_keras.layers._base import SlicedLayerMixin


@keras.saving.register_keras_serializable(package="hads_keras")
class Conv2D(SlicedLayerMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` that computes with a prefix of its filters.

    Takes exactly the arguments of `keras.layers.Conv2D` (channels_last,
    groups=1). In subnetwork k it convolves the first `in_k` input channels
    with `kernel[..., :in_k, :out_k]` and zero-pads the output to `filters`.
    """

    def build(self, input_shape):
        self._check_channels_last()
        if self.groups != 1:
            raise ValueError(
                f"Layer '{self.name}': HADS Conv2D does not support "
                f"groups={self.groups} (grouped channels cannot be sliced "
                "as one prefix). Use groups=1."
            )
        super().build(input_shape)

    def call(self, inputs):
        if self._hads_slicing is None:
            return super().call(inputs)
        return sliced_convolution(self, inputs, self.convolution_op)


def sliced_convolution(layer, inputs, convolution_op):
    """`kernel[..., :in_k, :out_k]` applied to the active input prefix (a
    concatenated input: the active prefix of every segment)."""
    slicing = layer.hads_slicing
    full_in = layer.kernel.shape[-2]
    in_w = (full_in if slicing.in_widths is None
            else slicing.width(slicing.in_widths, layer.name))
    out_w = (layer.filters if slicing.out_widths is None
             else slicing.width(slicing.out_widths, layer.name))
    kernel = layer.kernel
    if slicing.in_segments is not None:
        segments = slicing.active_segments(layer.name)
        x = take_segments(inputs, segments)
        kernel = take_segments(kernel, segments, axis=-2)[..., :out_w]
    else:
        x = take_prefix(inputs, in_w)
        if not (is_full(in_w, full_in) and is_full(out_w, layer.filters)):
            kernel = kernel[..., :in_w, :out_w]
    outputs = convolution_op(x, kernel)
    if layer.use_bias:
        outputs = outputs + layer.bias[:out_w]
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return pad_channels(outputs, out_w, layer.filters)


@keras.saving.register_keras_serializable(package="hads_keras")
class Conv1D(SlicedLayerMixin, keras.layers.Conv1D):
    """`keras.layers.Conv1D` that computes with a prefix of its filters.

    Takes exactly the arguments of `keras.layers.Conv1D` (channels_last,
    groups=1; causal padding included). In subnetwork k it convolves the
    first `in_k` input channels with `kernel[:, :in_k, :out_k]` and
    zero-pads the output to `filters`.
    """

    def build(self, input_shape):
        self._check_channels_last()
        if self.groups != 1:
            raise ValueError(
                f"Layer '{self.name}': HADS Conv1D does not support "
                f"groups={self.groups}; use groups=1, or keep the layer a "
                "keras.layers.Conv1D on groups kept whole (keep=).")
        super().build(input_shape)

    def call(self, inputs):
        if self._hads_slicing is None:
            return super().call(inputs)

        def convolution(x, kernel):
            padding = self.padding
            if padding == "causal":
                x = keras.ops.pad(x, self._compute_causal_padding())
                padding = "valid"
            return keras.ops.conv(x, kernel, strides=list(self.strides),
                                  padding=padding,
                                  dilation_rate=self.dilation_rate,
                                  data_format=self.data_format)

        return sliced_convolution(self, inputs, convolution)
