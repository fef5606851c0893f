"""TFLite's int8 fully connected arithmetic written out in numpy.

Independent of the C++ kernels, used where ai_edge_litert cannot serve as
the bit-exact reference: its FULLY_CONNECTED requantizes with single
rounding, TFLite's reference_integer_ops and TFLite Micro with
MultiplyByQuantizedMultiplier's double rounding (see
test_hads_kernels_vs_tflite.py).
"""

import numpy as np


def requantize(acc, mult, shift, single):
    """TFLite's requantization of int64 arrays (shift <= 0 here)."""
    acc, mult, shift = (np.asarray(v, np.int64) for v in (acc, mult, shift))
    assert np.all(shift <= 0)
    if single:
        total = 31 - shift
        return (acc * mult + (np.int64(1) << (total - 1))) >> total
    ab = acc * mult
    num = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(num >= 0, num >> 31, -((-num) >> 31))  # C division
    rs = -shift
    mask = (np.int64(1) << rs) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> rs) + ((high & mask) > threshold)


def fc_formula(x, w, bias, q, mult, shift, act_range, single):
    """int8 FULLY_CONNECTED written out: [batches, in] x [out, in]."""
    acc = (x.astype(np.int64) - q["input_zero_point"]) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias
    out = requantize(acc, np.broadcast_to(mult, acc.shape),
                      np.broadcast_to(shift, acc.shape), single)
    return np.clip(out + q["output_zero_point"], *act_range).astype(np.int8)
