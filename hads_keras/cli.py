"""The `hads` command: demo, solve, export, report, latency.

Each subcommand registers itself here through an `add_parser(subparsers)`
function of a module that imports nothing heavy (`hads_keras.commands.*`,
`hads_keras.demo`), so this file stays a table of contents and `hads
--help` answers at once: Keras and TensorFlow load only in the subcommand
that needs them, after its arguments were parsed.

Output is what the user asked for: TensorFlow's and the TFLite converter's
C++ logging is switched off before TensorFlow loads, and whatever C++ code
still writes to the process's stderr is dropped (Python's own warnings and
errors still show). `hads --verbose ...` (or `... --verbose`) keeps it all.
Bad input ends with one line naming the file or flag, exit status 2; a
failed export or solve with exit status 1.
"""

import argparse
import contextlib
import importlib
import os
import sys

# (subcommand, module that provides add_parser(subparsers))
_COMMANDS = (
    ("demo", "hads_keras.demo"),
    ("solve", "hads_keras.commands.solve"),
    ("export", "hads_keras.commands.export"),
    ("report", "hads_keras.commands.report"),
    ("latency", "hads_keras.commands.latency_host"),
)

_VERBOSE_HELP = "show TensorFlow's and the converter's own log lines"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hads",
        description="Hardware-Aware Deep Subnetworks for Keras: train one "
                    "network, run nested subnetworks of it.")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in _COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # not part of this build yet
        sub = module.add_parser(subparsers)
        sub = sub or subparsers.choices[name]
        if not any("--verbose" in a.option_strings for a in sub._actions):
            # Also after the subcommand; SUPPRESS keeps a --verbose given before it.
            sub.add_argument("--verbose", action="store_true",
                             default=argparse.SUPPRESS, help=_VERBOSE_HELP)
    return parser


def quiet_native_logging():
    """Before TensorFlow is imported: no C++ INFO/WARNING lines, no absl
    pre-initialization notice, no oneDNN notice."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GLOG_minloglevel", "3")


@contextlib.contextmanager
def native_stderr_dropped():
    """C/C++ writes to file descriptor 2 (the converter, the TFLite
    interpreter's delegate notices) go to /dev/null; Python's sys.stderr
    keeps writing to the real stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded)
        yield
        return
    python_stderr = sys.stderr
    try:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        # Not closed: logging handlers created meanwhile may still hold it
        # (it writes to the real stderr, as they should).
        sys.stderr = python_stderr


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from hads_keras.commands._common import CommandError

    verbose = getattr(args, "verbose", False)
    if not verbose:
        quiet_native_logging()
    quiet = contextlib.nullcontext() if verbose else native_stderr_dropped()
    try:
        with quiet:
            if not verbose:
                _quiet_python_logging()
            if not args.func.__module__.startswith("hads_keras.commands."):
                # Other modules (the demo) expect what `import hads_keras`
                # gives elsewhere; hads_keras.commands import what they need.
                import hads_keras
                hads_keras.load_api()
            return args.func(args) or 0
    except CommandError as error:
        print(f"hads {args.command}: {error}", file=sys.stderr)
        return error.status


def _quiet_python_logging():
    """absl's and TensorFlow's Python loggers: errors only."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
