"""A layer writing into the group it reads (quadratic cost in one slicing
point): the projection of a depthwise-only block with a residual Add
(EfficientNet block1, MobileNetV3Large's first block). The projection reads
the block input's channels through the depthwise convolution and its output
is added to the block input, so one slicing point s sets both its input and
its output width: MACs = H * W * s * s."""

import keras
import numpy as np
import pytest

import hads_keras as hads
from hads_keras import costs, export
from hads_keras.export import checks, flatbuffer, materialize

import families
import model_zoo


def _block():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.ReLU()(y)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
    s = keras.layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = keras.layers.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    y = keras.layers.Multiply(name="se_mul")([y, s])
    y = keras.layers.Conv2D(8, 1, name="project")(y)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="block")


def _x(n=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype("float32")


@pytest.fixture(scope="module")
def block():
    keras.utils.set_random_seed(0)
    return hads.convert(_block())


def test_the_projection_reads_and_writes_one_group_and_costs_its_square(block):
    analysis = hads.groups(block)
    project = analysis.wiring["project"]
    assert project.in_group == project.out_group == "stem"
    terms = [t for t in costs.cost_terms(block) if t.layer == "project"
             and t.resource == "macs"]
    assert [(t.coef, t.groups) for t in terms] == [(64.0, ("stem", "stem"))]
    assert hads.model_costs(block) == model_zoo.independent_costs(_block())
    plan = hads.Plan({"stem": [8, 5, 2], "se_reduce": [4, 3, 1]})
    nested = hads.apply(block, plan)
    for k, cost in enumerate(hads.subnetwork_costs(nested, plan)):
        assert cost == model_zoo.independent_costs(hads.extract_subnetwork(nested, k))


def test_nested_equals_extracted_and_permutation_keeps_the_function(block):
    x = _x()
    nested = hads.apply(block, hads.Plan({"stem": [8, 5, 2], "se_reduce": [4, 3, 1]}))
    families.assert_subnetworks_match_extraction(nested, x)
    # Permuting 'stem' permutes the projection's input and output alike.
    order = {"stem": np.random.default_rng(1).permutation(8),
             "se_reduce": np.random.default_rng(2).permutation(4)}
    permuted = hads.permute_units(block, order)
    np.testing.assert_allclose(permuted(x), block(x), atol=1e-5)
    kernel = block.get_layer("project").kernel.numpy()
    np.testing.assert_array_equal(
        permuted.get_layer("project").kernel.numpy(),
        kernel[:, :, order["stem"]][..., order["stem"]])


def test_solve_apply_fit_and_nested_int8_export(block):
    x = _x(32)
    y = np.random.default_rng(3).integers(0, 3, 32)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    block.compile(keras.optimizers.Adam(1e-3), loss)
    importance = hads.TaylorImportance()
    block.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[importance])
    plan = hads.solve(block, importance, mac_targets=[1.0, 0.6, 0.3], time_limit=3.0)
    full = hads.model_costs(block)["macs"]
    for k, target in enumerate([1.0, 0.6, 0.3]):
        assert plan.costs[k]["macs"] <= target * full * (1 + 1e-9)
    assert plan.widths("stem")[-1] < 8  # the quadratic group is really sliced
    nested = hads.apply(block, plan)
    nested.compile(keras.optimizers.Adam(1e-3), loss)
    nested.fit(x, y, epochs=1, batch_size=16, verbose=0)
    nested_bytes = export.tflite_nested(nested, None, x)
    checks.check_nested(nested_bytes)
    meta = {op["layer"]: op for op in export.read_metadata(nested_bytes)["operators"]}
    assert meta["project"]["in_channels"] == meta["project"]["out_channels"] == list(
        plan.widths("stem"))
    for k in range(plan.num_subnetworks):
        standalone = materialize(nested_bytes, k)
        got = checks.run_litert(standalone, x[:2])
        want = np.asarray(hads.extract_subnetwork(nested, k)(x[:2], training=False))
        # The logits' int8 range is calibrated on the full network: a
        # narrower subnetwork's logits beyond it saturate.
        graph = flatbuffer.load(standalone).subgraphs[0]
        (scale,), (zero_point,) = flatbuffer.scales(graph.tensors[graph.outputs[0]])
        want = np.clip(want, (-128 - zero_point) * scale, (127 - zero_point) * scale)
        assert np.abs(got - want).max() <= 0.1 * np.abs(want).max() + 1e-3, k
