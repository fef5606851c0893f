"""`hads export`: a saved nested model (.keras) -> TFLite files and C arrays.

    hads export model.keras --out export/ --representative-data calib.npy \
        [--test-data x_test.npy --test-labels y_test.npy] [--labels labels.txt]

Arrays are `.npy` files (`numpy.save`): samples `[N, *input_shape]`
(float32) and integer labels `[N]`. The labels file has one class name per
line.
"""

import pathlib


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
    file = pathlib.Path(path)
    if not file.is_file():
        raise SystemExit(f"hads export: {what} file '{path}' does not exist.")
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as error:
        raise SystemExit(f"hads export: {what} file '{path}' is not a .npy "
                         f"array ({error}); save it with numpy.save.") from None


def run(args):
    import keras
    import hads_keras  # noqa: F401  (registers the HADS layers for loading)
    from hads_keras.export.bundle import export_all

    if not pathlib.Path(args.model).is_file():
        print(f"hads export: model file '{args.model}' does not exist.")
        return 2
    representative = _load_array(args.representative_data, "--representative-data")
    x_test = y_test = None
    if (args.test_data is None) != (args.test_labels is None):
        print("hads export: give both --test-data and --test-labels, or neither.")
        return 2
    if args.test_data is not None:
        x_test = _load_array(args.test_data, "--test-data")
        y_test = _load_array(args.test_labels, "--test-labels")
    labels = None
    if args.labels:
        labels = pathlib.Path(args.labels).read_text().splitlines()
    model = keras.models.load_model(args.model)
    try:
        export_all(model, args.out, representative, x_test, y_test, labels=labels,
                   name=args.name, per_subnetwork=not args.no_per_subnetwork)
    except ValueError as error:
        print(f"hads export: {error}")
        return 1
    return 0
