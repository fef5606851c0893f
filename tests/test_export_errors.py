"""Bad input to the exporter gets a clear error (untrained tiny models)."""

import keras
import numpy as np
import pytest

import hads_keras as hads
from hads_keras import export
from hads_keras import layers as L


def _tiny_nested(bn_after_relu=False, bn_mean=0.0):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="x")
    x = L.Dense(8, activation="relu", name="fc1")(inputs)
    if bn_after_relu:
        x = L.BatchNormalization(name="bn")(x)
    outputs = L.Dense(3, use_bias=False, name="out")(x)  # FC bias input -1
    nested = hads.apply(keras.Model(inputs, outputs), hads.Plan({"fc1": [8, 4]}))
    if bn_after_relu:
        bn = nested.network.get_layer("bn")
        bn.moving_variance.assign(np.array([[1.0] * 8, [2.0] * 8], np.float32))
        bn.moving_mean.assign(np.array([[bn_mean] * 8, [-bn_mean] * 8], np.float32))
    return nested


@pytest.fixture(scope="module")
def tiny():
    return _tiny_nested()


@pytest.fixture(scope="module")
def tiny_nested_bytes(tiny):
    rep = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    return export.tflite_nested(tiny, None, rep)


def test_representative_data_of_wrong_shape(tiny):
    with pytest.raises(ValueError, match=r"representative_data has shape \(10, 5\).*\[N, 6\]"):
        export.tflite_nested(tiny, None, np.zeros((10, 5), np.float32))
    with pytest.raises(ValueError, match="representative_data"):
        export.tflite_subnetwork(tiny, 1, np.zeros((10, 6, 1)), int8=True)


def test_representative_data_empty_or_missing(tiny):
    with pytest.raises(ValueError, match="empty"):
        export.tflite_nested(tiny, None, np.zeros((0, 6), np.float32))
    with pytest.raises(ValueError, match="empty"):
        export.tflite_nested(tiny, None, iter([]))
    with pytest.raises(ValueError, match="required for int8"):
        export.tflite_subnetwork(tiny, 0, None, int8=True)
    with pytest.raises(ValueError, match="NaN"):
        export.tflite_nested(tiny, None, np.full((4, 6), np.nan, np.float32))


def test_model_without_plan_or_with_unsupported_layers():
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="no plan"):
        export.tflite_nested(plain, None, np.zeros((4, 6), np.float32))
    inputs = keras.Input((5, 6))
    x = L.Dense(8, name="fc")(inputs)
    x = keras.layers.LSTM(4, name="lstm")(x)
    lstm = keras.Model(inputs, L.Dense(3, name="out")(x))
    lstm.plan = hads.Plan({"fc": [8, 4]})  # pretend: the graph check must refuse it
    with pytest.raises(ValueError, match="'lstm' \\(LSTM\\)"):
        export.tflite_nested(lstm, None, np.zeros((4, 5, 6), np.float32))


def test_batchnorm_after_activation_with_untrained_offset():
    # Offset 0 in every channel: the converter folds the BN's MUL into the
    # next Dense, leaving no MUL + ADD for the per-subnetwork rows (see
    # test_export_batchnorm_tables.py for the trained case, which exports).
    nested = _tiny_nested(bn_after_relu=True)
    with pytest.raises(ValueError, match="BatchNormalization 'bn'.*folds the MUL "
                       "into the next layer.*fit the nested model"):
        export.tflite_nested(nested, None, np.zeros((4, 6), np.float32))


def test_materialize_index_out_of_range(tiny_nested_bytes):
    with pytest.raises(ValueError, match="index 2 is out of range.*2 subnetworks"):
        export.materialize(tiny_nested_bytes, 2)
    with pytest.raises(ValueError, match="out of range"):
        export.materialize(tiny_nested_bytes, -1)
    with pytest.raises(TypeError, match="int"):
        export.materialize(tiny_nested_bytes, 1.0)


def test_not_a_nested_model(tiny, tiny_nested_bytes):
    plain = export.tflite_subnetwork(tiny, 1)
    with pytest.raises(ValueError, match="no 'hads_plan' metadata"):
        export.read_plan(plain)
    with pytest.raises(ValueError, match="no HADS operators"):
        export.materialize(plain, 0)
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        export.read_plan(b"definitely not a model")
    with pytest.raises(ValueError, match="not a C identifier"):
        export.c_array(tiny_nested_bytes, "model-data", "/tmp")


def test_tiny_nested_model_round_trips(tiny, tiny_nested_bytes):
    """The small model itself exports correctly (so the errors above are
    about the bad input, not a broken export)."""
    assert export.read_plan(tiny_nested_bytes).widths("fc1") == (8, 4)
    assert export.check_nested(tiny_nested_bytes)["hads_operators"] == 2
    x = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)[:8]
    for k in range(2):
        with tiny.subnetwork(k):
            reference = tiny.predict(x, verbose=0)
        out = export.run_litert(export.materialize(tiny_nested_bytes, k), x)
        assert np.max(np.abs(out - reference)) < 0.05  # int8 steps
