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

A call that passes ``time_limit`` gets a hard deadline in the child case:
if no answer comes within ``time_limit`` plus a margin (the child's start
and the pickling), the child is stopped and a ``TimeoutError`` raised, so
no model, however built, can hold the caller past its limit.
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time

# Decided when the knapsack package is imported (it imports OR-Tools).
TF_FIRST = ("tensorflow" in sys.modules
            and "ortools.sat.python.cp_model" not in sys.modules)

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child serves requests until its stdin closes: one start-up (about a
# second: Python, NumPy, OR-Tools) per session, not per solve. Requests and
# answers are length-prefixed pickles on a private copy of its stdout; its
# fd 1 is pointed at stderr so solver logs cannot corrupt the channel.
_CHILD = r"""
import importlib, os, pickle, struct, sys, types
os.environ["HADS_CPSAT_SUBPROCESS"] = "0"
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
pkg = types.ModuleType("hads_keras")   # skip hads_keras/__init__ (Keras)
pkg.__path__ = [sys.argv[1]]
sys.modules["hads_keras"] = pkg
inp = sys.stdin.buffer
while True:
    head = inp.read(8)
    if len(head) < 8:
        break
    mod, name, args, kwargs = pickle.loads(inp.read(struct.unpack("<Q", head)[0]))
    try:
        res = (True, getattr(importlib.import_module(mod), name)(*args, **kwargs))
    except Exception as e:  # handed back and re-raised in the parent
        res = (False, e)
    data = pickle.dumps(res)
    out.write(struct.pack("<Q", len(data)) + data)
    out.flush()
"""

_worker = None
_lock = threading.Lock()
# Seconds allowed beyond ``time_limit``: a fresh child imports NumPy and
# OR-Tools (a few seconds on a loaded machine) before it can start.
DEADLINE_MARGIN = 5.0
START_MARGIN = 30.0


def use_subprocess() -> bool:
    env = os.environ.get("HADS_CPSAT_SUBPROCESS")
    return TF_FIRST if env is None else env == "1"


def _read_exactly(stream, n, deadline):
    """n bytes from the child's stdout, or None if the deadline passes first
    (read from the file descriptor: the buffered reader is never used)."""
    fd = stream.fileno()
    buf = b""
    while len(buf) < n:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return None
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _call(fn, args, kwargs, time_limit=None):
    global _worker
    with _lock:
        margin = DEADLINE_MARGIN
        if _worker is None or _worker.poll() is not None:
            _worker = subprocess.Popen([sys.executable, "-c", _CHILD, _PKG_DIR],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            margin += START_MARGIN
        deadline = (None if time_limit is None
                    else time.monotonic() + float(time_limit) + margin)
        data = pickle.dumps((fn.__module__, fn.__name__, args, kwargs))
        try:
            _worker.stdin.write(struct.pack("<Q", len(data)) + data)
            _worker.stdin.flush()
            head = _read_exactly(_worker.stdout, 8, deadline)
            if head is None:
                _worker.kill()
                _worker.wait()
                _worker = None
                raise TimeoutError(
                    f"{fn.__name__}: no answer within time_limit={time_limit} s "
                    f"(+{margin:.0f} s margin); the CP-SAT child process was "
                    "stopped. Raise time_limit, or use a faster solver.")
            ok, val = pickle.loads(
                _read_exactly(_worker.stdout, struct.unpack("<Q", head)[0], None))
        except (EOFError, BrokenPipeError) as e:
            code = _worker.wait()
            _worker = None
            raise RuntimeError(f"{fn.__name__}: the CP-SAT child process died "
                               f"(exit {code}); see its messages above.") from e
    if not ok:
        raise val
    return val


@atexit.register
def _close():
    if _worker is not None and _worker.poll() is None:
        _worker.stdin.close()
        _worker.wait(timeout=10)


def isolated(fn):
    """Decorator: run ``fn`` in a TensorFlow-free child process if needed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not use_subprocess():
            return fn(*args, **kwargs)
        return _call(fn, args, kwargs, kwargs.get("time_limit"))

    return wrapper
