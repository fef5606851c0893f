"""Every export artefact of a nested model into one folder.

`export_all(nested, out_dir, representative_data, ...)` is what `hads
export` and the demo call; each artefact also has its own function
(`tflite_subnetwork`, `tflite_nested`, `c_array`, `subnetwork_report`).

Folder contents:

* `nested.tflite`: the int8 model with every subnetwork (HADS operators);
* `<name>.h`, `<name>.cc`: it as a C array, with the subnetwork table;
* `subnetwork_<k>_float.tflite`, `subnetwork_<k>_int8.tflite`: standalone
  per-subnetwork models for the stock TFLite runtime;
* `nested_materialized_<k>.tflite` and `export_report.json` (figures per
  subnetwork) when test data is given.
"""

import json
import pathlib

from hads_keras.export.c_array import c_array
from hads_keras.export.checks import format_report, subnetwork_report
from hads_keras.export.convert import tflite_subnetwork
from hads_keras.export.nested import tflite_nested

NESTED_FILE = "nested.tflite"
REPORT_FILE = "export_report.json"


def export_all(nested, out_dir, representative_data, x_test=None, y_test=None,
               labels=None, name="model_data", per_subnetwork=True, log=print,
               latency_table=None):
    """Write all export artefacts; returns a dict of paths and the report.

    Args:
        nested: a `NestedModel`.
        out_dir: output folder (created).
        representative_data: calibration samples `[N, *input_shape]`.
        x_test, y_test: optional test data; with it the per-subnetwork
            report (accuracies, sizes, arenas) is measured and written.
        labels: optional class labels stored in the nested model.
        name: C identifier of the array (`<name>.h/.cc`).
        per_subnetwork: also write the standalone per-subnetwork models.
        log: where progress lines go (None: silent).
        latency_table: optional `LatencyTable` whose per-subnetwork latency
            goes into the nested model's metadata (`tflite_nested`).
    """
    log = log or (lambda *a: None)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"nested": out / NESTED_FILE}
    nested_bytes = tflite_nested(nested, result["nested"], representative_data,
                                 labels=labels, latency_table=latency_table)
    log(f"nested int8 model -> {result['nested']}")  # once written, not before
    result["c_array"] = c_array(nested_bytes, name, out)
    log(f"C array -> {result['c_array'][0]}, {result['c_array'][1]}")
    if x_test is not None:
        if y_test is None:
            raise ValueError("export_all: x_test given without y_test.")
        log("measuring every subnetwork (Keras, TFLite, TFLite Micro)")
        report = subnetwork_report(nested, x_test, y_test, representative_data,
                                   nested_bytes=nested_bytes, out_dir=out,
                                   log=log)
        result["report"] = report
        result["report_file"] = out / REPORT_FILE
        result["report_file"].write_text(json.dumps(report, indent=2))
        log(format_report(report))
    elif per_subnetwork:
        for k in range(nested.plan.num_subnetworks):
            for int8, tag in ((False, "float"), (True, "int8")):
                path = out / f"subnetwork_{k}_{tag}.tflite"
                path.write_bytes(tflite_subnetwork(
                    nested, k, representative_data if int8 else None, int8=int8))
        log(f"per-subnetwork models -> {out}/subnetwork_<k>_<float|int8>.tflite")
    return result


def arduino_sketch(nested, out_dir, representative_data, labels=None,
                   example="AdaptiveInference", latency_table=None):
    """Export a nested model straight into an Arduino sketch folder.

    The nested int8 model (with its plan and labels as metadata) becomes the
    sketch's `hads_model.h`, next to a copy of the library example
    `example` ("AdaptiveInference" or "BudgetDriven"); open the folder in
    the Arduino IDE with the HADS library installed. With a latency table
    (or a plan solved with one) the sketch's cost table also holds each
    subnetwork's latency (`SubnetworkSelector::selectForLatency`).

    Returns:
        The path of the sketch's `.ino` file.
    """
    from hads_keras.export import arduino

    nested_bytes = tflite_nested(nested, None, representative_data, labels=labels,
                                 latency_table=latency_table)
    return arduino.write_sketch(nested_bytes, out_dir, labels=labels, example=example)
