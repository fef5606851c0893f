"""Builds of the portable kernels with warnings as errors and with the
address + undefined-behaviour sanitizers."""

import os
import subprocess
import sys

import numpy as np
import pytest

import hads_kernels_ctypes as hk
import kernel_cases

pytestmark = pytest.mark.skipif(hk.compiler() is None,
                                reason="no C++ compiler (set CXX)")


def test_builds_clean_with_all_warnings_as_errors(tmp_path):
    try:
        hk.build(tmp_path, hk.WARNING_FLAGS, name="libwarn.so")
    except subprocess.CalledProcessError as err:  # show the warnings
        pytest.fail(f"warnings in the portable kernels:\n{err.stderr}")


def _asan_runtime():
    out = subprocess.run([hk.compiler(), "-print-file-name=libasan.so"],
                         capture_output=True, text=True, check=False)
    path = out.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_sanitizer_build_runs_clean_and_matches_plain_build(tmp_path, kernels):
    """Every case of kernel_cases under ASan + UBSan (aborting on the first
    report), in a subprocess without TensorFlow; outputs equal the plain
    build's, which the TFLite tests pin down."""
    asan = _asan_runtime()
    if asan is None:
        pytest.skip("the compiler has no AddressSanitizer runtime")
    try:
        lib = hk.build(tmp_path, hk.SANITIZER_FLAGS, name="libsan.so")
    except subprocess.CalledProcessError as err:
        pytest.skip(f"sanitizer build not supported here: {err.stderr[:300]}")
    out = tmp_path / "san.npz"
    env = dict(os.environ, LD_PRELOAD=asan,
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    proc = subprocess.run(
        [sys.executable, str(hk.REPO / "tests/native/kernel_cases.py"),
         str(lib), str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "runtime error" not in proc.stderr, proc.stderr[-4000:]
    sanitized = np.load(out)
    plain = kernel_cases.run_all(kernels)
    assert sorted(sanitized.files) == sorted(plain)
    for name, value in plain.items():
        np.testing.assert_array_equal(sanitized[name], value, err_msg=name)
