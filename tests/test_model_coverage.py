"""Models that users bring, through the whole pipeline (see model_zoo.py).

Per model: convert keeps the function and counts every cost; Taylor
importance during fit; solve at 100/75/50/25 % MACs; apply and a
multi-width fit; every subnetwork of the nested model equals
extract_subnetwork(k) within 1e-5 and costs what an independent count of
the extracted plain model says; a random permutation of every group leaves
the function unchanged within 1e-5; the nested int8 .tflite materializes for
every k and runs in LiteRT near the float subnetwork. (The portable kernels
are compared bit for bit with the materialized models in
tests/native/test_model_coverage_kernels.py.)
"""

import keras
import numpy as np
import pytest

import hads_keras as hads
from hads_keras import export
from hads_keras.export import checks, flatbuffer, materialize

import model_zoo

MODELS = tuple(model_zoo.BUILDERS)


def _run(model, x):
    return np.asarray(model(x, training=False))


def _output_range(model_bytes):
    """The real values the int8 output of a .tflite model can represent."""
    graph = flatbuffer.load(model_bytes).subgraphs[0]
    (scale,), (zero_point,) = flatbuffer.scales(graph.tensors[graph.outputs[0]])
    return (-128 - zero_point) * scale, (127 - zero_point) * scale


@pytest.mark.parametrize("name", MODELS)
def test_convert_keeps_the_function_and_costs_are_complete(name):
    keras.utils.set_random_seed(0)
    plain = model_zoo.BUILDERS[name]()
    x, _ = model_zoo.data_for(plain, n=4)
    converted = hads.convert(plain)
    np.testing.assert_allclose(_run(converted, x), _run(plain, x), atol=1e-5, rtol=1e-5)
    assert hads.model_costs(converted) == model_zoo.independent_costs(plain)


@pytest.mark.parametrize("name", MODELS)
def test_pipeline_end_to_end(name):
    plain, model, importance, plan, nested, (x, _) = model_zoo.pipeline(name)
    full = hads.model_costs(model)["macs"]
    assert plan.num_subnetworks == 4
    for k, target in enumerate(model_zoo.TARGETS):
        assert plan.costs[k]["macs"] <= target * full * (1 + 1e-9), (name, k)
    assert plan.costs[3]["macs"] < 0.3 * full  # the budgets are really used
    x = x[:4]
    for k in range(plan.num_subnetworks):
        sub = hads.extract_subnetwork(nested, k)
        nested.set_subnetwork(k)
        np.testing.assert_allclose(_run(nested, x), _run(sub, x), atol=1e-5,
                                   err_msg=f"{name} k={k}")
        assert model_zoo.independent_costs(sub) == plan.costs[k], (name, k)

    rng = np.random.default_rng(3)
    order = {g.name: rng.permutation(g.width) for g in hads.groups(model).sliceable}
    permuted = hads.permute_units(model, order)
    np.testing.assert_allclose(_run(permuted, x), _run(model, x), atol=1e-5, rtol=1e-5)

    nested_bytes = model_zoo.nested_export(name)
    checks.check_nested(nested_bytes)
    low, high = _output_range(nested_bytes)
    for k in range(plan.num_subnetworks):
        got = checks.run_litert(materialize(nested_bytes, k), x[:2])
        # What int8 can hold: the output range calibrated on the full network.
        want = np.clip(_run(hads.extract_subnetwork(nested, k), x[:2]), low, high)
        # int8, calibrated on the full network with random data: a loose
        # bound; exactness of the nested operators is checked bit for bit
        # against the materialized models in tests/native.
        assert np.abs(got - want).max() <= 0.25 * np.abs(want).max() + 1e-3, (name, k)


@pytest.mark.parametrize("name", ["se_toy", "inception_toy", "densenet_toy"])
def test_per_subnetwork_tflite_export(name):
    _, _, _, plan, nested, (x, _) = model_zoo.pipeline(name)
    k = plan.num_subnetworks - 1
    flat = export.tflite_subnetwork(nested, k)
    got = checks.run_litert(flat, x[:2])
    np.testing.assert_allclose(got, _run(hads.extract_subnetwork(nested, k), x[:2]),
                               atol=1e-4)
