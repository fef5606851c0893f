"""Export of nested HADS models: TFLite per subnetwork, one nested int8
TFLite with HADS custom operators, C arrays, checks with real runtimes.

    tflite_subnetwork(nested, k, representative_data, int8=True)  # stock TFLite
    nested_bytes = tflite_nested(nested, "model.tflite", representative_data)
    materialize(nested_bytes, k)      # standard TFLite of subnetwork k
    read_plan(nested_bytes)           # the Plan stored in the file
    c_array(nested_bytes, "model_data", "out_dir/")
    report = subnetwork_report(nested, x_test, y_test, representative_data)
    print(format_report(report))      # accuracies, sizes, TFLite Micro arenas
    export_all(nested, "out_dir/", representative_data, x_test, y_test)

Why the routes chosen: see `convert` (SavedModel through
`keras.export.ExportArchive`) and `nested` (per-subnetwork BN statistics as
per-subnetwork multipliers and biases). `tflite-support` is not used: it
pins protobuf < 4, which breaks TensorFlow 2.21; plan and labels go into
the model's own `metadata` entries instead (`metadata`).

The format of the nested model is docs/nested_tflite_format.md.
"""

from hads_keras.export.convert import keras_to_tflite, tflite_subnetwork
from hads_keras.export.materialize import materialize, num_subnetworks
from hads_keras.export.metadata import read_labels, read_metadata, read_plan
from hads_keras.export.nested import tflite_nested
from hads_keras.export.c_array import c_array, c_source
from hads_keras.export.checks import (
    arena_size, check_nested, format_report, run_litert, run_tflm,
    subnetwork_report)
from hads_keras.export.bundle import arduino_sketch, export_all

# The Arduino exporter is a submodule of its own: hads_keras.export.arduino.
