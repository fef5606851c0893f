"""The `hads` subcommands: argument parsers and what each one runs.

These modules import only the standard library at import time, so `hads
--help` and argument errors come back at once; Keras, TensorFlow and
OR-Tools are imported by the subcommand that needs them, after its
arguments have been checked. Bad input (a missing or unreadable file, a bad
flag value, an output folder that cannot be written) gives one line naming
the file or flag and exit status 2; a failure of the work itself, exit
status 1.
"""
