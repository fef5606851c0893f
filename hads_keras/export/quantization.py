"""Requantization multipliers exactly as TFLite computes them.

The nested model's custom options carry one quantized multiplier and shift per
subnetwork and output channel (``docs/nested_tflite_format.md``). For the int8
kernels to agree bit for bit with TFLite's reference kernels run on a
materialized subnetwork, these integers must equal the ones TFLite derives
from the tensor scales in its ``Prepare``:

* ``QuantizeMultiplier`` (``tensorflow/lite/kernels/internal/quantization_util.cc``)
  turns a real multiplier into a Q31 significand and a power-of-two shift;
* the real multiplier itself is computed per channel in double for conv,
  depthwise and per-channel fully connected
  (``PopulateConvolutionQuantizationParams``), but as a *float32* product of
  input and filter scale for per-tensor fully connected
  (``GetQuantizedConvolutionMultipler``). The two can differ in the last bit,
  hence the two helpers below.
"""

import math

import numpy as np

_Q31 = 1 << 31


def quantize_multiplier(real):
    """Decomposes ``real`` into ``(multiplier, shift)`` like TFLite.

    Bit-identical to ``tflite::QuantizeMultiplier`` (default build, without
    ``TFLITE_SINGLE_ROUNDING``): ``real ~= multiplier * 2**(shift - 31)`` with
    ``multiplier`` in ``[2**30, 2**31)`` for non-zero inputs; ``shift > 0``
    means a left shift.

    Args:
      real: the real multiplier (usually ``input_scale * weight_scale /
        output_scale``), a finite non-negative number.

    Returns:
      ``(multiplier, shift)`` as Python ints; ``(0, 0)`` for zero and for
      values below about ``2**-32``, which TFLite flushes to zero.

    Raises:
      ValueError: if ``real`` is negative, infinite or NaN, or so large that
        the shift would exceed 30 (TFLite's kernels cannot apply it).
    """
    real = float(real)
    if not math.isfinite(real) or real < 0.0:
        raise ValueError(
            f"quantize_multiplier: the real multiplier must be a finite "
            f"non-negative number, got {real!r}; check the input, weight and "
            f"output scales it was computed from.")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2**shift, 0.5 <= q < 1
    # TfLiteRound is std::round: half away from zero. q * 2**31 is exact in
    # double, and so is adding 0.5 at this magnitude.
    q_fixed = int(math.floor(q * _Q31 + 0.5))
    if q_fixed == _Q31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        # TFLite flushes these "denormal" multipliers to zero.
        return 0, 0
    if shift > 30:
        raise ValueError(
            f"quantize_multiplier: real multiplier {real!r} needs a left shift "
            f"of {shift} > 30, which TFLite's int8 kernels cannot apply; the "
            f"output scale is far too small for the input and weight scales.")
    return q_fixed, shift


def effective_scales_per_channel(input_scale, weight_scales, output_scale,
                                 channel_factors=None):
    """Per-channel real multipliers, as TFLite computes them for conv layers.

    ``double(input_scale) * double(weight_scale[c]) / double(output_scale)``,
    the order of ``PopulateConvolutionQuantizationParams`` (used by conv 2D,
    depthwise conv and per-channel fully connected). Scales are first rounded
    to float32, as they are stored in the ``.tflite`` file.

    Args:
      input_scale, output_scale: scalar scales of the input and output.
      weight_scales: one scale (broadcast) or one per output channel.
      channel_factors: optional positive per-channel factors ``a_k[c]`` of a
        subnetwork (its batch-normalization statistics folded into the
        effective weight scale, see the format doc); multiplied in double
        after the weight scale.

    Returns:
      float64 array, one real multiplier per output channel.
    """
    s_in = float(np.float32(input_scale))
    s_out = float(np.float32(output_scale))
    w = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    w = w.astype(np.float64)
    if channel_factors is not None:
        factors = np.asarray(channel_factors, dtype=np.float64)
        w = np.broadcast_to(w, factors.shape) * factors
    return s_in * w / s_out


def effective_scale_per_tensor_fc(input_scale, weight_scale, output_scale):
    """Real multiplier of a per-tensor fully connected layer, as TFLite does.

    ``double(float32(input_scale * weight_scale)) / double(output_scale)``
    (``GetQuantizedConvolutionMultipler``: the product is taken in float32).
    """
    product = np.float32(input_scale) * np.float32(weight_scale)
    return float(np.float32(product)) / float(np.float32(output_scale))


def quantize_multipliers(reals):
    """Applies :func:`quantize_multiplier` elementwise.

    Args:
      reals: array-like of real multipliers (any shape).

    Returns:
      ``(multipliers, shifts)``: two int32 arrays of the same shape.
    """
    reals = np.asarray(reals, dtype=np.float64)
    mult = np.zeros(reals.shape, dtype=np.int32)
    shift = np.zeros(reals.shape, dtype=np.int32)
    for idx, value in np.ndenumerate(reals):
        mult[idx], shift[idx] = quantize_multiplier(value)
    return mult, shift


def per_channel_multipliers(input_scale, weight_scales, output_scale,
                            channel_factors=None):
    """Quantized multipliers and shifts per output channel (conv style).

    Shortcut for ``quantize_multipliers(effective_scales_per_channel(...))``.
    """
    return quantize_multipliers(
        effective_scales_per_channel(input_scale, weight_scales, output_scale,
                                     channel_factors))
