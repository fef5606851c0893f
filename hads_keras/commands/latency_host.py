"""`hads latency host`: measure a latency table in LiteRT on this host.

    hads latency host model.keras [--points 5] [--repeats 100]
        [--threads 1] [--out model.host-litert.json]

Every sliced layer is timed as a one-operator int8 model at a grid of its
active widths (`hads_keras.latency_host`); the result is a `LatencyTable`
(target "host-litert", unit "us") for `hads.solve(latency_table=...)` and
`hads demo --latency_table`.
"""

from hads_keras.commands import _common

def add_arguments(parser):
    """The options of `hads latency host` besides the grid's --points and
    --min-width (hads_keras.commands.latency adds those)."""
    parser.add_argument("--repeats", type=int, default=100, metavar="N",
                        help="timed invokes per grid point; the table holds "
                             "their median (default 100)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="LiteRT interpreter threads (default 1)")
    parser.add_argument("--out", default=None,
                        help="where to write the table (default "
                             "MODEL.host-litert.json next to the model)")


def run(args):
    points = 2 if args.points == "all" else args.points   # 'all': every width
    for flag, value, least in (("--points", points, 2), ("--min-width", args.min_width, 1),
                               ("--repeats", args.repeats, 1), ("--threads", args.threads, 1)):
        if value < least:
            raise _common.CommandError(f"{flag} {value}: give {least} or more.")
    out = args.out or str(_common.existing_file(args.model, "model").with_suffix(
        ".host-litert.json"))
    _common.writable_file(out, "--out")
    model = _common.load_keras_model(args.model)
    from hads_keras import latency_host

    try:
        table = latency_host.host_table(model, points=args.points, minimum=args.min_width,
                                        repeats=args.repeats, threads=args.threads,
                                        log=print)
    except ValueError as error:   # a model without sliced layers, a bad grid
        raise _common.CommandError(str(error)) from None
    table.save(out)
    source = table.source
    print(f"{table}: constant {table.constant:.2f} us (overhead "
          f"{source['overhead_us']:.2f} us per invoke), full model "
          f"{source['full_model_us']:.2f} us; spread between repeats "
          f"(p90 - p10) / median: median {source['spread']['median']:.2f}, "
          f"max {source['spread']['max']:.2f}")
    print(f"latency table written to {out}")
    return 0
