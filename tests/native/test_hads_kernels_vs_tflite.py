"""The portable HADS kernels against TFLite's reference kernels.

For every subnetwork k of a randomly drawn nested layer (full widths, S
nested (in_k, out_k) pairs, per-subnetwork multipliers and biases), a
standalone single-operator TFLite model is built with the *physically
sliced* weights and bias and subnetwork k's scales, and run with the builtin
reference op resolver. The HADS kernel runs on the full-size buffers with
the active widths, taking its per-subnetwork row through SelectSubnetwork.
Int8 must agree bit for bit on the active prefix, the inactive output
channels must hold the output zero point (0 for float); float agrees within
1e-5.

Inactive input channels are filled with random values, so a kernel that
read them would disagree with the reference.
"""

import zlib

import numpy as np
import pytest

import hads_kernels_ctypes as hk
import single_op_model as som
from int8_reference import fc_formula
from hads_keras.export import quantization as qz

ACTIVATIONS = ("NONE", "RELU", "RELU6")


def seed_of(case):
    """A seed that is stable across runs (unlike hash() of strings)."""
    return zlib.crc32(repr(case).encode())


# ---------------------------------------------------------------------------
# Random nested layers.

def nested_widths(rng, num, full):
    """S non-increasing widths in 1..full, the first one full."""
    w = np.sort(rng.integers(1, full + 1, size=num - 1))[::-1]
    return np.concatenate([[full], w]).astype(np.int32)


def quant_setup(rng, fan_in, num_out, per_channel=True):
    """Scales and zero points giving outputs that span the int8 range."""
    input_scale = np.float32(rng.uniform(0.01, 0.05))
    if per_channel:
        weight_scale = rng.uniform(0.002, 0.02, num_out).astype(np.float32)
    else:
        weight_scale = np.float32(rng.uniform(0.002, 0.02))
    typical = np.float64(input_scale) * np.mean(weight_scale) * np.sqrt(
        fan_in) * 74.0 * 73.0
    return dict(input_scale=input_scale,
                input_zero_point=int(rng.integers(-100, 101)),
                weight_scale=weight_scale,
                output_scale=np.float32(typical / rng.uniform(30, 70)),
                output_zero_point=int(rng.integers(-30, 31)))


class Tables:
    """Per-subnetwork tables of one HADS operator, as the exporter writes
    them (docs/nested_tflite_format.md), plus what the reference needs."""

    def __init__(self, kernels, in_w, out_w, full_in, full_out):
        self.kernels = kernels
        self.in_w = np.ascontiguousarray(in_w, np.int32)
        self.out_w = np.ascontiguousarray(out_w, np.int32)
        s = len(in_w)
        # Inactive entries stay at a valid harmless value (0.5, shift 0).
        self.multiplier = np.full((s, full_out), 1 << 30, np.int32)
        self.shift = np.zeros((s, full_out), np.int32)
        self.bias = np.zeros((s, full_out), np.int32)
        self.struct = kernels.tables(self.in_w, self.out_w, self.multiplier,
                                     self.shift, self.bias, full_in, full_out)

    def select(self, k):
        status, active = self.kernels.select(self.struct, k)
        assert status == hk.OK
        assert (active.in_channels, active.out_channels) == (
            self.in_w[k], self.out_w[k])
        return active


def int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def weights8(rng, shape):
    return rng.integers(-127, 128, size=shape, dtype=np.int64).astype(np.int8)


def subnet_scales(q, factors, k, out_k):
    """Subnetwork k's effective weight scales (float32, as stored)."""
    return (np.asarray(q["weight_scale"], np.float64)[:out_k]
            * factors[k, :out_k]).astype(np.float32)


def fill_int8_tables(rng, tables, q, factors, fan_in_per_k, per_tensor_fc):
    """Multipliers (from subnetwork k's scales, as TFLite derives them) and
    random biases per subnetwork."""
    for k, out_k in enumerate(tables.out_w):
        if per_tensor_fc:
            real = qz.effective_scale_per_tensor_fc(
                q["input_scale"], q["weight_scale"], q["output_scale"])
            m, s = qz.quantize_multiplier(real)
            tables.multiplier[k, :out_k], tables.shift[k, :out_k] = m, s
        else:
            m, s = qz.per_channel_multipliers(
                q["input_scale"], subnet_scales(q, factors, k, out_k),
                q["output_scale"])
            tables.multiplier[k, :out_k], tables.shift[k, :out_k] = m, s
        bound = int(40 * 74 * 73 * np.sqrt(fan_in_per_k[k]) / 30)
        tables.bias[k, :out_k] = rng.integers(-bound, bound + 1, out_k)


def ref_quant(q, factors, k, out_k, per_tensor_fc):
    """The reference model's quantization dict for subnetwork k."""
    rq = dict(q)
    if not per_tensor_fc:
        rq["weight_scale"] = subnet_scales(q, factors, k, out_k)
    return rq


def check_int8_output(out, ref, out_k, zero_point, what):
    active = out[..., :out_k]
    np.testing.assert_array_equal(active.reshape(ref.shape), ref,
                                  err_msg=what)
    assert np.all(out[..., out_k:] == zero_point), what
    # The comparison must not be vacuous: outputs are not all clamped.
    if ref.size >= 16:
        assert len(np.unique(ref)) > 3, what


# ---------------------------------------------------------------------------
# Fully connected.
#
# ai_edge_litert's FULLY_CONNECTED (even with BUILTIN_REF) requantizes with
# *single* rounding, round(acc * M / 2**(31 - shift)), while TFLite's
# reference_integer_ops and TFLite Micro's FULLY_CONNECTED (the device
# runtime) use MultiplyByQuantizedMultiplier's double rounding, as the HADS
# kernels do. About one output in a thousand differs by one. So the FC test
# checks the kernel bit for bit against TFLite's integer formula with double
# rounding (int8_reference.py, independent of the C++), and against
# ai_edge_litert exactly wherever the two roundings agree and against the
# single-rounding value where they do not. Conv and depthwise agree with
# ai_edge_litert everywhere.

FC_CASES = [
    # (batches, in_spatial P, channels C, out, S, activation, bias, per_channel)
    (1, 1, 490, 144, 4, "RELU", True, False),    # DNN S first layer
    (2, 1, 144, 12, 4, "NONE", True, True),
    (1, 1, 37, 23, 3, "RELU6", False, True),
    (1, 5, 16, 12, 4, "NONE", True, True),      # Flatten of 5 positions
    (3, 25, 8, 10, 3, "RELU", False, False),
    (1, 4, 7, 9, 5, "NONE", True, False),
]


@pytest.mark.parametrize("case", FC_CASES, ids=[str(c) for c in FC_CASES])
def test_fully_connected_int8_matches_reference(kernels, case):
    batches, p, c, o, s, act, with_bias, per_channel = case
    rng = np.random.default_rng(seed_of(case))
    in_w, out_w = nested_widths(rng, s, c), nested_widths(rng, s, o)
    w = weights8(rng, (o, p * c))
    q = quant_setup(rng, p * c, o, per_channel)
    factors = np.ones((s, o))
    if per_channel:
        factors[1:] = rng.uniform(0.5, 2.0, (s - 1, o))
    tables = Tables(kernels, in_w, out_w, c, o)
    fill_int8_tables(rng, tables, q, factors, p * in_w, not per_channel)
    act_range = kernels.activation_range_int8(act, q["output_scale"],
                                              q["output_zero_point"])
    x = int8(rng, (batches, p * c))
    shape = hk.FullyConnectedShape(batches, p, c, o)
    for k in range(s):
        ik, ok = int(in_w[k]), int(out_w[k])
        active = tables.select(k)
        bias = active.bias if with_bias else None
        params = hk.QuantizedParams(-q["input_zero_point"],
                                    q["output_zero_point"], *act_range,
                                    active.output_multiplier,
                                    active.output_shift, bias)
        out = np.full((batches, o), 77, np.int8)
        kernels.fully_connected(shape, params, ik, ok, x, w, out)

        w_k = w.reshape(o, p, c)[:ok, :, :ik].reshape(ok, p * ik)
        x_k = np.ascontiguousarray(
            x.reshape(batches, p, c)[:, :, :ik].reshape(batches, p * ik))
        b_k = tables.bias[k, :ok].copy() if with_bias else None
        model = som.fully_connected(
            w_k, b_k, x_k.shape, act,
            ref_quant(q, factors, k, ok, not per_channel))
        ref = som.run_reference(model, x_k)
        rows = (tables.multiplier[k, :ok], tables.shift[k, :ok])
        double = fc_formula(x_k, w_k, b_k, q, *rows, act_range, single=False)
        single = fc_formula(x_k, w_k, b_k, q, *rows, act_range, single=True)
        what = f"subnetwork {k} ({ik}, {ok})"
        # The kernel is TFLite's integer formula (double rounding) ...
        check_int8_output(out, double, ok, q["output_zero_point"], what)
        # ... and ai_edge_litert differs from it only by its single rounding.
        np.testing.assert_array_equal(
            ref, np.where(double != single, single, double), err_msg=what)


@pytest.mark.parametrize("case", FC_CASES[:4], ids=[str(c) for c in FC_CASES[:4]])
def test_fully_connected_float_matches_reference(kernels, case):
    batches, p, c, o, s, act, with_bias, _ = case
    rng = np.random.default_rng(seed_of(case) + 1)
    in_w, out_w = nested_widths(rng, s, c), nested_widths(rng, s, o)
    w = (rng.standard_normal((o, p * c)) / np.sqrt(p * c)).astype(np.float32)
    x = rng.uniform(-1, 1, (batches, p * c)).astype(np.float32)
    biases = rng.uniform(-0.5, 0.5, (s, o)).astype(np.float32)
    shape = hk.FullyConnectedShape(batches, p, c, o)
    act_range = kernels.activation_range_float(act)
    for k in range(s):
        ik, ok = int(in_w[k]), int(out_w[k])
        bias = biases[k] if with_bias else None
        out = np.full((batches, o), 7.0, np.float32)
        kernels.fully_connected(shape, kernels.float_params(act_range, bias),
                                ik, ok, x, w, out)
        w_k = np.ascontiguousarray(
            w.reshape(o, p, c)[:ok, :, :ik].reshape(ok, p * ik))
        x_k = np.ascontiguousarray(
            x.reshape(batches, p, c)[:, :, :ik].reshape(batches, p * ik))
        ref = som.run_reference(
            som.fully_connected(w_k, None if bias is None else bias[:ok].copy(),
                                x_k.shape, act), x_k)
        np.testing.assert_allclose(out[:, :ok], ref, rtol=1e-5, atol=1e-5)
        assert np.all(out[:, ok:] == 0.0)


# ---------------------------------------------------------------------------
# Conv 2D.

CONV_CASES = [
    # (N, H, W, Cin, Cout, (kh, kw), (sh, sw), padding, act, S)
    (1, 49, 10, 1, 16, (10, 4), (2, 2), "SAME", "RELU", 4),   # DS-CNN stem
    (1, 9, 7, 12, 10, (3, 3), (1, 1), "SAME", "RELU6", 4),
    (2, 8, 8, 6, 9, (3, 3), (2, 2), "VALID", "NONE", 3),
    (1, 11, 6, 5, 7, (10, 4), (1, 2), "VALID", "RELU", 3),
    (1, 6, 5, 16, 20, (1, 1), (1, 1), "SAME", "NONE", 4),     # pointwise
    (1, 7, 9, 4, 6, (2, 5), (2, 1), "SAME", "RELU6", 2),
]


def _conv_problem(kernels, case, seed):
    n, h, w_, cin, cout, ksize, strides, padding, act, s = case
    rng = np.random.default_rng(seed)
    in_w, out_w = nested_widths(rng, s, cin), nested_widths(rng, s, cout)
    shape = kernels.make_conv_shape(n, (h, w_), cin, ksize, cout, strides,
                                    padding)
    return rng, in_w, out_w, shape


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv2d_int8_matches_reference(kernels, case):
    n, h, w_, cin, cout, (kh, kw), strides, padding, act, s = case
    rng, in_w, out_w, shape = _conv_problem(kernels, case,
                                            seed_of(case))
    w = weights8(rng, (cout, kh, kw, cin))
    q = quant_setup(rng, kh * kw * cin, cout)
    factors = np.ones((s, cout))
    factors[1:] = rng.uniform(0.5, 2.0, (s - 1, cout))
    tables = Tables(kernels, in_w, out_w, cin, cout)
    fill_int8_tables(rng, tables, q, factors, kh * kw * in_w, False)
    act_range = kernels.activation_range_int8(act, q["output_scale"],
                                              q["output_zero_point"])
    x = int8(rng, (n, h, w_, cin))
    for k in range(s):
        ik, ok = int(in_w[k]), int(out_w[k])
        active = tables.select(k)
        params = hk.QuantizedParams(-q["input_zero_point"],
                                    q["output_zero_point"], *act_range,
                                    active.output_multiplier,
                                    active.output_shift, active.bias)
        out = np.full((n, shape.out_height, shape.out_width, cout), -77,
                      np.int8)
        kernels.conv2d(shape, params, ik, ok, x, w, out)
        x_k = np.ascontiguousarray(x[..., :ik])
        model = som.conv2d(np.ascontiguousarray(w[:ok, :, :, :ik]),
                           tables.bias[k, :ok].copy(), x_k.shape, strides,
                           padding, act, ref_quant(q, factors, k, ok, False))
        ref = som.run_reference(model, x_k)
        check_int8_output(out, ref, ok, q["output_zero_point"],
                          f"subnetwork {k} ({ik}, {ok})")


@pytest.mark.parametrize("case", CONV_CASES[:4], ids=[str(c) for c in CONV_CASES[:4]])
def test_conv2d_float_matches_reference(kernels, case):
    n, h, w_, cin, cout, (kh, kw), strides, padding, act, s = case
    rng, in_w, out_w, shape = _conv_problem(kernels, case,
                                            seed_of(case) + 1)
    w = (rng.standard_normal((cout, kh, kw, cin))
         / np.sqrt(kh * kw * cin)).astype(np.float32)
    x = rng.uniform(-1, 1, (n, h, w_, cin)).astype(np.float32)
    biases = rng.uniform(-0.5, 0.5, (s, cout)).astype(np.float32)
    act_range = kernels.activation_range_float(act)
    for k in range(s):
        ik, ok = int(in_w[k]), int(out_w[k])
        out = np.full((n, shape.out_height, shape.out_width, cout), 7.0,
                      np.float32)
        kernels.conv2d(shape, kernels.float_params(act_range, biases[k]), ik,
                       ok, x, w, out)
        x_k = np.ascontiguousarray(x[..., :ik])
        ref = som.run_reference(
            som.conv2d(np.ascontiguousarray(w[:ok, :, :, :ik]),
                       biases[k, :ok].copy(), x_k.shape, strides, padding,
                       act), x_k)
        np.testing.assert_allclose(out[..., :ok], ref, rtol=1e-5, atol=1e-5)
        assert np.all(out[..., ok:] == 0.0)


# ---------------------------------------------------------------------------
# Depthwise conv 2D.

DW_CASES = [
    # (N, H, W, C, M, (kh, kw), (sh, sw), padding, act, S)
    (1, 25, 5, 16, 1, (3, 3), (1, 1), "SAME", "RELU", 4),    # DS-CNN block
    (1, 8, 9, 6, 2, (3, 3), (2, 2), "SAME", "RELU6", 3),
    (2, 7, 6, 5, 2, (3, 2), (1, 1), "VALID", "NONE", 3),
    (1, 10, 4, 9, 1, (5, 3), (2, 1), "VALID", "RELU", 4),
]


@pytest.mark.parametrize("case", DW_CASES, ids=[str(c) for c in DW_CASES])
def test_depthwise_int8_matches_reference(kernels, case):
    n, h, w_, c, m, (kh, kw), strides, padding, act, s = case
    rng = np.random.default_rng(seed_of(case))
    in_w = nested_widths(rng, s, c)
    out_w = in_w * m
    shape = kernels.make_conv_shape(n, (h, w_), c, (kh, kw), c * m, strides,
                                    padding, m)
    w = weights8(rng, (1, kh, kw, c * m))
    q = quant_setup(rng, kh * kw, c * m)
    factors = np.ones((s, c * m))
    factors[1:] = rng.uniform(0.5, 2.0, (s - 1, c * m))
    tables = Tables(kernels, in_w, out_w, c, c * m)
    assert kernels.validate_tables(tables.struct, m) == hk.OK
    fill_int8_tables(rng, tables, q, factors, np.full(s, kh * kw), False)
    act_range = kernels.activation_range_int8(act, q["output_scale"],
                                              q["output_zero_point"])
    x = int8(rng, (n, h, w_, c))
    for k in range(s):
        ik, ok = int(in_w[k]), int(out_w[k])
        active = tables.select(k)
        params = hk.QuantizedParams(-q["input_zero_point"],
                                    q["output_zero_point"], *act_range,
                                    active.output_multiplier,
                                    active.output_shift, active.bias)
        out = np.full((n, shape.out_height, shape.out_width, c * m), 55,
                      np.int8)
        kernels.depthwise_conv2d(shape, params, ik, x, w, out)
        x_k = np.ascontiguousarray(x[..., :ik])
        model = som.depthwise_conv2d(
            np.ascontiguousarray(w[..., :ok]), tables.bias[k, :ok].copy(),
            x_k.shape, m, strides, padding, act,
            ref_quant(q, factors, k, ok, False))
        ref = som.run_reference(model, x_k)
        check_int8_output(out, ref, ok, q["output_zero_point"],
                          f"subnetwork {k} ({ik}, {ok})")


@pytest.mark.parametrize("case", DW_CASES[:3], ids=[str(c) for c in DW_CASES[:3]])
def test_depthwise_float_matches_reference(kernels, case):
    n, h, w_, c, m, (kh, kw), strides, padding, act, s = case
    rng = np.random.default_rng(seed_of(case) + 1)
    in_w = nested_widths(rng, s, c)
    shape = kernels.make_conv_shape(n, (h, w_), c, (kh, kw), c * m, strides,
                                    padding, m)
    w = (rng.standard_normal((1, kh, kw, c * m)) / np.sqrt(kh * kw)).astype(
        np.float32)
    x = rng.uniform(-1, 1, (n, h, w_, c)).astype(np.float32)
    biases = rng.uniform(-0.5, 0.5, (s, c * m)).astype(np.float32)
    act_range = kernels.activation_range_float(act)
    for k in range(s):
        ik = int(in_w[k])
        ok = ik * m
        out = np.full((n, shape.out_height, shape.out_width, c * m), 7.0,
                      np.float32)
        kernels.depthwise_conv2d(
            shape, kernels.float_params(act_range, biases[k]), ik, x, w, out)
        x_k = np.ascontiguousarray(x[..., :ik])
        ref = som.run_reference(
            som.depthwise_conv2d(np.ascontiguousarray(w[..., :ok]),
                                 biases[k, :ok].copy(), x_k.shape, m, strides,
                                 padding, act), x_k)
        np.testing.assert_allclose(out[..., :ok], ref, rtol=1e-5, atol=1e-5)
        assert np.all(out[..., ok:] == 0.0)


# ---------------------------------------------------------------------------
# Random sizes: many small layers of every kind, all subnetworks.

@pytest.mark.parametrize("seed", range(6))
def test_random_layers_int8_match_reference(kernels, seed):
    rng = np.random.default_rng(1000 + seed)
    for _ in range(3):
        kind = rng.choice(["fc", "conv", "dw"])
        act = str(rng.choice(ACTIVATIONS))
        s = int(rng.integers(1, 5))
        if kind == "fc":
            p, c, o = (int(v) for v in rng.integers(1, 20, 3))
            case = (int(rng.integers(1, 3)), p, c, o, s, act,
                    bool(rng.integers(2)), bool(rng.integers(2)))
            test_fully_connected_int8_matches_reference(kernels, case)
        else:
            h, w_ = (int(v) for v in rng.integers(3, 12, 2))
            kh, kw = int(rng.integers(1, min(h, 5) + 1)), int(
                rng.integers(1, min(w_, 5) + 1))
            strides = tuple(int(v) for v in rng.integers(1, 3, 2))
            padding = str(rng.choice(["SAME", "VALID"]))
            c = int(rng.integers(1, 12))
            if kind == "conv":
                case = (1, h, w_, c, int(rng.integers(1, 12)), (kh, kw),
                        strides, padding, act, s)
                test_conv2d_int8_matches_reference(kernels, case)
            else:
                case = (1, h, w_, c, int(rng.integers(1, 3)), (kh, kw),
                        strides, padding, act, s)
                test_depthwise_int8_matches_reference(kernels, case)
