"""The kernels on a concatenated input (InputSegments): the active prefix of
every segment of the full-size buffers, bit for bit what the prefix kernels
compute on the physically packed layer; and strict checks of the segments
and of the per-subnetwork segment tables (status, nothing written)."""

import numpy as np
import pytest

import hads_kernels_ctypes as hk

SENTINEL = 99
OFFSETS = np.array([0, 3, 8], np.int32)  # segments of 3, 5 and 4 channels
FULL_IN = 12


def _params(kernels, out, rng):
    mult = rng.integers(1 << 30, (1 << 31) - 1, out).astype(np.int32)
    shift = rng.integers(-9, -6, out).astype(np.int32)
    bias = rng.integers(-500, 500, out).astype(np.int32)
    arrays = (mult, shift, bias)  # the params point into them: keep alive
    return kernels.quantized_params(3, -5, (-128, 127), *arrays), arrays


def _packed(active):
    """Full-layout indices of the active channels, segment by segment."""
    return np.concatenate([np.arange(o, o + a) for o, a in zip(OFFSETS, active)])


@pytest.mark.parametrize("active", [(3, 5, 4), (2, 5, 1), (1, 0, 4), (0, 2, 0)])
def test_fully_connected_on_segments_equals_the_packed_layer(kernels, active):
    rng = np.random.default_rng(0)
    spatial, out, active_out = 2, 6, 4
    active = np.asarray(active, np.int32)
    x = rng.integers(-128, 128, (2, spatial * FULL_IN)).astype(np.int8)
    w = rng.integers(-127, 128, (out, spatial * FULL_IN)).astype(np.int8)
    params, _keep = _params(kernels, out, rng)
    got = np.full((2, out), SENTINEL, np.int8)
    shape = hk.FullyConnectedShape(2, spatial, FULL_IN, out)
    assert kernels.segments_status("fc", shape, params, OFFSETS, active,
                                   active_out, x, w, got) == hk.OK
    channels = _packed(active)
    n = len(channels)
    x_packed = np.ascontiguousarray(x.reshape(2, spatial, FULL_IN)[:, :, channels]
                                    .reshape(2, spatial * n))
    w_packed = np.ascontiguousarray(w.reshape(out, spatial, FULL_IN)[:, :, channels]
                                    .reshape(out, spatial * n))
    want = np.full((2, out), SENTINEL, np.int8)
    kernels.fully_connected(hk.FullyConnectedShape(2, spatial, n, out), params,
                            n, active_out, x_packed, w_packed, want)
    np.testing.assert_array_equal(got, want)
    assert np.all(got[:, active_out:] == -5)  # the output zero point


@pytest.mark.parametrize("active", [(3, 5, 4), (3, 1, 2), (0, 0, 1)])
def test_conv_on_segments_equals_the_packed_layer(kernels, active):
    rng = np.random.default_rng(1)
    out, active_out = 5, 3
    active = np.asarray(active, np.int32)
    x = rng.integers(-128, 128, (1, 5, 4, FULL_IN)).astype(np.int8)
    w = rng.integers(-127, 128, (out, 3, 3, FULL_IN)).astype(np.int8)
    params, _keep = _params(kernels, out, rng)
    shape = kernels.make_conv_shape(1, (5, 4), FULL_IN, (3, 3), out, (1, 2), "SAME")
    got = np.full((1, shape.out_height, shape.out_width, out), SENTINEL, np.int8)
    assert kernels.segments_status("conv", shape, params, OFFSETS, active,
                                   active_out, x, w, got) == hk.OK
    channels = _packed(active)
    n = len(channels)
    packed_shape = kernels.make_conv_shape(1, (5, 4), n, (3, 3), out, (1, 2), "SAME")
    want = np.full_like(got, SENTINEL)
    kernels.conv2d(packed_shape, params, n, active_out,
                   np.ascontiguousarray(x[..., channels]),
                   np.ascontiguousarray(w[..., channels]), want)
    np.testing.assert_array_equal(got, want)
    assert np.all(got[..., active_out:] == -5)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("active", [(3, 5, 4), (2, 5, 1), (0, 1, 3)])
def test_depthwise_on_segments_equals_the_packed_layer(kernels, active, multiplier):
    # Channel-wise: the output keeps the segments (times the multiplier),
    # the channels between them set to the output zero point.
    rng = np.random.default_rng(4)
    out = FULL_IN * multiplier
    active = np.asarray(active, np.int32)
    x = rng.integers(-128, 128, (1, 5, 4, FULL_IN)).astype(np.int8)
    w = rng.integers(-127, 128, (1, 3, 3, out)).astype(np.int8)
    params, _keep = _params(kernels, out, rng)
    shape = kernels.make_conv_shape(1, (5, 4), FULL_IN, (3, 3), out, (2, 1), "SAME",
                                    multiplier)
    got = np.full((1, shape.out_height, shape.out_width, out), SENTINEL, np.int8)
    assert kernels.segments_status("dw", shape, params, OFFSETS, active, 0, x, w,
                                   got) == hk.OK
    channels = _packed(active)
    outputs = (channels[:, None] * multiplier + np.arange(multiplier)).reshape(-1)
    n = len(channels)
    # The packed layer with the tables of its own (packed) channels.
    mult, shift, bias = (np.ascontiguousarray(a[outputs]) for a in _keep)
    packed_params = kernels.quantized_params(3, -5, (-128, 127), mult, shift, bias)
    packed_shape = kernels.make_conv_shape(1, (5, 4), n, (3, 3), n * multiplier,
                                           (2, 1), "SAME", multiplier)
    want = np.full(got.shape[:-1] + (n * multiplier,), SENTINEL, np.int8)
    kernels.depthwise_conv2d(packed_shape, packed_params, n,
                             np.ascontiguousarray(x[..., channels]),
                             np.ascontiguousarray(w[..., outputs]), want)
    np.testing.assert_array_equal(got[..., outputs], want)
    others = np.setdiff1d(np.arange(out), outputs)
    assert np.all(got[..., others] == -5)


@pytest.mark.parametrize("offsets,active,expected", [
    ([0, 3, 8], [4, 5, 4], hk.ERR_BAD_ACTIVE_WIDTH),   # wider than its segment
    ([0, 3, 8], [3, 5, 5], hk.ERR_BAD_ACTIVE_WIDTH),   # last one: up to 12
    ([0, 3, 8], [3, -1, 4], hk.ERR_BAD_ACTIVE_WIDTH),  # negative
    ([0, 3, 8], [0, 0, 0], hk.ERR_BAD_ACTIVE_WIDTH),   # nothing active
    ([1, 3, 8], [1, 1, 1], hk.ERR_BAD_TABLE),          # does not start at 0
    ([0, 8, 3], [1, 1, 1], hk.ERR_BAD_TABLE),          # not increasing
    ([0, 3, 3], [1, 0, 1], hk.ERR_BAD_TABLE),          # empty segment
    ([0, 3, 12], [1, 1, 0], hk.ERR_BAD_TABLE),         # starts at the end
    ([0, 3, 40], [1, 1, 1], hk.ERR_BAD_TABLE),         # outside the tensor
])
@pytest.mark.parametrize("kind", ["fc", "conv", "dw"])
def test_bad_segments_are_rejected_and_nothing_is_written(kernels, kind, offsets,
                                                          active, expected):
    rng = np.random.default_rng(2)
    params, _keep = _params(kernels, 2, rng)
    offsets = np.asarray(offsets, np.int32)
    active = np.asarray(active, np.int32)
    if kind == "fc":
        shape = hk.FullyConnectedShape(1, 1, FULL_IN, 2)
        x, w = np.ones((1, FULL_IN), np.int8), np.ones((2, FULL_IN), np.int8)
        out = np.full((1, 2), SENTINEL, np.int8)
    elif kind == "conv":
        shape = kernels.make_conv_shape(1, (2, 2), FULL_IN, (1, 1), 2, (1, 1), "VALID")
        x, w = np.ones((1, 2, 2, FULL_IN), np.int8), np.ones((2, 1, 1, FULL_IN), np.int8)
        out = np.full((1, 2, 2, 2), SENTINEL, np.int8)
    else:
        params, _keep = _params(kernels, FULL_IN, rng)
        shape = kernels.make_conv_shape(1, (2, 2), FULL_IN, (1, 1), FULL_IN, (1, 1),
                                        "VALID", 1)
        x, w = np.ones((1, 2, 2, FULL_IN), np.int8), np.ones((1, 1, 1, FULL_IN), np.int8)
        out = np.full((1, 2, 2, FULL_IN), SENTINEL, np.int8)
    status = kernels.segments_status(kind, shape, params, offsets, active, 2, x, w, out)
    assert status == expected, kernels.status_string(status)
    assert np.all(out == SENTINEL), "nothing may be written on error"


def _tables(kernels, in_channels, arrays):
    s = len(in_channels)
    in_channels = np.asarray(in_channels, np.int32)
    out_channels = np.full(s, 2, np.int32)
    mult = np.full(2 * s, 1 << 30, np.int32)
    shift = np.full(2 * s, -8, np.int32)
    bias = np.zeros(2 * s, np.int32)
    arrays.extend([in_channels, out_channels, mult, shift, bias])
    return kernels.tables(in_channels, out_channels, mult, shift, bias, FULL_IN, 2)


@pytest.mark.parametrize("in_channels,rows,expected", [
    ([12, 7], [[3, 5, 4], [2, 3, 2]], hk.OK),
    ([12, 7], [[3, 5, 4], [2, 3, 3]], hk.ERR_BAD_TABLE),         # sum != in_channels
    ([7, 7], [[2, 3, 2], [1, 4, 2]], hk.ERR_BAD_TABLE),          # a segment widens
    ([12, 13], [[3, 5, 4], [3, 6, 4]], hk.ERR_BAD_ACTIVE_WIDTH),  # wider than segment
])
def test_segment_tables_are_validated(kernels, in_channels, rows, expected):
    arrays = []
    tables = _tables(kernels, in_channels, arrays)
    channels = np.asarray(rows, np.int32).reshape(-1)
    segments = kernels.segment_tables(OFFSETS, channels)
    assert kernels.validate_segment_tables(tables, segments) == expected
