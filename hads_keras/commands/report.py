"""`hads report`: what a saved model or plan holds, in one table.

    hads report nested.keras            # groups, slicing points, MACs/params per subnetwork
    hads report plan.json
"""

from hads_keras.commands import _common


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "report", help="print the groups, plan and costs of a saved model or plan",
        description="Print what a .keras model or a plan .json holds.")
    parser.add_argument("path", help="a .keras model (nested or not) or a plan .json")
    parser.set_defaults(func=run)
    return parser


def run(args):
    if args.path.endswith(".json"):
        from hads_keras.plan import Plan

        file = _common.existing_file(args.path, "plan")
        try:
            plan = Plan.load(file)
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            raise _common.CommandError(f"plan '{args.path}': {error}") from None
        print(plan)
        if plan.info.get("report"):
            print(plan.info["report"])
        return 0
    model = _common.load_keras_model(args.path)
    from hads_keras.report import describe

    print(describe(model))
    return 0
