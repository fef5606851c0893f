"""A deterministic set of kernel runs that needs only numpy and ctypes.

Used to compare two builds of the kernels (the sanitizer build against the
plain one, which the TFLite tests pin down bit for bit) in a process that
imports neither TensorFlow nor TFLite: those do not load under an
AddressSanitizer preload. Can be run as a script:

    python kernel_cases.py LIB OUT.npz

writes every output array of every case into OUT.npz.
"""

import sys

import numpy as np

import hads_kernels_ctypes as hk


def _tables_for(rng, s, full_out):
    mult = rng.integers(1 << 30, (1 << 31) - 1, (s, full_out)).astype(np.int32)
    shift = rng.integers(-12, -5, (s, full_out)).astype(np.int32)
    bias = rng.integers(-3000, 3000, (s, full_out)).astype(np.int32)
    return mult, shift, bias


def _widths(s, full):
    w = [max(1, (full * (s - k)) // s) for k in range(s)]
    return np.asarray(w, np.int32)


def _exact(dtype, shape, rng):
    """A fresh, exactly sized buffer (so ASan sees every overrun)."""
    if dtype == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.uniform(-1, 1, shape).astype(np.float32)


def run_all(kernels):
    """Runs every case; returns {name: output array}."""
    rng = np.random.default_rng(7)
    results = {}
    # Fully connected, with in_spatial and with/without bias.
    for (b, p, c, o, s) in [(1, 1, 13, 7, 3), (2, 4, 5, 6, 4), (1, 3, 1, 1, 1)]:
        in_w, out_w = _widths(s, c), _widths(s, o)
        mult, shift, bias = _tables_for(rng, s, o)
        shape = hk.FullyConnectedShape(b, p, c, o)
        for dtype in (np.int8, np.float32):
            x = _exact(dtype, (b, p * c), rng)
            w = _exact(dtype, (o, p * c), rng)
            fbias = rng.uniform(-1, 1, o).astype(np.float32)
            for k in range(s):
                for with_bias in (True, False):
                    out = np.empty((b, o), dtype)
                    if dtype == np.int8:
                        params = kernels.quantized_params(
                            3, -2, (-128, 127), mult[k], shift[k],
                            bias[k] if with_bias else None)
                    else:
                        params = kernels.float_params(
                            (-2.0, 2.0), fbias if with_bias else None)
                    kernels.fully_connected(shape, params, int(in_w[k]),
                                            int(out_w[k]), x, w, out)
                    results[f"fc{b}{p}{c}{o}_{dtype.__name__}_{k}_{with_bias}"] = out
    # Conv 2D and depthwise: padding at every border, strides 1 and 2.
    for (h, w_, c, o, kh, kw, st, pad, m, s) in [
            (9, 6, 3, 5, 4, 3, (2, 1), "SAME", 2, 3),
            (7, 7, 4, 3, 3, 3, (1, 2), "VALID", 1, 2),
            (5, 4, 2, 4, 5, 4, (2, 2), "SAME", 1, 2)]:
        in_w = _widths(s, c)
        conv_shape = kernels.make_conv_shape(1, (h, w_), c, (kh, kw), o, st,
                                             pad)
        dw_shape = kernels.make_conv_shape(1, (h, w_), c, (kh, kw), c * m, st,
                                           pad, m)
        mult, shift, bias = _tables_for(rng, s, max(o, c * m))
        for dtype in (np.int8, np.float32):
            x = _exact(dtype, (1, h, w_, c), rng)
            wc = _exact(dtype, (o, kh, kw, c), rng)
            wd = _exact(dtype, (1, kh, kw, c * m), rng)
            fbias = rng.uniform(-1, 1, max(o, c * m)).astype(np.float32)
            for k in range(s):
                if dtype == np.int8:
                    params = kernels.quantized_params(-5, 4, (-100, 120),
                                                      mult[k], shift[k],
                                                      bias[k])
                else:
                    params = kernels.float_params((-1.5, 1.5), fbias)
                out = np.empty((1, conv_shape.out_height,
                                conv_shape.out_width, o), dtype)
                kernels.conv2d(conv_shape, params, int(in_w[k]),
                               int(_widths(s, o)[k]), x, wc, out)
                results[f"conv{h}{w_}{c}{o}_{dtype.__name__}_{k}"] = out
                out = np.empty((1, dw_shape.out_height, dw_shape.out_width,
                                c * m), dtype)
                kernels.depthwise_conv2d(dw_shape, params, int(in_w[k]), x,
                                         wd, out)
                results[f"dw{h}{w_}{c}{m}_{dtype.__name__}_{k}"] = out
    # Requantization at the edges of its range.
    edges = []
    for x in (-(1 << 31), -1, 0, 1, 12345, (1 << 31) - 1):
        for m in (0, 1, 1 << 30, (1 << 31) - 1):
            for s in (-31, -12, -1, 0, 1, 7, 30):
                edges.append(kernels.multiply_by_quantized_multiplier(x, m, s))
    results["mbqm_edges"] = np.asarray(edges, np.int64)
    return results


if __name__ == "__main__":
    lib, out_path = sys.argv[1], sys.argv[2]
    np.savez(out_path, **run_all(hk.Kernels(lib)))
