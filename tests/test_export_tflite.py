"""Acceptance of the TFLite export on the demo data, per family and subnetwork.

* per-subnetwork float TFLite equals Keras (max abs diff <= 1e-4);
* per-subnetwork int8 TFLite within 1 point of float accuracy;
* the nested model, materialized per subnetwork, within 1 point of float;
* TFLite Micro runs every materialized model (arena size reported) and
  agrees with ai_edge_litert's reference kernels up to the runtimes' own
  one-step rounding differences;
* the nested file is smaller than the per-subnetwork int8 files together.
"""

import numpy as np

from hads_keras import export
from test_export_fixtures import digits, family_export  # noqa: F401


def test_float_tflite_equals_keras(family_export):
    family, nested, _, report = family_export
    assert len(report["subnetworks"]) == nested.plan.num_subnetworks
    for row in report["subnetworks"]:
        assert row["tflite_float_max_abs_diff"] <= 1e-4, (family, row)
        assert row["tflite_float_accuracy"] == row["keras_float_accuracy"]


def test_int8_within_one_point_of_float(family_export):
    family, _, _, report = family_export
    for row in report["subnetworks"]:
        k = row["subnetwork"]
        assert abs(row["tflite_int8_accuracy"] - row["keras_float_accuracy"]) <= 0.01, \
            (family, k, row)
        assert abs(row["nested_int8_accuracy"] - row["keras_float_accuracy"]) <= 0.01, \
            (family, k, row)


def test_tflite_micro_runs_materialized_models(family_export):
    family, _, _, report = family_export
    for row in report["subnetworks"]:
        assert row["materialized_arena"] > 0 and row["int8_arena"] > 0
        # The Python wheel of TFLite Micro and TFLite's reference kernels
        # differ by one output step on a few samples (also on the
        # converter's own models), hence no exact equality here; the
        # bit-exact reference is tests/native/test_nested_model_kernels.py.
        assert abs(row["nested_int8_accuracy_tflm"] - row["nested_int8_accuracy"]) <= 0.01
        assert abs(row["tflite_int8_accuracy_tflm"] - row["tflite_int8_accuracy"]) <= 0.01


def test_tflite_micro_output_steps(family_export):
    """TFLite Micro and the reference agree within one int8 step."""
    _, _, nested_bytes, _ = family_export
    x_test = digits()[2][:50]
    materialized = export.materialize(nested_bytes, 1)
    litert = export.run_litert(materialized, x_test)
    micro = export.run_tflm(materialized, x_test)
    from ai_edge_litert.interpreter import Interpreter
    scale = Interpreter(model_content=materialized).get_output_details()[0][
        "quantization"][0]
    assert np.max(np.abs(litert - micro)) <= scale * 1.0001


def test_nested_smaller_than_sum_of_subnetworks(family_export):
    family, _, nested_bytes, report = family_export
    assert len(nested_bytes) == report["nested_size"]
    assert report["nested_size"] < report["sum_int8_sizes"], (family, report)


def test_materialized_full_network_is_the_converters_model(family_export):
    """Subnetwork 0 of the nested model computes what the converter's int8
    model of the full network computes (same weights, scales, arithmetic)."""
    family, nested, nested_bytes, _ = family_export
    _, _, x_test, _, rep = digits()
    direct = export.tflite_subnetwork(nested, 0, rep, int8=True)
    np.testing.assert_array_equal(
        export.run_litert(export.materialize(nested_bytes, 0), x_test[:100]),
        export.run_litert(direct, x_test[:100]))


def test_smaller_subnetworks_are_smaller_models(family_export):
    """Subnetworks really differ (the comparisons above are not vacuous)."""
    _, _, _, report = family_export
    rows = report["subnetworks"]
    for prev, row in zip(rows, rows[1:]):
        assert row["macs"] < prev["macs"]
        assert row["materialized_size"] < prev["materialized_size"]
        assert row["int8_size"] < prev["int8_size"]
