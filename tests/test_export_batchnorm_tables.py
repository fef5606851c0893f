"""A BatchNormalization after the activation, with per-subnetwork statistics,
in the nested int8 model: its MUL + ADD read rows of `[S, C]` tables picked
by GATHER on `subnetwork` (docs/nested_tflite_format.md). The MLPerf Tiny
KWS FC model runs through the whole pipeline in test_model_coverage.py and
bit for bit in tests/native/test_model_coverage_kernels.py; here a tiny
model: the tables hold every subnetwork's statistics, and broken tables are
refused."""

import json

import numpy as np
import pytest

import hads_keras as hads
from hads_keras import export
from hads_keras.export import batchnorm_tables, flatbuffer
from hads_keras.export import metadata as metadata_lib
from test_export_errors import _tiny_nested

REP = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def bn_nested():
    nested = _tiny_nested(bn_after_relu=True, bn_mean=0.3)
    return nested, export.tflite_nested(nested, None, REP)


def _gathers(model):
    graph = model.subgraphs[0]
    return [op for op in graph.operators if flatbuffer.op_name(model, op) == "GATHER"]


def test_tables_hold_every_subnetworks_statistics(bn_nested):
    nested, nested_bytes = bn_nested
    facts = export.check_nested(nested_bytes)
    assert facts["operators"].count("GATHER") == 2
    assert export.read_metadata(nested_bytes)["batchnorm_tables"] == [
        {"layer": "bn", "channels": 8}]
    model = flatbuffer.load(nested_bytes)
    graph = model.subgraphs[0]
    # Independent of the exporter: the Keras layer's statistics.
    bn = nested.network.get_layer("bn")
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    scale = bn.gamma.numpy() / np.sqrt(var + bn.epsilon)
    want = {"scale": scale, "offset": bn.beta.numpy() - mean * scale}
    for op in _gathers(model):
        table = graph.tensors[op.inputs[0]]
        (step,), (zero_point,) = flatbuffer.scales(table)
        got = (flatbuffer.tensor_data(model, table) - zero_point) * step
        which = flatbuffer.tensor_name(table).split("/")[-2]
        np.testing.assert_allclose(got, want[which], atol=step / 2 + 1e-7)
        assert not np.array_equal(got[0], got[1])  # two rows really differ
        assert flatbuffer.tensor_name(graph.tensors[op.inputs[1]]) == "subnetwork"


def test_materialized_subnetworks_follow_the_keras_ones(bn_nested):
    nested, nested_bytes = bn_nested
    x = REP[:8]
    for k in range(2):
        reference = export.materialize(nested_bytes, k)
        model = flatbuffer.load(reference)
        names = [flatbuffer.op_name(model, op) for op in model.subgraphs[0].operators]
        assert "GATHER" not in names and names.count("MUL") == 1
        got = export.run_litert(reference, x)
        want = np.asarray(hads.extract_subnetwork(nested, k)(x, training=False))
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max(), k


def _edited(nested_bytes, edit, plan_edit=None):
    model = flatbuffer.load(nested_bytes)
    edit(model)
    if plan_edit is not None:
        plan = export.read_metadata(nested_bytes)
        plan_edit(plan)
        metadata_lib.set_entry(model, metadata_lib.PLAN_KEY, json.dumps(plan))
    return flatbuffer.save(model)


def test_table_of_wrong_size_is_refused(bn_nested):
    def three_rows(model):
        table = model.subgraphs[0].tensors[_gathers(model)[0].inputs[0]]
        data = flatbuffer.tensor_data(model, table)
        table.shape = np.asarray([3, data.shape[1]], np.int32)
        model.buffers[table.buffer].data = np.frombuffer(
            np.concatenate([data, data[:1]]).tobytes(), np.uint8).copy()
    broken = _edited(bn_nested[1], three_rows)
    with pytest.raises(ValueError, match=r"GATHER of 'bn/\w+/table'.*int8 \[2, C\]"):
        export.check_nested(broken)
    with pytest.raises(ValueError, match=r"materialize: GATHER of 'bn/\w+/table'"):
        export.materialize(broken, 1)


def test_other_readers_of_subnetwork_and_unlisted_tables_are_refused(bn_nested):
    nested_bytes = bn_nested[1]

    def mul_reads_selector(model):
        graph = model.subgraphs[0]
        mul = [op for op in graph.operators if flatbuffer.op_name(model, op) == "MUL"][0]
        gather = [op for op in _gathers(model) if op.outputs[0] in mul.inputs][0]
        inputs = np.array(mul.inputs, np.int32)
        inputs[list(inputs).index(int(gather.outputs[0]))] = gather.inputs[1]
        mul.inputs = inputs
    with pytest.raises(ValueError, match="a MUL reads 'subnetwork'"):
        export.check_nested(_edited(nested_bytes, mul_reads_selector))
    unlisted = _edited(nested_bytes, lambda model: None,
                       lambda plan: plan.pop("batchnorm_tables"))
    with pytest.raises(ValueError, match="2 GATHER operators but the plan lists 0"):
        export.check_nested(unlisted)


def test_install_names_the_layer_it_cannot_find(bn_nested):
    model = flatbuffer.load(bn_nested[1])
    graph = model.subgraphs[0]
    selector = [i for i in graph.inputs
                if flatbuffer.tensor_name(graph.tensors[i]) == "subnetwork"][0]
    rows = batchnorm_tables.BatchNormRows("other_bn", np.full((2, 8), 7.0),
                                          np.full((2, 8), -5.0))
    with pytest.raises(ValueError, match="BatchNormalization 'other_bn'.*no MUL \\+ ADD"):
        batchnorm_tables.install(model, graph, selector, [rows])


def test_every_gather_runs_after_a_hads_operator(bn_nested):
    """An out-of-range `subnetwork` must meet a HADS operator (which
    rejects it) before any GATHER (which TFLite Micro does not check)."""
    model = flatbuffer.load(bn_nested[1])
    names = [flatbuffer.op_name(model, op) for op in model.subgraphs[0].operators]
    first_hads = min(i for i, n in enumerate(names) if n.startswith("HADS_"))
    assert all(i > first_hads for i, n in enumerate(names) if n == "GATHER")
