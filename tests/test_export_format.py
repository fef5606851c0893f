"""The nested model follows docs/nested_tflite_format.md; metadata and C
arrays round-trip."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import hads_keras as hads
from hads_keras import export
from hads_keras.export import flatbuffer
from hads_keras.export import quantization as qz
from test_export_fixtures import PLANS, family_export  # noqa: F401


def _hads_ops(model):
    graph = model.subgraphs[0]
    return [(op, flatbuffer.op_name(model, op)) for op in graph.operators
            if flatbuffer.op_name(model, op).startswith("HADS_")]


def test_reparses_with_schema_and_has_no_builtin_sliced_ops(family_export):
    family, nested, nested_bytes, _ = family_export
    assert schema.Model.ModelBufferHasIdentifier(nested_bytes, 0)
    root = schema.Model.GetRootAs(nested_bytes, 0)
    assert root.SubgraphsLength() == 1
    facts = export.check_nested(nested_bytes)   # raises on duplicate buffers
    # Every Dense/Conv2D/DepthwiseConv2D of these families touches a sliced
    # group, so none may stay builtin.
    assert facts["builtin_sliceable"] == []
    layers = [w for w in hads.groups(nested.network).wiring.values() if w.kind != "batchnorm"]
    assert facts["hads_operators"] == len(layers)


def test_weights_are_stored_once(family_export):
    _, nested, nested_bytes, _ = family_export
    model = flatbuffer.load(nested_bytes)
    graph = model.subgraphs[0]
    weight_buffers = [graph.tensors[op.inputs[1]].buffer for op, _ in _hads_ops(model)]
    assert len(set(weight_buffers)) == len(weight_buffers)
    # No other tensor holds int8 constants: one int8 buffer per layer.
    int8_constants = [t for t in graph.tensors if t.type == schema.TensorType.INT8
                      and model.buffers[t.buffer].data is not None
                      and len(model.buffers[t.buffer].data)]
    assert len(int8_constants) == len(weight_buffers)
    # They are the full layers' weights, once.
    wiring = hads.groups(nested.network).wiring
    kernels = [nested.network.get_layer(name).weights[0]
               for name, w in wiring.items() if w.kind != "batchnorm"]
    assert sum(int(np.prod(t.shape)) for t in int8_constants) == sum(
        int(np.prod(k.shape)) for k in kernels)


def test_options_follow_the_plan_and_tflite_arithmetic(family_export):
    family, nested, nested_bytes, _ = family_export
    model = flatbuffer.load(nested_bytes)
    graph = model.subgraphs[0]
    selector = [i for i in graph.inputs
                if flatbuffer.tensor_name(graph.tensors[i]) == "subnetwork"]
    assert len(selector) == 1
    sel = graph.tensors[selector[0]]
    assert sel.type == schema.TensorType.INT32 and list(sel.shape) == [1]
    meta_ops = export.read_metadata(nested_bytes)["operators"]
    analysis = hads.groups(nested.network)
    plan = nested.plan
    differs = []
    for (op, name), meta in zip(_hads_ops(model), meta_ops):
        opts = flatbuffer.read_flexbuffer_map(op.customOptions)
        assert op.inputs[-1] == selector[0] and len(op.inputs) == 4
        assert opts["version"] == 1 and opts["num_subnetworks"] == plan.num_subnetworks
        wiring = analysis.wiring[meta["layer"]]
        in_group = analysis[wiring.in_group]
        if not in_group.fixed:
            assert list(opts["in_channels"]) == [
                w * wiring.in_multiplier for w in plan.widths(in_group.name)]
        if wiring.kind != "depthwise" and not analysis[wiring.out_group].fixed:
            assert list(opts["out_channels"]) == list(plan.widths(wiring.out_group))
        if wiring.kind == "dense":
            assert opts["in_spatial"] == wiring.in_spatial
        # Row 0 is exactly what TFLite derives from the file's own scales.
        x, w, y = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        s_in, s_w, s_out = (flatbuffer.scales(t)[0] for t in (x, w, y))
        out = len(np.asarray(opts["output_multiplier"])) // plan.num_subnetworks
        if name == "HADS_FULLY_CONNECTED" and s_w.size == 1:
            reals = [qz.effective_scale_per_tensor_fc(s_in[0], s_w[0], s_out[0])] * out
        else:
            reals = qz.effective_scales_per_channel(
                s_in[0], np.broadcast_to(s_w, (out,)), s_out[0])
        mult, shift = qz.quantize_multipliers(reals)
        rows = np.asarray(opts["output_multiplier"]).reshape(plan.num_subnetworks, out)
        np.testing.assert_array_equal(rows[0], mult)
        np.testing.assert_array_equal(
            np.asarray(opts["output_shift"]).reshape(-1, out)[0], shift)
        if op.inputs[2] >= 0:
            np.testing.assert_array_equal(
                np.asarray(opts["bias"]).reshape(-1, out)[0],
                flatbuffer.tensor_data(model, graph.tensors[op.inputs[2]]))
        active = np.asarray(opts["out_channels"])
        differs.append(any(not np.array_equal(rows[k, :active[k]], rows[0, :active[k]])
                           for k in range(1, plan.num_subnetworks)))
    # Per-subnetwork BN statistics show up as per-subnetwork multipliers
    # (DS-CNN: BN after 1x1 convs with sliced inputs); without BN every row
    # equals row 0.
    if family == "ds_cnn":
        assert any(differs)
    else:
        assert not any(differs)


def test_metadata_round_trips(family_export):
    family, nested, nested_bytes, _ = family_export
    plan = export.read_plan(nested_bytes)
    assert plan.num_subnetworks == nested.plan.num_subnetworks
    for group in nested.plan.groups:
        assert plan.widths(group) == nested.plan.widths(group)
    assert plan.costs == hads.subnetwork_costs(nested, nested.plan)
    assert export.read_labels(nested_bytes) == [f"digit {d}" for d in range(10)]


def test_tables_are_read_in_place_and_the_file_carries_its_crc(family_export):
    # The device reads every HADS table from the model (no arena copy) and
    # can check the whole file against the exported CRC-32.
    from hads_keras.export import metadata
    from hads_keras.export import nested as nested_lib
    _, _, nested_bytes, _ = family_export
    assert nested_lib.in_place_table_problems(nested_bytes) == []
    assert metadata.verify_crc(nested_bytes)
    for k in range(3):  # materialized files are other files: no stale CRC
        assert metadata.CRC_KEY not in metadata.entries(flatbuffer.load(
            export.materialize(nested_bytes, k), "test"))


def test_materialized_model_is_plain_tflite(family_export):
    _, nested, nested_bytes, _ = family_export
    for k in range(nested.plan.num_subnetworks):
        model = flatbuffer.load(export.materialize(nested_bytes, k))
        graph = model.subgraphs[0]
        names = {flatbuffer.op_name(model, op) for op in graph.operators}
        assert not any(n.startswith("HADS_") for n in names)
        assert len(graph.inputs) == 1
        assert all(flatbuffer.tensor_name(t) != "subnetwork" for t in graph.tensors)
        with pytest.raises(ValueError, match="hads_plan"):
            export.read_plan(export.materialize(nested_bytes, k))


def _array_bytes(source_text):
    body = source_text[source_text.index("{") + 1:source_text.index("};")]
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_c_array_compiles_and_holds_the_model(family_export, tmp_path):
    _, nested, nested_bytes, _ = family_export
    header, source = export.c_array(nested_bytes, "model_data", tmp_path)
    text = source.read_text()
    assert _array_bytes(text) == nested_bytes
    assert f"model_data_len = {len(nested_bytes)};" in header.read_text()
    assert "alignas(16)" in text
    costs = hads.subnetwork_costs(nested, nested.plan)
    assert f"model_data_num_subnetworks = {len(costs)};" in header.read_text()
    assert ("model_data_subnetwork_macs[%d] = {%s};" % (
        len(costs), ", ".join(str(c["macs"]) for c in costs))) in text
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c",
                    str(source), "-o", str(tmp_path / "model_data.o")],
                   check=True, capture_output=True, text=True)
