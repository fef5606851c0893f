"""Checks shared by the `hads` subcommands: one line and an exit status,
never a traceback, for input a user can fix."""

import os
import pathlib
import zipfile

# Exit statuses: bad input (a file, a flag) / the work itself failed.
BAD_INPUT = 2
FAILED = 1


class CommandError(Exception):
    """A message for the user and the exit status to end with."""

    def __init__(self, message, status=BAD_INPUT):
        super().__init__(message)
        self.status = status


def existing_file(path, what):
    """`path` as a Path, or CommandError naming `what` (a flag or argument)."""
    file = pathlib.Path(path)
    if not file.exists():
        raise CommandError(f"{what} file '{path}' does not exist.")
    if not file.is_file():
        raise CommandError(f"{what} '{path}' is not a file.")
    return file


def writable_file(path, what):
    """Check before any long work that `path` can be written: its folder
    exists (or can be created) and is writable, and it is not a folder."""
    file = pathlib.Path(path)
    if file.is_dir():
        raise CommandError(f"{what} '{path}' is a folder; give a file name.")
    folder = file.parent if str(file.parent) else pathlib.Path(".")
    _check_folder(folder, what, path)
    return file


def writable_folder(path, what):
    """Check that `path` is, or can be created as, a writable folder."""
    folder = pathlib.Path(path)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{what} '{path}' exists and is not a folder.")
    _check_folder(folder, what, path)
    return folder


def _check_folder(folder, what, path):
    probe = folder
    while not probe.exists():  # the nearest existing ancestor must be writable
        probe = probe.parent
    if not probe.is_dir():
        raise CommandError(f"{what} '{path}': '{probe}' is not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CommandError(f"{what} '{path}': folder '{probe}' is not writable.")


def load_keras_model(path, what="model"):
    """A saved `.keras` model, or CommandError saying why not (a file that
    is missing, not a .keras zip, or a model Keras cannot rebuild)."""
    file = existing_file(path, what)
    if not zipfile.is_zipfile(file):
        raise CommandError(
            f"{what} '{path}' is not a readable .keras file (not a zip archive); "
            "save the model with model.save('name.keras').")
    import keras

    import hads_keras  # noqa: F401  (registers the HADS classes for loading)
    hads_keras.load_api()
    try:
        return keras.saving.load_model(file)
    except Exception as error:  # Keras raises many types for a broken archive
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CommandError(
            f"{what} '{path}' is not a readable .keras file "
            f"({type(error).__name__}: {first[:300]}).") from None
