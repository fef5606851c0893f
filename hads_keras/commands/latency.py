"""`hads latency`: measure a latency table of a saved model.

    hads latency qemu model.keras [--points 5] [--out table.json]
        # Cortex-M4 on QEMU (instructions; needs arm-none-eabi-gcc, qemu-system-arm)
    hads latency host model.keras [--points 5] [--repeats 100]
        # this host in LiteRT (microseconds, medians; hads_keras.latency_host)
    hads latency header model.keras [--points 5] [--out hads_probe_model.h]
        # the model for arduino/examples/LatencyTable; run it on the board,
        # save what it prints as board.csv, then
    hads latency import board.csv --model model.keras --target nano33ble \\
        [--out table.json]                   # cycles

The table file format is docs/latency_tables.md.
"""

from hads_keras.commands import _common
from hads_keras.commands import latency_host


def _grid_options(parser, multiple_of=True):
    """--points and --min-width, and --multiple-of where the target takes it."""
    parser.add_argument("--points", type=_points, default=5, metavar="N|all",
                        help="widths measured per group, from --min-width to the full "
                             "width; the solvers interpolate between them (default 5). "
                             "'all': every multiple of --multiple-of, so the table is "
                             "exact at every width a plan can pick")
    parser.add_argument("--min-width", type=int, default=1, metavar="N",
                        help="narrowest width measured (default 1); a plan may not go "
                             "below it")
    if not multiple_of:
        return
    parser.add_argument("--multiple-of", type=int, default=1, metavar="N",
                        help="grid widths are multiples of N or the full width "
                             "(default 1). Use 4 here and in `hads solve "
                             "--multiple-of 4`: on the DSP kernels an unaligned "
                             "width's cost is a few %% off its neighbours', which "
                             "interpolation cannot follow")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "latency", help="measure a latency table (QEMU Cortex-M4 or a board)",
        description="Measure what each sliced layer of a model costs at a grid of "
                    "widths: on QEMU's Cortex-M4 (instructions) or, through the "
                    "Arduino example LatencyTable, on a board (cycles).")
    sub = parser.add_subparsers(dest="latency_command", metavar="WHERE", required=True)

    qemu = sub.add_parser("qemu", help="measure on QEMU's Cortex-M4 (mps2-an386)")
    qemu.add_argument("model", help="a .keras model (Keras or HADS layers)")
    _grid_options(qemu)
    qemu.add_argument("--opt", default="-Os", choices=["-Os", "-O2"],
                      help="compiler optimization (default -Os, what Arduino cores use)")
    qemu.add_argument("--out", default="latency_table.json", help="table file to write")
    qemu.set_defaults(func=run_qemu)

    host = sub.add_parser("host", help="measure on this host in LiteRT (microseconds, "
                                       "medians of repeated invokes)")
    host.add_argument("model", help="a .keras model (Keras or HADS layers)")
    _grid_options(host, multiple_of=False)
    latency_host.add_arguments(host)
    host.set_defaults(func=latency_host.run)

    header = sub.add_parser("header", help="write the probe header for the Arduino "
                                           "example LatencyTable")
    header.add_argument("model", help="a .keras model (Keras or HADS layers)")
    _grid_options(header)
    header.add_argument("--repeats", type=int, default=5, metavar="N",
                        help="timed runs per point on the board, the median is kept "
                             "(1..15, default 5)")
    header.add_argument("--out", default="hads_probe_model.h",
                        help="header to write (next to LatencyTable.ino)")
    header.set_defaults(func=run_header)

    read = sub.add_parser("import", help="read the CSV the board printed into a table")
    read.add_argument("csv", help="what LatencyTable printed on the serial monitor")
    read.add_argument("--model", required=True, help="the .keras model it was made for")
    read.add_argument("--target", required=True,
                      help="the board, e.g. nano33ble (recorded in the table)")
    read.add_argument("--out", default="latency_table.json", help="table file to write")
    read.set_defaults(func=run_import)
    return parser


def _points(text):
    """--points: an integer, or 'all' (hads_keras.latency.grid_widths)."""
    return text if text == "all" else int(text)


def _check_grid(args):
    if args.points != "all" and args.points < 2:
        raise _common.CommandError(f"--points {args.points}: give 2 or more.")
    if args.min_width < 1 or args.multiple_of < 1:
        raise _common.CommandError("--min-width and --multiple-of must be 1 or more.")


def _grid_kwargs(args):
    return {"points": args.points, "minimum": args.min_width,
            "multiple_of": args.multiple_of}


def run_qemu(args):
    _check_grid(args)
    out = _common.writable_file(args.out, "--out")
    model = _common.load_keras_model(args.model)
    from hads_keras import latency_probe

    try:
        table = latency_probe.measure_qemu(model, opt=args.opt, **_grid_kwargs(args))
    except ValueError as error:
        raise _common.CommandError(str(error)) from None
    except latency_probe.ProbeError as error:
        raise _common.CommandError(str(error), _common.FAILED) from None
    table.save(out)
    print(f"{table}: constant {table.constant:g} {table.unit}; written to {out}")
    return 0


def run_header(args):
    _check_grid(args)
    if not 1 <= args.repeats <= 15:
        raise _common.CommandError(f"--repeats {args.repeats}: give 1 to 15.")
    out = _common.writable_file(args.out, "--out")
    model = _common.load_keras_model(args.model)
    from hads_keras import latency_probe

    try:
        latency_probe.write_header(model, out, repeats=args.repeats, arduino=True,
                                   **_grid_kwargs(args))
    except ValueError as error:
        raise _common.CommandError(str(error)) from None
    print(f"probe header written to {out}")
    return 0


def run_import(args):
    csv_file = _common.existing_file(args.csv, "CSV")
    out = _common.writable_file(args.out, "--out")
    model = _common.load_keras_model(args.model)
    from hads_keras import latency_probe

    try:
        table = latency_probe.read_csv(csv_file, model, target=args.target,
                                       source={"tool": "hads latency import",
                                               "csv": csv_file.name})
    except ValueError as error:
        raise _common.CommandError(str(error)) from None
    table.save(out)
    print(f"{table}: constant {table.constant:g} {table.unit}; written to {out}")
    return 0
