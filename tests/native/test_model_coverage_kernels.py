"""The portable HADS kernels on nested models with residual Add,
squeeze-and-excite Multiply, Conv1D, BatchNormalization after the
activation (per-subnetwork rows by GATHER) and an Inception-style
concatenation (tests/model_zoo.py), bit for bit.

The harness of test_nested_model_kernels.py: for every subnetwork k, the
materialized model runs in LiteRT's reference kernels keeping every tensor,
and every HADS operator of the nested model runs through the portable
kernels on full-size buffers with random values in the inactive input
channels; its active output must equal the reference tensor, its inactive
channels the output zero point (which the builtin ADD/MUL between them then
keep at the zero point).
"""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import model_zoo  # noqa: E402
from test_nested_model_kernels import (  # noqa: E402
    _Op, _reference_tensors, check_operator)

from hads_keras.export import flatbuffer, materialize  # noqa: E402


@pytest.mark.parametrize("name", ["resnet8", "se_toy", "conv1d_kws", "kws_fc",
                                  "inception_toy", "densenet_toy"])
def test_hads_kernels_equal_materialized_model(kernels, name):
    nested_bytes = model_zoo.nested_export(name)
    x = model_zoo.pipeline(name)[5][0]
    model = flatbuffer.load(nested_bytes)
    ops = [_Op(model, op) for op in model.subgraphs[0].operators
           if flatbuffer.op_name(model, op).startswith("HADS_")]
    graph = model.subgraphs[0]
    (in_scale,), (in_zp,) = flatbuffer.scales(graph.tensors[graph.inputs[0]])
    rng = np.random.default_rng(0)
    num = int(ops[0].options["num_subnetworks"])
    checked = 0
    for k in range(num):
        reference = materialize(nested_bytes, k)
        q = np.clip(np.round(x[:1] / in_scale) + in_zp, -128, 127).astype(np.int8)
        values = _reference_tensors(reference, q)
        for op in ops:
            check_operator(kernels, op, values, k, rng, f"{name} k={k} {op.y_name}")
            checked += 1
    assert checked == num * len(ops)


def _builtin_part(nested_bytes):
    """The nested model without its HADS operators: their outputs become
    model inputs and their inputs model outputs, so that what the builtin
    operators between them (GATHER, MUL, ADD, ...) compute on full-size
    tensors runs in LiteRT."""
    model = flatbuffer.load(nested_bytes)
    graph = model.subgraphs[0]
    hads = [op for op in graph.operators
            if flatbuffer.op_name(model, op).startswith("HADS_")]
    graph.operators = [op for op in graph.operators if op not in hads]
    outputs = [int(op.outputs[0]) for op in hads]
    inputs = [int(op.inputs[0]) for op in hads if int(op.inputs[0]) not in graph.inputs]
    graph.inputs = np.asarray(list(graph.inputs) + outputs, np.int32)
    graph.outputs = np.asarray(list(graph.outputs) + sorted(set(inputs)), np.int32)
    model.signatureDefs = []
    names = [flatbuffer.tensor_name(graph.tensors[i]) for i in inputs]
    return flatbuffer.save(model), hads, names


@pytest.mark.parametrize("name", ["kws_fc", "se_toy"])
def test_builtin_operators_of_nested_model_equal_materialized_model(name):
    """The operators between HADS operators, run in the nested model (full
    tensors, per-subnetwork BatchNormalization rows GATHERed by the
    `subnetwork` input), give every HADS operator's active input exactly as
    the materialized subnetwork does; the inactive channels they read hold
    the zero point (the HADS operators' contract)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    nested_bytes = model_zoo.nested_export(name)
    x = model_zoo.pipeline(name)[5][0]
    part, hads, checked_names = _builtin_part(nested_bytes)
    graph = flatbuffer.load(nested_bytes).subgraphs[0]
    (in_scale,), (in_zp,) = flatbuffer.scales(graph.tensors[graph.inputs[0]])
    q = np.clip(np.round(x[:1] / in_scale) + in_zp, -128, 127).astype(np.int8)
    interpreter = Interpreter(model_content=part,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_input_details()}
    outputs = {d["name"]: d for d in interpreter.get_output_details()}
    assert set(checked_names) <= set(outputs)
    num = int(flatbuffer.read_flexbuffer_map(hads[0].customOptions)["num_subnetworks"])
    for k in range(num):
        values = _reference_tensors(materialize(nested_bytes, k), q)
        for input_name, detail in details.items():
            if input_name == "subnetwork":
                value = np.asarray([k], np.int32)
            elif input_name in values and detail["shape"][-1] == values[input_name].shape[-1]:
                value = values[input_name]  # the model input
            else:  # a HADS operator's output: active prefix, then zero points
                active = values[input_name]
                zero_point = detail["quantization"][1]
                value = np.full(detail["shape"], zero_point, np.int8)
                value[..., :active.shape[-1]] = active
            interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        for tensor_name in checked_names:
            want = values[tensor_name]
            got = interpreter.get_tensor(outputs[tensor_name]["index"])
            np.testing.assert_array_equal(got[..., :want.shape[-1]], want,
                                          err_msg=f"{name} k={k} {tensor_name}")
