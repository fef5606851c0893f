"""The portable HADS kernels on nested models with residual Add,
squeeze-and-excite Multiply, Conv1D and an Inception-style concatenation
(tests/model_zoo.py), bit for bit.

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


@pytest.mark.parametrize("name", ["resnet8", "se_toy", "conv1d_kws", "inception_toy"])
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
