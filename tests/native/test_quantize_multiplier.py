"""hads_keras.export.quantization against TFLite's QuantizeMultiplier
semantics and the C++ MultiplyByQuantizedMultiplier against gemmlowp's."""

import fractions
import math

import numpy as np
import pytest

from hads_keras.export import quantization as qz


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.75, (3 << 29, 0)),
    (0.25, (1 << 30, -1)),
    (3.0, (3 << 29, 2)),
    # frexp gives q = 1 - 2**-40, q * 2**31 rounds up to 2**31: the overflow
    # case halves it and bumps the shift.
    (1.0 - 2.0 ** -40, (1 << 30, 1)),
    # A tie: q * 2**31 = 2**30 + 0.5 rounds away from zero (std::round), not
    # to even as Python's round() would.
    (0.5 + 2.0 ** -32, ((1 << 30) + 1, 0)),
    (2.0 ** -32, (1 << 30, -31)),   # the smallest kept shift
    (2.0 ** -33, (0, 0)),           # flushed to zero like TFLite
    (1e-12, (0, 0)),
])
def test_known_values(real, expected):
    assert qz.quantize_multiplier(real) == expected


def _exact_reference(real):
    """QuantizeMultiplier with exact rational arithmetic."""
    frac = fractions.Fraction(real)
    shift = 0
    while frac >= 1:
        frac /= 2
        shift += 1
    while frac < fractions.Fraction(1, 2):
        frac *= 2
        shift -= 1
    scaled = frac * (1 << 31)
    q = math.floor(scaled + fractions.Fraction(1, 2))  # half away from zero
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def test_random_values_match_exact_rational_reference():
    rng = np.random.default_rng(0)
    reals = np.concatenate([10.0 ** rng.uniform(-9, 2, 2000),
                            rng.uniform(0.4, 1.1, 500)])
    for r in reals:
        m, s = qz.quantize_multiplier(r)
        assert (m, s) == _exact_reference(float(r)), r
        assert (1 << 30) <= m < (1 << 31)
        # m * 2**(s - 31) reproduces r to Q31 precision.
        assert abs(m * 2.0 ** (s - 31) - r) <= 2.0 ** (s - 32)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), 2.0 ** 31])
def test_rejects_values_tflite_cannot_represent(bad):
    with pytest.raises(ValueError, match="quantize_multiplier"):
        qz.quantize_multiplier(bad)


def test_per_channel_uses_double_and_float32_scales():
    in_s, out_s = np.float32(0.0123), np.float32(0.0456)
    w = np.asarray([0.001, 0.0021, 0.017], np.float32)
    reals = qz.effective_scales_per_channel(in_s, w, out_s)
    expected = [float(in_s) * float(v) / float(out_s) for v in w]
    assert reals.tolist() == expected
    mult, shift = qz.per_channel_multipliers(in_s, w, out_s)
    assert mult.dtype == np.int32 and shift.dtype == np.int32
    assert [(int(a), int(b)) for a, b in zip(mult, shift)] == [
        qz.quantize_multiplier(r) for r in expected]
    # Factors of a subnetwork's BN statistics scale each channel.
    f = [1.0, 2.0, 0.5]
    scaled = qz.effective_scales_per_channel(in_s, w, out_s, f)
    np.testing.assert_array_equal(scaled, reals * np.asarray(f))


def test_per_tensor_fc_multiplies_scales_in_float32():
    # TFLite's GetQuantizedConvolutionMultipler: float product, double divide.
    rng = np.random.default_rng(1)
    differs = 0
    for _ in range(200):
        a, b, c = (np.float32(v) for v in rng.uniform(1e-3, 1e-1, 3))
        got = qz.effective_scale_per_tensor_fc(a, b, c)
        assert got == float(np.float32(a * b)) / float(c)
        differs += got != float(a) * float(b) / float(c)
    assert differs > 0  # the two formulas really differ sometimes


def _mbqm_reference(x, m, shift):
    """gemmlowp SaturatingRoundingDoublingHighMul + RoundingDivideByPOT."""
    left, right = max(shift, 0), max(-shift, 0)
    a = ((x * (1 << left) + (1 << 31)) % (1 << 32)) - (1 << 31)  # int32 wrap
    if a == m == -(1 << 31):
        high = (1 << 31) - 1
    else:
        ab = a * m
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        num = ab + nudge
        high = abs(num) // (1 << 31) * (1 if num >= 0 else -1)  # C division
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def test_multiply_by_quantized_multiplier_matches_gemmlowp(kernels):
    rng = np.random.default_rng(2)
    cases = [(-(1 << 31), -(1 << 31), 0), ((1 << 31) - 1, (1 << 31) - 1, 0),
             (-5, 1 << 30, -1), (5, 1 << 30, -1), (-6, 1 << 30, -2),
             (7, (1 << 31) - 1, 30)]
    for _ in range(3000):
        cases.append((int(rng.integers(-(1 << 31), 1 << 31)),
                      int(rng.integers(0, 1 << 31)),
                      int(rng.integers(-31, 8))))
    for x, m, s in cases:
        assert kernels.multiply_by_quantized_multiplier(x, m, s) == \
            _mbqm_reference(x, m, s), (x, m, s)
