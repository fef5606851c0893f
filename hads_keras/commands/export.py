"""`hads export`: a saved nested model (.keras) -> TFLite files and C arrays.

    hads export model.keras --out export/ --representative-data calib.npy \\
        [--test-data x_test.npy --test-labels y_test.npy] [--labels labels.txt]

Arrays are `.npy` files (`numpy.save`): samples `[N, *input_shape]`
(float32) and integer labels `[N]`. The labels file has one class name per
line.
"""

from hads_keras.commands import _common


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a nested model to TFLite (per subnetwork and nested int8) "
             "and C arrays",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the nested model, saved with model.save(...keras)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--representative-data", required=True,
                        help=".npy file of calibration samples [N, *input_shape]")
    parser.add_argument("--test-data", help=".npy file of test samples (for the report)")
    parser.add_argument("--test-labels", help=".npy file of integer test labels")
    parser.add_argument("--labels", help="text file, one class label per line")
    parser.add_argument("--name", default="model_data",
                        help="C identifier of the model array (default model_data)")
    parser.add_argument("--no-per-subnetwork", action="store_true",
                        help="skip the standalone per-subnetwork .tflite files")
    parser.set_defaults(func=run)
    return parser


def _load_array(path, what):
    import numpy as np

    file = _common.existing_file(path, what)
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as error:
        raise _common.CommandError(
            f"{what} file '{path}' is not a .npy array ({error}); save it with "
            "numpy.save.") from None


def run(args):
    _common.existing_file(args.model, "model")
    if (args.test_data is None) != (args.test_labels is None):
        raise _common.CommandError(
            "give both --test-data and --test-labels, or neither.")
    if not args.name.isidentifier():
        raise _common.CommandError(f"--name '{args.name}' is not a C identifier.")
    representative = _load_array(args.representative_data, "--representative-data")
    x_test = y_test = None
    if args.test_data is not None:
        x_test = _load_array(args.test_data, "--test-data")
        y_test = _load_array(args.test_labels, "--test-labels")
    labels = None
    if args.labels:
        labels = _common.existing_file(args.labels, "--labels").read_text().splitlines()
    _common.writable_folder(args.out, "--out")
    model = _common.load_keras_model(args.model)
    from hads_keras.export.bundle import export_all

    try:
        export_all(model, args.out, representative, x_test, y_test, labels=labels,
                   name=args.name, per_subnetwork=not args.no_per_subnetwork)
    except ValueError as error:
        raise _common.CommandError(str(error), _common.FAILED) from None
    return 0
