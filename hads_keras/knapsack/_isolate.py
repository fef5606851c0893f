"""Runs OR-Tools CP-SAT in a clean child process when TensorFlow came first.

OR-Tools and TensorFlow link different protobuf/abseil builds. When
TensorFlow is imported before OR-Tools, CP-SAT's C++ protos crash the
process (``CpSolver.Solve`` and even printing the model segfault;
google/or-tools#3230, reproduced with tensorflow-cpu 2.21 and ortools 9.15).
Importing OR-Tools first is fine, but ``import keras, hads_keras`` is the
common order. So functions decorated with :func:`isolated` run, in that
case, in a child Python process that imports only this package's
knapsack modules (never TensorFlow); arguments and results are pickled.
``HADS_CPSAT_SUBPROCESS=0/1`` forces either way.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import tempfile

# Decided when the knapsack package is imported (it imports OR-Tools).
TF_FIRST = ("tensorflow" in sys.modules
            and "ortools.sat.python.cp_model" not in sys.modules)

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = r"""
import importlib, os, pickle, sys, types
os.environ["HADS_CPSAT_SUBPROCESS"] = "0"
pkg = types.ModuleType("hads_keras")   # skip hads_keras/__init__ (Keras)
pkg.__path__ = [sys.argv[1]]
sys.modules["hads_keras"] = pkg
with open(sys.argv[2], "rb") as f:
    mod, name, args, kwargs = pickle.load(f)
try:
    out = (True, getattr(importlib.import_module(mod), name)(*args, **kwargs))
except Exception as e:  # handed back and re-raised in the parent
    out = (False, e)
with open(sys.argv[3], "wb") as f:
    pickle.dump(out, f)
"""


def use_subprocess() -> bool:
    env = os.environ.get("HADS_CPSAT_SUBPROCESS")
    return TF_FIRST if env is None else env == "1"


def isolated(fn):
    """Decorator: run ``fn`` in a TensorFlow-free child process if needed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not use_subprocess():
            return fn(*args, **kwargs)
        with tempfile.TemporaryDirectory(prefix="hads_cpsat_") as d:
            src, dst = os.path.join(d, "in.pkl"), os.path.join(d, "out.pkl")
            with open(src, "wb") as f:
                pickle.dump((fn.__module__, fn.__name__, args, kwargs), f)
            proc = subprocess.run([sys.executable, "-c", _CHILD, _PKG_DIR, src, dst],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
            if proc.returncode != 0 or not os.path.exists(dst):
                raise RuntimeError(
                    f"{fn.__name__}: the CP-SAT child process failed (exit "
                    f"{proc.returncode}):\n{proc.stderr[-3000:]}")
            with open(dst, "rb") as f:
                ok, val = pickle.load(f)
        if not ok:
            raise val
        return val

    return wrapper
