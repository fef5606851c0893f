"""`hads solve`: a saved model + importance scores + MAC budgets -> plan JSON.

    hads solve model.keras --importance importance.npz \\
        [--mac-targets 1,0.75,0.5,0.25] [--out plan.json]
    hads solve model.keras --importance importance.npz \\
        --latency-table table.json --latency-targets 1,0.5,0.25 [--mac-targets ...]
"""

import argparse

from hads_keras.commands import _common

IMPORTANCE_HELP = """\
where the importance of every unit comes from (required). Either an .npz
file of scores: one array per sliceable group, keyed by the group's name
(`hads report MODEL.keras` lists them), with one score >= 0 per unit in the
layer's own unit order, e.g. np.savez("importance.npz",
**hads.taylor_importance(model, dataset)) or, after model.fit with the
callback, np.savez("importance.npz", **importance.scores). Or a baseline:
'l1' (L1 norm of each unit's weights) or 'random'; they are what HADS is
compared against, not a substitute for Taylor importance."""

TARGETS_HELP = """\
comma-separated budgets, strictly decreasing (default 1,0.75,0.5,0.25,
none with --latency-targets).
Numbers in (0, 1] are fractions of the full model's MACs; numbers above 1
are absolute MACs. Subnetwork 0 is always the full network: it is added in
front when the first budget is below the full cost (0.5,0.25 gives three
subnetworks)."""


LATENCY_HELP = """\
comma-separated latency budgets, strictly decreasing, measured in
--latency-table: numbers in (0, 1] are fractions of the full model's
latency, larger numbers absolute budgets in the table's unit; a budget may
carry its unit (20ms, 150us, 1.2e6instructions; a time needs a table in
us). May be combined with --mac-targets (every budget holds)."""


def _latency_targets(text):
    """Numbers stay numbers; items with a unit stay strings (the solver
    checks them against the table's unit)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one budget, e.g. 0.5")
    out = []
    for item in items:
        try:
            out.append(float(item))
        except ValueError:
            out.append(item)
    return out


def _targets(text):
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of numbers, e.g. "
            "1,0.75,0.5,0.25") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one budget, e.g. 0.5")
    return values


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "solve", help="solve the nested knapsack for a saved model",
        description="Compute slicing points (a plan) for a saved .keras model: "
                    "the nested subnetworks that keep the most importance "
                    "within each MAC budget.")
    parser.add_argument("model", help="a .keras model (Keras or HADS layers)")
    parser.add_argument("--importance", required=True, metavar="FILE.npz|l1|random",
                        help=IMPORTANCE_HELP)
    parser.add_argument("--mac-targets", type=_targets, default=None,
                        metavar="B0,B1,...", help=TARGETS_HELP)
    parser.add_argument("--latency-targets", "--latency_targets",
                        dest="latency_targets", type=_latency_targets, default=None,
                        metavar="B0,B1,...", help=LATENCY_HELP)
    parser.add_argument("--latency-table", "--latency_table", dest="latency_table",
                        default=None, metavar="FILE.json",
                        help="a latency table made for this model (hads_keras."
                             "latency format), needed with --latency-targets")
    parser.add_argument("--method", default="bottom_up",
                        choices=["bottom_up", "top_down", "joint"],
                        help="bottom_up (the paper's default: smallest subnetwork "
                             "first, each larger one keeps its units), top_down "
                             "(largest first) or joint (all subnetworks in one "
                             "CP-SAT model, with a proven gap; slower)")
    parser.add_argument("--min-width", type=int, default=1, metavar="N",
                        help="smallest slicing point of every group, >= 1 and at "
                             "most the narrowest group's width (default 1)")
    parser.add_argument("--multiple-of", type=int, default=1, metavar="N",
                        help="slicing points are multiples of N (a SIMD width, "
                             "e.g. 4 for int8 kernels) or the full width (default 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of --importance random (default 0)")
    parser.add_argument("--out", default="plan.json",
                        help="where to write the plan (default plan.json)")
    parser.set_defaults(func=run)
    return parser


def _scores(args, model):
    from hads_keras import importance as importance_lib

    if args.importance == "l1":
        return importance_lib.l1_importance(model)
    if args.importance == "random":
        return importance_lib.random_importance(model, seed=args.seed)
    import numpy as np

    try:
        with np.load(args.importance, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as error:  # not an .npz (zip of .npy) file
        raise _common.CommandError(
            f"--importance file '{args.importance}' is not an .npz of scores "
            f"({type(error).__name__}: {error}); write it with "
            "np.savez(path, **scores).") from None


def run(args):
    if args.importance not in ("l1", "random"):
        _common.existing_file(args.importance, "--importance")
    if args.min_width < 1:
        raise _common.CommandError(
            f"--min-width {args.min_width}: every subnetwork keeps at least one "
            "unit per group; give 1 or more.")
    if args.multiple_of < 1:
        raise _common.CommandError(f"--multiple-of {args.multiple_of}: give 1 or more.")
    if (args.latency_targets is None) != (args.latency_table is None):
        raise _common.CommandError(
            "--latency-targets and --latency-table go together: the budgets are "
            "measured in the table.")
    if args.latency_table is not None:
        _common.existing_file(args.latency_table, "--latency-table")
    mac_targets = args.mac_targets
    if mac_targets is None and args.latency_targets is None:
        mac_targets = _targets("1.0,0.75,0.5,0.25")
    _common.writable_file(args.out, "--out")
    model = _common.load_keras_model(args.model)
    scores = _scores(args, model)
    from hads_keras.solve import solve

    try:
        plan = solve(model, scores, mac_targets=mac_targets, method=args.method,
                     min_width=args.min_width, multiple_of=args.multiple_of,
                     latency_targets=args.latency_targets,
                     latency_table=args.latency_table)
    except (ValueError, TypeError) as error:  # the inputs: targets, scores
        raise _common.CommandError(str(error)) from None
    except (RuntimeError, TimeoutError) as error:  # a solver gave up
        raise _common.CommandError(str(error), _common.FAILED) from None
    plan.save(args.out)
    print(plan)
    print(plan.info["report"])
    print(f"plan written to {args.out}")
    return 0
