"""The TFLite Micro glue (tflm_ops/hads_ops.cc) in the real MicroInterpreter.

Skipped unless ``HADS_TFLM_DIR`` names a TFLite Micro tree with its library
built (see tests/native/README.md; the runner and its build come from
test_tflm_interpreter.py). Models hold one HADS operator, written by hand
with single_op_model.hads_operator following docs/nested_tflite_format.md:

* for every subnetwork of a random HADS_FULLY_CONNECTED (with in_spatial),
  HADS_CONV_2D and HADS_DEPTHWISE_CONV_2D (M = 2), the interpreter's output
  equals TFLite's reference kernels on the physically sliced builtin model
  (conv, depthwise; fully connected: TFLite's integer formula, see
  int8_reference.py), and the inactive channels hold the output zero point;
* custom options with a missing field, inconsistent tables, unsupported
  values or a corrupt buffer make AllocateTensors (Prepare) fail with a
  message naming the field; a wrong subnetwork type too;
* randomly corrupted options never crash the runner built with ASan/UBSan.
"""

import subprocess
import zlib

import numpy as np
import pytest

import single_op_model as som
from int8_reference import fc_formula
import test_tflm_interpreter as tt
from hads_keras.export import quantization as qz

S = 3


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return tt.compile_runner(tmp_path_factory.mktemp("hads_ops_runner"))


class Case:
    """One random HADS operator, its options and its per-k references."""

    def __init__(self, kind, seed):
        rng = np.random.default_rng(seed)
        self.kind = kind
        self.rng = rng
        if kind == "fc":
            self.p, self.c, self.o = 3, 8, 10
            self.in_w = np.array([8, 6, 3])
            self.out_w = np.array([10, 7, 4])
            self.x_shape = (1, self.p * self.c)
            self.w = rng.integers(-127, 128, (self.o, self.p * self.c)).astype(
                np.int8)
            fan_in, self.out_shape, dim = self.p * self.c, (1, self.o), 0
        elif kind == "conv":
            self.c, self.o = 5, 6
            self.in_w = np.array([5, 4, 2])
            self.out_w = np.array([6, 4, 3])
            self.x_shape = (1, 9, 7, self.c)
            self.w = rng.integers(-127, 128, (self.o, 4, 3, self.c)).astype(
                np.int8)
            fan_in, self.out_shape, dim = 4 * 3 * self.c, (1, 6, 5, self.o), 0
        else:  # depthwise, M = 2
            self.c, self.m = 4, 2
            self.o = self.c * self.m
            self.in_w = np.array([4, 3, 1])
            self.out_w = self.in_w * self.m
            self.x_shape = (1, 7, 6, self.c)
            self.w = rng.integers(-127, 128, (1, 3, 3, self.o)).astype(np.int8)
            fan_in, self.out_shape, dim = 9, (1, 7, 6, self.o), 3
        self.dim = dim
        scale = np.float32(0.02)
        w_scale = rng.uniform(0.004, 0.02, self.o).astype(np.float32)
        self.q = dict(input_scale=scale, input_zero_point=7,
                      weight_scale=w_scale,
                      output_scale=np.float32(scale * w_scale.mean()
                                              * np.sqrt(fan_in) * 74 * 73 / 50),
                      output_zero_point=-9)
        # Per-subnetwork effective weight scales (BN factors) and biases.
        self.scales = np.stack([w_scale] + [
            (w_scale * rng.uniform(0.6, 1.6, self.o)).astype(np.float32)
            for _ in range(S - 1)])
        self.mult = np.zeros((S, self.o), np.int64)
        self.shift = np.zeros((S, self.o), np.int64)
        for k in range(S):
            self.mult[k], self.shift[k] = qz.per_channel_multipliers(
                scale, self.scales[k], self.q["output_scale"])
        self.bias = rng.integers(-4000, 4000, (S, self.o))
        self.entries = {
            "version": 1, "num_subnetworks": S,
            "in_channels": list(self.in_w), "out_channels": list(self.out_w),
            "fused_activation_function": 1,  # RELU
            "output_multiplier": list(self.mult.reshape(-1)),
            "output_shift": list(self.shift.reshape(-1)),
            "bias": list(self.bias.reshape(-1)),
        }
        if kind == "fc":
            self.entries.update(in_spatial=self.p, keep_num_dims=False)
        else:
            self.entries.update(padding=0 if kind == "dw" else 1, stride_w=1,
                                stride_h=1, dilation_w_factor=1,
                                dilation_h_factor=1)
            if kind == "dw":
                self.entries["depth_multiplier"] = self.m

    def model(self, entries=None, raw_options=None, subnetwork_type=np.int32):
        code = {"fc": "HADS_FULLY_CONNECTED", "conv": "HADS_CONV_2D",
                "dw": "HADS_DEPTHWISE_CONV_2D"}[self.kind]
        options = (raw_options if raw_options is not None
                   else tt.narrow_flexbuffer_map(entries or self.entries))
        return som.hads_operator(code, options, self.w, self.bias[0].astype(
            np.int32), self.x_shape, self.out_shape, self.q, self.dim,
            subnetwork_type)

    def reference(self, k, x):
        """TFLite reference kernels on subnetwork k, physically sliced."""
        ik, ok = int(self.in_w[k]), int(self.out_w[k])
        q = dict(self.q, weight_scale=self.scales[k][:ok])
        b = self.bias[k][:ok].astype(np.int32)
        if self.kind == "fc":
            # TFLite Micro's (double) rounding; ai_edge_litert's fully
            # connected rounds once (see int8_reference.py).
            w = self.w.reshape(self.o, self.p, self.c)[:ok, :, :ik]
            xk = x.reshape(1, self.p, self.c)[:, :, :ik].reshape(1, -1)
            act = (max(-128, self.q["output_zero_point"]), 127)  # RELU
            return fc_formula(xk, w.reshape(ok, -1), b, self.q,
                              self.mult[k, :ok], self.shift[k, :ok], act,
                              single=False), ok
        elif self.kind == "conv":
            xk = x[..., :ik]
            model = som.conv2d(np.ascontiguousarray(self.w[:ok, :, :, :ik]), b,
                               xk.shape, (1, 1), "VALID", "RELU", q)
        else:
            xk = x[..., :ik]
            model = som.depthwise_conv2d(np.ascontiguousarray(
                self.w[..., :ok]), b, xk.shape, self.m, (1, 1), "SAME",
                "RELU", q)
        return som.run_reference(model, np.ascontiguousarray(xk)), ok


def _run(runner, model, x, work, k=0):
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.tflite").write_bytes(model)
    (work / "input.bin").write_bytes(np.ascontiguousarray(x, np.int8).tobytes())
    return subprocess.run(
        [str(runner), str(work / "model.tflite"), str(work / "input.bin"),
         str(work / "out"), str(k)], capture_output=True, text=True,
        timeout=60)


@pytest.mark.parametrize("kind", ["fc", "conv", "dw"])
def test_every_subnetwork_matches_reference_in_tflm(runner, kind, tmp_path):
    case = Case(kind, zlib.crc32(kind.encode()))
    samples = case.rng.integers(-128, 128, (4,) + case.x_shape).astype(
        np.int8)
    model = case.model()
    for k in range(S):
        result = _run(runner, model, samples, tmp_path / f"k{k}", k)
        assert result.returncode == 0, result.stderr
        outs = np.fromfile(tmp_path / f"k{k}" / f"out_k{k}.bin", np.int8)
        outs = outs.reshape((len(samples),) + case.out_shape)
        refs = []
        for x, out in zip(samples, outs):
            ref, ok = case.reference(k, x)
            np.testing.assert_array_equal(out[..., :ok], ref.reshape(
                out[..., :ok].shape), err_msg=f"{kind} subnetwork {k}")
            assert np.all(out[..., ok:] == case.q["output_zero_point"])
            refs.append(ref.reshape(-1))
        assert len(np.unique(np.concatenate(refs))) > 5


def _without(entries, key):
    return {k: v for k, v in entries.items() if k != key}


BAD_OPTIONS = {
    "missing bias": (lambda e: _without(e, "bias"), "'bias' is missing"),
    "missing in_spatial": (lambda e: _without(e, "in_spatial"),
                           "'in_spatial' is missing"),
    "version 2": (lambda e: dict(e, version=2), "'version' is not supported"),
    "tanh": (lambda e: dict(e, fused_activation_function=4),
             "'fused_activation_function' is not supported"),
    "short out_channels": (lambda e: dict(e, out_channels=[10, 7]),
                           "tables must have"),
    "short shifts": (lambda e: dict(e, output_shift=e["output_shift"][:-1]),
                     "tables must have"),
    "too wide": (lambda e: dict(e, in_channels=[9, 6, 3]),
                 "subnetwork 0 has in_channels 9 / out_channels 10, outside "
                 "1..8 / 1..10"),
    "not nested": (lambda e: dict(e, out_channels=[10, 4, 7]),
                   "subnetwork 2 is wider than subnetwork 1"),
    "shift 40": (lambda e: dict(e, output_shift=[40] * len(e["output_shift"])),
                 "quantized shift"),
    "in_spatial mismatch": (lambda e: dict(e, in_spatial=5), "in_spatial=5"),
    "string table": (lambda e: dict(e, bias="1,2,3"),
                     "'bias' is not a vector of integers"),
    "num_subnetworks 0": (lambda e: dict(e, num_subnetworks=0),
                          "'num_subnetworks' is out of range"),
}


@pytest.mark.parametrize("name", sorted(BAD_OPTIONS))
def test_bad_options_fail_prepare_with_a_message(runner, name, tmp_path):
    case = Case("fc", 1)
    mutate, message = BAD_OPTIONS[name]
    x = np.zeros(case.x_shape, np.int8)
    result = _run(runner, case.model(mutate(case.entries)), x, tmp_path)
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "AllocateTensors failed" in log
    assert "HADS_FULLY_CONNECTED" in log and message in log, log


def test_conv_options_missing_stride_and_dilation_2(runner, tmp_path):
    case = Case("conv", 2)
    x = np.zeros(case.x_shape, np.int8)
    result = _run(runner, case.model(_without(case.entries, "stride_w")), x,
                  tmp_path / "a")
    assert result.returncode != 0
    assert "HADS_CONV_2D: custom options: 'stride_w' is missing" in (
        result.stdout + result.stderr)
    result = _run(runner, case.model(dict(case.entries, dilation_w_factor=2)),
                  x, tmp_path / "b")
    assert result.returncode != 0
    assert "must be 1" in result.stdout + result.stderr


def test_depthwise_options_inconsistent_multiplier(runner, tmp_path):
    case = Case("dw", 3)
    x = np.zeros(case.x_shape, np.int8)
    result = _run(runner, case.model(dict(case.entries, depth_multiplier=3)),
                  x, tmp_path)
    assert result.returncode != 0
    assert "depth_multiplier=3" in result.stdout + result.stderr


@pytest.mark.parametrize("raw", [b"", b"\x00", b"garbage, not a flexbuffer",
                                 bytes(range(256))])
def test_corrupt_options_buffer_fails_prepare(runner, raw, tmp_path):
    case = Case("fc", 4)
    x = np.zeros(case.x_shape, np.int8)
    result = _run(runner, case.model(raw_options=raw), x, tmp_path)
    assert result.returncode != 0
    assert "HADS_FULLY_CONNECTED: custom options" in (result.stdout +
                                                       result.stderr)


def test_float_subnetwork_input_is_rejected(runner, tmp_path):
    case = Case("fc", 5)
    result = _run(runner, case.model(subnetwork_type=np.float32),
                  np.zeros(case.x_shape, np.int8), tmp_path)
    assert result.returncode != 0
    assert "the subnetwork input must be one int32" in (result.stdout +
                                                        result.stderr)


@pytest.fixture(scope="module")
def sanitized_runner(tmp_path_factory):
    """The runner with tflm_ops built under ASan + UBSan (TFLite Micro's
    library itself stays uninstrumented). Same command as
    test_tflm_interpreter.compile_runner plus the sanitizer flags."""
    tree, library = tt._tflm_tree()
    out = tmp_path_factory.mktemp("hads_ops_asan") / "tflm_runner_asan"
    downloads = tree / "tensorflow/lite/micro/tools/make/downloads"
    includes = [tt.REPO_ROOT, tree, downloads, downloads / "gemmlowp",
                downloads / "flatbuffers" / "include", downloads / "kissfft",
                downloads / "ruy", library.parent.parent / "genfiles"]
    command = (["g++", "-std=c++17", "-O1", "-g", "-fno-rtti",
                "-fno-exceptions", "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"] +
               tt.TFLM_DEFINES +
               [f"-I{p}" for p in includes] + [str(tt.RUNNER_SOURCE)] +
               [str(p) for p in sorted(tt.TFLM_OPS_DIR.glob("*.cc"))] +
               [str(library), "-o", str(out)])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"no sanitizer build here: {result.stderr[-500:]}")
    return out


def test_randomly_corrupted_options_never_crash(sanitized_runner, tmp_path):
    """60 seeded byte-level corruptions of the options, run by the ASan +
    UBSan build: Prepare fails with a message or the model runs; never a
    sanitizer report or a signal (no out-of-bounds read in the parser)."""
    runner = sanitized_runner
    case = Case("fc", 6)
    good = tt.narrow_flexbuffer_map(case.entries)
    x = np.zeros(case.x_shape, np.int8)
    rng = np.random.default_rng(7)
    outcomes = set()
    for i in range(60):
        raw = bytearray(good)
        if i % 3 == 0:
            raw = raw[:int(rng.integers(0, len(raw)))]
        else:
            for _ in range(int(rng.integers(1, 6))):
                raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        result = _run(runner, case.model(raw_options=bytes(raw)), x,
                      tmp_path / str(i))
        assert result.returncode in (0, 1), (i, result.returncode,
                                             result.stderr[-2000:])
        assert "Sanitizer" not in result.stderr, result.stderr[-2000:]
        outcomes.add(result.returncode)
    assert 1 in outcomes  # the corruptions were noticed
