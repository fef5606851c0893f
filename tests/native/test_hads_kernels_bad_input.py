"""The portable kernels reject bad arguments with a status and write
nothing; the switch rejects out-of-range subnetworks and bad tables."""

import ctypes

import numpy as np
import pytest

import hads_kernels_ctypes as hk

SENTINEL = 99


def _fc(kernels, shape=None, active=(4, 3), shift=-8, act=(-128, 127),
        null=None):
    shape = shape or hk.FullyConnectedShape(1, 2, 4, 3)
    x = np.ones((1, 8), np.int8)
    w = np.ones((3, 8), np.int8)
    mult = np.full(3, 1 << 30, np.int32)
    shifts = np.full(3, shift, np.int32)
    bias = np.zeros(3, np.int32)
    out = np.full((1, 3), SENTINEL, np.int8)
    params = kernels.quantized_params(0, 0, act, mult, shifts, bias)
    if null == "multiplier":
        params.output_multiplier = None
    args = [shape, params, active[0], active[1], x, w, out]
    if null == "input":
        status = kernels.lib.hads_fc_int8(
            ctypes.byref(shape), ctypes.byref(params), active[0], active[1],
            None, w.ctypes.data, out.ctypes.data)
    else:
        status = kernels.fc_status(*args)
    return status, out


def test_good_fc_call_is_ok(kernels):
    status, out = _fc(kernels)
    assert status == hk.OK
    assert np.all(out != SENTINEL)


@pytest.mark.parametrize("active,expected", [
    ((0, 3), hk.ERR_BAD_ACTIVE_WIDTH), ((5, 3), hk.ERR_BAD_ACTIVE_WIDTH),
    ((4, 0), hk.ERR_BAD_ACTIVE_WIDTH), ((4, 4), hk.ERR_BAD_ACTIVE_WIDTH),
    ((-1, 3), hk.ERR_BAD_ACTIVE_WIDTH)])
def test_fc_rejects_active_widths_outside_the_full_layer(kernels, active,
                                                         expected):
    status, out = _fc(kernels, active=active)
    assert status == expected
    assert np.all(out == SENTINEL), "nothing may be written on error"


def test_fc_rejects_bad_shift_range_shape_and_null(kernels):
    assert _fc(kernels, shift=31)[0] == hk.ERR_BAD_SHIFT
    assert _fc(kernels, shift=-32)[0] == hk.ERR_BAD_SHIFT
    assert _fc(kernels, act=(10, -10))[0] == hk.ERR_BAD_ACTIVATION_RANGE
    assert _fc(kernels, shape=hk.FullyConnectedShape(1, 0, 4, 3))[0] == \
        hk.ERR_BAD_SHAPE
    assert _fc(kernels, null="multiplier")[0] == hk.ERR_NULL_POINTER
    assert _fc(kernels, null="input")[0] == hk.ERR_NULL_POINTER


def test_kernel_error_carries_a_message(kernels):
    with pytest.raises(hk.KernelError, match="active channels"):
        kernels.fully_connected(hk.FullyConnectedShape(1, 1, 2, 2),
                                kernels.float_params((-1, 1), None), 3, 1,
                                np.zeros((1, 2), np.float32),
                                np.zeros((2, 2), np.float32),
                                np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("args,expected", [
    # (in_hw, filter_hw, strides, padding)
    (((3, 3), (4, 1), (1, 1), "VALID"), hk.ERR_BAD_GEOMETRY),  # window > image
    (((3, 3), (1, 1), (0, 1), "SAME"), hk.ERR_BAD_GEOMETRY),   # stride 0
    (((3, 3), (1, 1), (1, 1), 7), hk.ERR_BAD_GEOMETRY),        # padding enum
    (((0, 3), (1, 1), (1, 1), "SAME"), hk.ERR_BAD_GEOMETRY),   # empty image
])
def test_make_conv_shape_rejects_bad_geometry(kernels, args, expected):
    in_hw, f_hw, strides, padding = args
    with pytest.raises(hk.KernelError) as err:
        kernels.make_conv_shape(1, in_hw, 2, f_hw, 2, strides, padding)
    assert err.value.status == expected


def test_make_conv_shape_matches_tflite_padding(kernels):
    # 49x10 input, 10x4 filter, stride 2, SAME: out 25x5, total padding
    # (25-1)*2+10-49 = 9 -> top 4, (5-1)*2+4-10 = 2 -> left 1.
    s = kernels.make_conv_shape(1, (49, 10), 1, (10, 4), 64, (2, 2), "SAME")
    assert (s.out_height, s.out_width, s.pad_height, s.pad_width) == (25, 5,
                                                                      4, 1)
    s = kernels.make_conv_shape(1, (49, 10), 1, (10, 4), 64, (2, 2), "VALID")
    assert (s.out_height, s.out_width, s.pad_height, s.pad_width) == (20, 4,
                                                                      0, 0)


def test_conv_rejects_bad_shape_and_widths(kernels):
    shape = kernels.make_conv_shape(1, (4, 4), 3, (3, 3), 5, (1, 1), "SAME")
    x = np.zeros((1, 4, 4, 3), np.int8)
    w = np.zeros((5, 3, 3, 3), np.int8)
    out = np.full((1, 4, 4, 5), SENTINEL, np.int8)
    m, s, b = (np.full(5, 1 << 30, np.int32), np.full(5, -1, np.int32),
               np.zeros(5, np.int32))
    params = kernels.quantized_params(0, 0, (-128, 127), m, s, b)
    assert kernels.conv_status(shape, params, 4, 5, x, w, out) == \
        hk.ERR_BAD_ACTIVE_WIDTH
    assert kernels.conv_status(shape, params, 3, 6, x, w, out) == \
        hk.ERR_BAD_ACTIVE_WIDTH
    bad = hk.ConvShape.from_buffer_copy(shape)
    bad.stride_height = 0
    assert kernels.conv_status(bad, params, 3, 5, x, w, out) == \
        hk.ERR_BAD_GEOMETRY
    bad = hk.ConvShape.from_buffer_copy(shape)
    bad.pad_width = -1
    assert kernels.conv_status(bad, params, 3, 5, x, w, out) == \
        hk.ERR_BAD_GEOMETRY
    assert np.all(out == SENTINEL)


def test_depthwise_rejects_inconsistent_multiplier(kernels):
    shape = kernels.make_conv_shape(1, (4, 4), 3, (3, 3), 6, (1, 1), "SAME",
                                    depth_multiplier=2)
    x = np.zeros((1, 4, 4, 3), np.float32)
    w = np.zeros((1, 3, 3, 6), np.float32)
    out = np.full((1, 4, 4, 6), 5.0, np.float32)
    params = kernels.float_params((-1, 1), None)
    assert kernels.dw_status(shape, params, 3, x, w, out) == hk.OK
    bad = hk.ConvShape.from_buffer_copy(shape)
    bad.out_channels = 5
    assert kernels.dw_status(bad, params, 3, x, w, out) == hk.ERR_BAD_SHAPE
    bad = hk.ConvShape.from_buffer_copy(shape)
    bad.depth_multiplier = 0
    assert kernels.dw_status(bad, params, 3, x, w, out) == hk.ERR_BAD_SHAPE
    assert kernels.dw_status(shape, params, 4, x, w, out) == \
        hk.ERR_BAD_ACTIVE_WIDTH


def test_activation_range_rejects_unknown_activation_and_bad_scale(kernels):
    with pytest.raises(hk.KernelError):
        kernels.activation_range_int8(4, 0.1, 0)   # TANH is not fused here
    with pytest.raises(hk.KernelError):
        kernels.activation_range_int8("RELU", 0.0, 0)
    with pytest.raises(hk.KernelError):
        kernels.activation_range_float(9)


def test_activation_ranges_follow_tflite(kernels):
    assert kernels.activation_range_int8("NONE", 0.1, 5) == (-128, 127)
    assert kernels.activation_range_int8("RELU", 0.1, -20) == (-20, 127)
    # RELU6 with scale 6/255 and zero point -128 covers the full range.
    assert kernels.activation_range_int8("RELU6", 6 / 255, -128) == (-128, 127)
    assert kernels.activation_range_int8("RELU6", 0.05, 3) == (3, 123)
    assert kernels.activation_range_int8("RELU_N1_TO_1", 0.01, 0) == (-100,
                                                                       100)
    assert kernels.activation_range_float("RELU6") == (0.0, 6.0)


# ---------------------------------------------------------------------------
# Tables and the switch.

def _tables(kernels, in_w=(8, 6, 3), out_w=(5, 4, 2), full=(8, 5), shift=-3,
            mult=1 << 30):
    s = len(in_w)
    arrays = dict(in_w=np.asarray(in_w, np.int32),
                  out_w=np.asarray(out_w, np.int32),
                  mult=np.full((s, full[1]), mult, np.int32),
                  shift=np.full((s, full[1]), shift, np.int32),
                  bias=np.arange(s * full[1], dtype=np.int32).reshape(s, full[1]))
    t = kernels.tables(arrays["in_w"], arrays["out_w"], arrays["mult"],
                       arrays["shift"], arrays["bias"], *full)
    return t, arrays


def test_select_returns_the_row_of_each_subnetwork(kernels):
    t, arrays = _tables(kernels)
    assert kernels.validate_tables(t) == hk.OK
    for k in range(3):
        status, active = kernels.select(t, k)
        assert status == hk.OK
        assert (active.in_channels, active.out_channels) == (
            arrays["in_w"][k], arrays["out_w"][k])
        assert active.bias[0] == arrays["bias"][k, 0]


@pytest.mark.parametrize("k", [-1, 3, 1 << 30, -(1 << 31)])
def test_select_rejects_subnetwork_out_of_range(kernels, k):
    t, _ = _tables(kernels)
    status, _ = kernels.select(t, k)
    assert status == hk.ERR_BAD_SUBNETWORK


@pytest.mark.parametrize("kwargs,expected", [
    (dict(in_w=(8, 9, 3)), hk.ERR_BAD_TABLE),       # wider than full / growing
    (dict(in_w=(8, 0, 0)), hk.ERR_BAD_TABLE),       # empty subnetwork
    (dict(out_w=(5, 6, 2)), hk.ERR_BAD_TABLE),      # more than full out
    (dict(out_w=(4, 5, 2)), hk.ERR_BAD_TABLE),      # not nested
    (dict(shift=31), hk.ERR_BAD_SHIFT),
    (dict(mult=-5), hk.ERR_BAD_TABLE),
])
def test_validate_tables_rejects_inconsistent_tables(kernels, kwargs,
                                                     expected):
    t, _ = _tables(kernels, **kwargs)
    assert kernels.validate_tables(t) == expected


def test_validate_tables_checks_depthwise_widths(kernels):
    t, _ = _tables(kernels, in_w=(4, 2), out_w=(8, 4), full=(4, 8))
    assert kernels.validate_tables(t, 2) == hk.OK
    t, _ = _tables(kernels, in_w=(4, 2), out_w=(8, 3), full=(4, 8))
    assert kernels.validate_tables(t, 2) == hk.ERR_BAD_TABLE
