"""Fixtures of the native kernel tests: one build of the portable kernels per
test session (in a temporary directory), shared by all tests."""

import os

import pytest

import hads_kernels_ctypes as hk


@pytest.fixture(scope="session")
def kernels(tmp_path_factory):
    """The portable HADS kernels built with -O2 and loaded through ctypes.

    ``HADS_KERNELS_LIB`` names an already built library instead (the
    sanitizer test runs the checks against its instrumented build that way).
    """
    prebuilt = os.environ.get("HADS_KERNELS_LIB")
    if prebuilt:
        return hk.Kernels(prebuilt)
    if hk.compiler() is None:
        pytest.skip("no C++ compiler (set CXX or install g++)")
    out = tmp_path_factory.mktemp("hads_kernels")
    return hk.Kernels(hk.build(out))
