"""Conv2D with a runtime width."""

import keras

from hads_keras._runtime import is_full, pad_channels, take_prefix
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
        slicing = self._hads_slicing
        if slicing is None:
            return super().call(inputs)
        full_in = self.kernel.shape[-2]
        in_w = (full_in if slicing.in_widths is None
                else slicing.width(slicing.in_widths, self.name))
        out_w = (self.filters if slicing.out_widths is None
                 else slicing.width(slicing.out_widths, self.name))
        x = take_prefix(inputs, in_w)
        kernel = self.kernel
        if not (is_full(in_w, full_in) and is_full(out_w, self.filters)):
            kernel = kernel[..., :in_w, :out_w]
        outputs = self.convolution_op(x, kernel)
        if self.use_bias:
            outputs = outputs + self.bias[:out_w]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return pad_channels(outputs, out_w, self.filters)
