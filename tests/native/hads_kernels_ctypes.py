"""Builds the portable HADS kernels with the system C++ compiler and wraps
them with ctypes, so that pytest can call them on numpy arrays.

Nothing here needs TFLite Micro or the network: ``tflm_ops/hads_kernels.cc``
plus the C shim ``hads_kernels_capi.cc`` are compiled into one shared
library. The wrappers keep the C++ calling convention visible (full-size
shapes, active widths) and raise ``KernelError`` on a non-ok status.
"""

import ctypes
import os
import pathlib
import shutil
import subprocess

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
KERNEL_DIR = REPO / "tflm_ops"
SOURCES = [KERNEL_DIR / "hads_kernels.cc", KERNEL_DIR / "hads_kernels_dsp.cc",
           pathlib.Path(__file__).with_name("hads_kernels_capi.cc")]

BASE_FLAGS = ["-std=c++17", "-O2", "-fPIC", "-shared", "-fno-exceptions",
              "-fno-rtti"]
WARNING_FLAGS = ["-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion"]
SANITIZER_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer",
                   "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=all"]

PADDING = {"SAME": 0, "VALID": 1}
ACTIVATION = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}

# Status codes of hads_kernels.h.
OK = 0
ERR_NULL_POINTER = 1
ERR_BAD_SHAPE = 2
ERR_BAD_ACTIVE_WIDTH = 3
ERR_BAD_GEOMETRY = 4
ERR_BAD_ACTIVATION_RANGE = 5
ERR_BAD_SHIFT = 6
ERR_BAD_SUBNETWORK = 7
ERR_BAD_TABLE = 8


def compiler():
    """The C++ compiler: $CXX, else g++."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        return None
    return cxx


def build(out_dir, extra_flags=(), name="libhads_kernels.so"):
    """Compiles the kernels + C shim into ``out_dir/name``; returns its path.

    Raises ``subprocess.CalledProcessError`` with the compiler output on
    failure (so a warning under -Werror shows in the test report).
    """
    out = pathlib.Path(out_dir) / name
    flags = list(BASE_FLAGS) + list(extra_flags)
    cmd = [compiler()] + flags + ["-I", str(KERNEL_DIR)] + [
        str(s) for s in SOURCES] + ["-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


# ---------------------------------------------------------------------------
# ctypes mirrors of the structs in hads_kernels.h (all standard layout).

_i32p = ctypes.POINTER(ctypes.c_int32)
_f32p = ctypes.POINTER(ctypes.c_float)
_i8p = ctypes.POINTER(ctypes.c_int8)


class FullyConnectedShape(ctypes.Structure):
    _fields_ = [("batches", ctypes.c_int), ("in_spatial", ctypes.c_int),
                ("in_channels", ctypes.c_int), ("out_channels", ctypes.c_int)]


class ConvShape(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in (
        "batches", "in_height", "in_width", "in_channels", "filter_height",
        "filter_width", "out_height", "out_width", "out_channels",
        "stride_height", "stride_width", "pad_height", "pad_width",
        "depth_multiplier")]


class QuantizedParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32),
                ("output_offset", ctypes.c_int32),
                ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32),
                ("output_multiplier", _i32p), ("output_shift", _i32p),
                ("bias", _i32p)]


class FloatParams(ctypes.Structure):
    _fields_ = [("act_min", ctypes.c_float), ("act_max", ctypes.c_float),
                ("bias", _f32p)]


class SubnetworkTables(ctypes.Structure):
    _fields_ = [("num_subnetworks", ctypes.c_int), ("full_in", ctypes.c_int),
                ("full_out", ctypes.c_int), ("in_channels", _i32p),
                ("out_channels", _i32p), ("output_multiplier", _i32p),
                ("output_shift", _i32p), ("bias", _i32p)]


class ActiveSubnetwork(ctypes.Structure):
    _fields_ = [("in_channels", ctypes.c_int), ("out_channels", ctypes.c_int),
                ("output_multiplier", _i32p), ("output_shift", _i32p),
                ("bias", _i32p)]


class InputSegments(ctypes.Structure):
    _fields_ = [("count", ctypes.c_int), ("offset", _i32p), ("active", _i32p)]


class SegmentTables(ctypes.Structure):
    _fields_ = [("count", ctypes.c_int), ("offset", _i32p), ("channels", _i32p)]


class KernelError(RuntimeError):
    """A kernel returned a status other than kOk."""

    def __init__(self, status, message):
        super().__init__(f"status {status}: {message}")
        self.status = status


def _ptr(array, ctype):
    """Pointer to a C-contiguous numpy array (None stays a null pointer)."""
    if array is None:
        return None
    assert array.flags["C_CONTIGUOUS"], "arrays passed to C must be contiguous"
    return array.ctypes.data_as(ctypes.POINTER(ctype))


class Kernels:
    """The loaded library with numpy-friendly wrappers."""

    def __init__(self, path):
        self.path = str(path)
        self.lib = ctypes.CDLL(self.path)
        lib = self.lib
        vp = ctypes.c_void_p
        for name in ("hads_fc_int8", "hads_fc_float", "hads_conv_int8",
                     "hads_conv_float"):
            getattr(lib, name).argtypes = [vp, vp, ctypes.c_int, ctypes.c_int,
                                           vp, vp, vp]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("hads_dw_int8", "hads_dw_float"):
            getattr(lib, name).argtypes = [vp, vp, ctypes.c_int, vp, vp, vp]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("hads_fc_int8_segments", "hads_conv_int8_segments"):
            getattr(lib, name).argtypes = [vp, vp, vp, ctypes.c_int, vp, vp, vp]
            getattr(lib, name).restype = ctypes.c_int
        lib.hads_dw_int8_segments.argtypes = [vp, vp, vp, vp, vp, vp]
        lib.hads_dw_int8_segments.restype = ctypes.c_int
        lib.hads_validate_segment_tables.argtypes = [vp, vp]
        lib.hads_validate_segment_tables.restype = ctypes.c_int
        lib.hads_make_conv_shape.argtypes = [ctypes.c_int] * 11 + [vp]
        lib.hads_make_conv_shape.restype = ctypes.c_int
        lib.hads_multiply_by_quantized_multiplier.argtypes = [
            ctypes.c_int32, ctypes.c_int32, ctypes.c_int]
        lib.hads_multiply_by_quantized_multiplier.restype = ctypes.c_int32
        lib.hads_activation_range_int8.argtypes = [
            ctypes.c_int, ctypes.c_float, ctypes.c_int32, vp, vp]
        lib.hads_activation_range_int8.restype = ctypes.c_int
        lib.hads_activation_range_float.argtypes = [ctypes.c_int, vp, vp]
        lib.hads_activation_range_float.restype = ctypes.c_int
        lib.hads_validate_tables.argtypes = [vp, ctypes.c_int]
        lib.hads_validate_tables.restype = ctypes.c_int
        lib.hads_select_subnetwork.argtypes = [vp, ctypes.c_int32, vp]
        lib.hads_select_subnetwork.restype = ctypes.c_int
        lib.hads_status_string.argtypes = [ctypes.c_int]
        lib.hads_status_string.restype = ctypes.c_char_p

    # -- helpers -------------------------------------------------------------
    def status_string(self, status):
        return self.lib.hads_status_string(status).decode()

    def _check(self, status):
        if status != OK:
            raise KernelError(status, self.status_string(status))

    def multiply_by_quantized_multiplier(self, x, multiplier, shift):
        return self.lib.hads_multiply_by_quantized_multiplier(
            int(x), int(multiplier), int(shift))

    def activation_range_int8(self, activation, scale, zero_point):
        lo, hi = ctypes.c_int32(), ctypes.c_int32()
        self._check(self.lib.hads_activation_range_int8(
            ACTIVATION.get(activation, activation), float(scale),
            int(zero_point), ctypes.byref(lo), ctypes.byref(hi)))
        return lo.value, hi.value

    def activation_range_float(self, activation):
        lo, hi = ctypes.c_float(), ctypes.c_float()
        self._check(self.lib.hads_activation_range_float(
            ACTIVATION.get(activation, activation), ctypes.byref(lo),
            ctypes.byref(hi)))
        return lo.value, hi.value

    def make_conv_shape(self, batches, in_hw, in_channels, filter_hw,
                        out_channels, strides, padding, depth_multiplier=1):
        shape = ConvShape()
        self._check(self.lib.hads_make_conv_shape(
            batches, in_hw[0], in_hw[1], in_channels, filter_hw[0],
            filter_hw[1], out_channels, strides[0], strides[1],
            PADDING.get(padding, padding), depth_multiplier,
            ctypes.byref(shape)))
        return shape

    @staticmethod
    def quantized_params(input_zero_point, output_zero_point, act_range,
                         multiplier, shift, bias):
        """QuantizedParams over numpy int32 arrays (kept alive by caller)."""
        return QuantizedParams(
            input_offset=-int(input_zero_point),
            output_offset=int(output_zero_point), act_min=int(act_range[0]),
            act_max=int(act_range[1]),
            output_multiplier=_ptr(multiplier, ctypes.c_int32),
            output_shift=_ptr(shift, ctypes.c_int32),
            bias=_ptr(bias, ctypes.c_int32))

    @staticmethod
    def float_params(act_range, bias):
        return FloatParams(act_min=float(act_range[0]),
                           act_max=float(act_range[1]),
                           bias=_ptr(bias, ctypes.c_float))

    # -- kernels (status-returning, raw) ---------------------------------------
    def fc_status(self, shape, params, active_in, active_out, x, w, out):
        fn = (self.lib.hads_fc_int8 if out.dtype == np.int8
              else self.lib.hads_fc_float)
        ct = ctypes.c_int8 if out.dtype == np.int8 else ctypes.c_float
        return fn(ctypes.byref(shape), ctypes.byref(params), active_in,
                  active_out, _ptr(x, ct), _ptr(w, ct), _ptr(out, ct))

    def conv_status(self, shape, params, active_in, active_out, x, w, out):
        fn = (self.lib.hads_conv_int8 if out.dtype == np.int8
              else self.lib.hads_conv_float)
        ct = ctypes.c_int8 if out.dtype == np.int8 else ctypes.c_float
        return fn(ctypes.byref(shape), ctypes.byref(params), active_in,
                  active_out, _ptr(x, ct), _ptr(w, ct), _ptr(out, ct))

    def dw_status(self, shape, params, active_in, x, w, out):
        fn = (self.lib.hads_dw_int8 if out.dtype == np.int8
              else self.lib.hads_dw_float)
        ct = ctypes.c_int8 if out.dtype == np.int8 else ctypes.c_float
        return fn(ctypes.byref(shape), ctypes.byref(params), active_in,
                  _ptr(x, ct), _ptr(w, ct), _ptr(out, ct))

    def segments_status(self, kind, shape, params, offsets, active, active_out,
                        x, w, out):
        """Int8 fully connected ("fc"), conv ("conv") or depthwise ("dw",
        `active_out` unused: its output has the input's segments) on a
        concatenated input: `offsets`, `active` int32 arrays of the
        segments."""
        segments = InputSegments(count=len(offsets),
                                 offset=_ptr(offsets, ctypes.c_int32),
                                 active=_ptr(active, ctypes.c_int32))
        ct = ctypes.c_int8
        head = (ctypes.byref(shape), ctypes.byref(params), ctypes.byref(segments))
        tail = (_ptr(x, ct), _ptr(w, ct), _ptr(out, ct))
        if kind == "dw":
            return self.lib.hads_dw_int8_segments(*head, *tail)
        fn = {"fc": self.lib.hads_fc_int8_segments,
              "conv": self.lib.hads_conv_int8_segments}[kind]
        return fn(*head, active_out, *tail)

    # -- kernels (raising) -----------------------------------------------------
    def fully_connected(self, *args):
        self._check(self.fc_status(*args))

    def conv2d(self, *args):
        self._check(self.conv_status(*args))

    def depthwise_conv2d(self, *args):
        self._check(self.dw_status(*args))

    # -- tables ----------------------------------------------------------------
    @staticmethod
    def tables(in_channels, out_channels, multiplier, shift, bias, full_in,
               full_out):
        """SubnetworkTables over int32 numpy arrays (kept alive by caller)."""
        return SubnetworkTables(
            num_subnetworks=len(in_channels), full_in=full_in,
            full_out=full_out,
            in_channels=_ptr(in_channels, ctypes.c_int32),
            out_channels=_ptr(out_channels, ctypes.c_int32),
            output_multiplier=_ptr(multiplier, ctypes.c_int32),
            output_shift=_ptr(shift, ctypes.c_int32),
            bias=_ptr(bias, ctypes.c_int32))

    @staticmethod
    def segment_tables(offsets, channels):
        """SegmentTables over int32 numpy arrays (kept alive by caller)."""
        return SegmentTables(count=len(offsets),
                             offset=_ptr(offsets, ctypes.c_int32),
                             channels=_ptr(channels, ctypes.c_int32))

    def validate_segment_tables(self, tables, segments):
        return self.lib.hads_validate_segment_tables(ctypes.byref(tables),
                                                     ctypes.byref(segments))

    def validate_tables(self, tables, depth_multiplier=0):
        return self.lib.hads_validate_tables(ctypes.byref(tables),
                                             depth_multiplier)

    def select(self, tables, subnetwork):
        active = ActiveSubnetwork()
        status = self.lib.hads_select_subnetwork(ctypes.byref(tables),
                                                 subnetwork,
                                                 ctypes.byref(active))
        return status, active
