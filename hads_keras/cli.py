"""The `hads` command: demo, solve, export, report.

Each subcommand lives in the module that does the work and registers itself
here through an `add_parser(subparsers)` function, so this file stays a
table of contents.
"""

import argparse
import importlib
import sys

# (subcommand, module that provides add_parser(subparsers))
_COMMANDS = (
    ("demo", "hads_keras.demo"),
    ("solve", "hads_keras.solve"),
    ("export", "hads_keras.export.command"),
    ("report", "hads_keras.report"),
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hads",
        description="Hardware-Aware Deep Subnetworks for Keras: train one "
                    "network, run nested subnetworks of it.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in _COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # not part of this build yet
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
