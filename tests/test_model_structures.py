"""Structures of user models: merges, keep=, rewrites, and clear errors."""

import keras
import numpy as np
import pytest

import families
import hads_keras as hads
from hads_keras import layers as hads_layers


def _x(shape, n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + tuple(shape)).astype("float32")


def test_residual_and_se_merges_share_one_group():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="body1")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="body2")(y)
    x = keras.layers.Add(name="res_add")([x, y])
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Dense(4, activation="relu", name="se1")(s)
    s = keras.layers.Dense(8, activation="sigmoid", name="se2")(s)
    x = keras.layers.Multiply(name="mul")([x, s])
    x = x * 0.5 + 1.0  # keras.ops with scalar constants act per element
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    analysis = hads.groups(model)
    assert [g.name for g in analysis.sliceable] == ["stem", "body1", "se1"]
    stem = analysis["stem"]
    assert {m.layer for m in stem.members if m.role == "producer"} == {"stem", "body2", "se2"}
    assert {m.layer for m in stem.members if m.role == "consumer"} == {"body1", "se1", "logits"}
    # Through the merges every subnetwork is still what extraction gives.
    converted = hads.convert(model)
    nested = hads.apply(converted, hads.Plan({"stem": [8, 5, 2], "body1": [4, 3, 1],
                                              "se1": [4, 2, 1]}))
    families.assert_subnetworks_match_extraction(nested, _x((8, 8, 3)))


def test_merging_groups_of_different_layout_or_width_is_rejected():
    inputs = keras.Input((6, 6, 4))
    a = keras.layers.Conv2D(4, 1, name="a")(inputs)
    d = keras.layers.DepthwiseConv2D(1, depth_multiplier=2, name="dw")(a)  # 8 = 4 x 2
    b = keras.layers.Conv2D(8, 1, name="b")(inputs)
    x = keras.layers.Add(name="mixed_add")([d, b])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match=r"'mixed_add'.*layouts.*keep="):
        hads.groups(model)


def test_layer_reading_and_writing_its_own_group_is_one_group_kept_on_request():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, name="d0")(inputs)
    x = keras.layers.Add(name="add")([x, keras.layers.Dense(8, name="d1")(x)])
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    assert [g.name for g in hads.groups(model).sliceable] == ["d0"]
    assert not hads.groups(model, keep=["d0"]).sliceable


def test_concatenation_is_sliced_segment_by_segment():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    a = keras.layers.Conv2D(3, 1, name="branch_a")(x)
    inner = keras.layers.Concatenate(name="inner")([x, a])  # stem, branch_a
    b = keras.layers.Conv2D(5, 1, name="branch_b")(x)
    x = keras.layers.Concatenate(name="outer")([inner, b])  # flattened: 3 segments
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(x))
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    analysis = hads.groups(model)
    wiring = analysis.wiring["logits"]
    assert [(s.group, s.offset, s.channels, s.multiplier) for s in wiring.in_segments] \
        == [("stem", 0, 8, 2), ("branch_a", 8, 6, 2), ("branch_b", 14, 10, 2)]
    assert wiring.in_group is None and wiring.in_spatial == 4
    assert "dw: stem+0:4 branch_a+4:3 branch_b+7:5" in str(analysis)
    assert "bn:batchnorm+4" in [str(m) for m in analysis["branch_a"].members]
    # Costs: one term per segment, what the layers count.
    assert hads.model_costs(model)["macs"] == (
        64 * (27 * 4 + 4 * 3 + 4 * 5) + 64 * 9 * 24 + 4 * 24 * 2)
    converted = hads.convert(model)
    plan = hads.Plan({"stem": [4, 3, 1], "branch_a": [3, 1, 1],
                      "branch_b": [5, 4, 2]})
    nested = hads.apply(converted, plan)
    x = _x((8, 8, 3))
    extracted = families.assert_subnetworks_match_extraction(nested, x)
    for k, sub in enumerate(extracted):
        assert sub.get_layer("logits").kernel.shape[0] == 4 * 2 * sum(
            plan.widths(g)[k] for g in ("stem", "branch_a", "branch_b"))
    order = {g.name: np.random.default_rng(1).permutation(g.width)
             for g in analysis.sliceable}
    np.testing.assert_allclose(hads.permute_units(model, order)(x), model(x),
                               atol=1e-5, rtol=1e-5)


def test_concatenations_that_cannot_be_followed_name_the_layer_and_keep():
    def model_with(merge):
        inputs = keras.Input((8, 8, 3))
        a = keras.layers.Conv2D(4, 3, padding="same", name="branch_a")(inputs)
        b = keras.layers.Conv2D(6, 1, name="branch_b")(inputs)
        x = merge(a, b)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))

    spatial = model_with(lambda a, b: keras.layers.Concatenate(axis=2, name="concat")(
        [a, keras.layers.Conv2D(4, 1, name="branch_c")(b)]))
    with pytest.raises(ValueError, match=r"'concat'.*axis 2.*keep=\['branch_a', 'branch_c'\]"):
        hads.convert(spatial)
    converted = hads.convert(spatial, keep=["branch_a", "branch_c"])
    assert converted.get_layer("branch_a").get_config()["hads_keep"] is True
    analysis = hads.groups(converted)  # remembered by the layers
    assert [g.name for g in analysis.sliceable] == ["branch_b"]
    assert analysis["branch_a"].kept and analysis["branch_c"].kept
    x = _x((8, 8, 3))
    np.testing.assert_allclose(converted(x), spatial(x), atol=1e-6)

    def concat_plus_group(a, b):
        x = keras.layers.Concatenate(name="concat")([a, b])
        other = keras.layers.Conv2D(10, 1, name="other")(a)
        return keras.layers.Add(name="add")([x, other])
    with pytest.raises(ValueError, match=r"'add'.*concatenations of different segments"):
        hads.groups(model_with(concat_plus_group))

    inputs = keras.Input((4, 4, 3))
    a = keras.layers.Flatten()(keras.layers.Conv2D(4, 1, name="branch_a")(inputs))
    b = keras.layers.Flatten()(keras.layers.Conv2D(6, 1, name="branch_b")(inputs))
    x = keras.layers.Concatenate(name="concat")([a, b])
    flattened = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    with pytest.raises(ValueError, match=r"'concat'.*flattened.*keep=\['branch_a', 'branch_b'\]"):
        hads.groups(flattened)
    with pytest.raises(ValueError, match=r"keep=\['nope'\]"):
        hads.convert(spatial, keep=["nope"])


def test_solve_keep_gives_full_widths_and_counts_costs():
    from hads_keras import solve as solve_lib  # noqa: F401
    inputs = keras.Input((10,))
    x = keras.layers.Dense(16, activation="relu", name="a")(inputs)
    x = keras.layers.Dense(12, activation="relu", name="b")(x)
    model = hads.convert(keras.Model(inputs, keras.layers.Dense(3, name="out")(x)))
    scores = {"a": np.arange(16.0), "b": np.arange(12.0)}
    plan = hads.solve(model, scores, mac_targets=[1.0, 0.6], keep=["b"])
    assert plan.widths("b") == (12, 12)
    assert plan.widths("a")[1] < 16
    nested = hads.apply(model, plan)
    sub = hads.extract_subnetwork(nested, 1)
    assert sub.count_params() == plan.costs[1]["params"]
    macs = sum(l.kernel.shape[0] * l.kernel.shape[1] for l in sub.layers if l.weights)
    assert macs == plan.costs[1]["macs"] <= 0.6 * hads.model_costs(model)["macs"]


def test_separable_conv2d_is_rewritten_exactly():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.SeparableConv2D(8, 3, depth_multiplier=2, strides=2,
                                     padding="same", activation="relu",
                                     bias_initializer="he_normal", name="sep")(inputs)
    x = keras.layers.SeparableConv2D(4, 3, name="sep2")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    converted = hads.convert(model)
    assert type(converted.get_layer("sep_depthwise")) is hads_layers.DepthwiseConv2D
    assert type(converted.get_layer("sep")) is hads_layers.Conv2D
    x = _x((9, 9, 3))
    np.testing.assert_allclose(converted(x), model(x), atol=1e-6)
    # Costs: depthwise 5*5*9*3*2 + pointwise 5*5*6*8, then the second pair, then Dense.
    macs = 25 * 9 * 6 + 25 * 6 * 8 + 9 * 9 * 8 + 9 * 8 * 4 + 36 * 2
    assert hads.model_costs(converted)["macs"] == macs
    assert hads.model_costs(converted)["params"] == model.count_params()


def test_fixed_layers_with_weights_are_counted_not_ignored():
    inputs = keras.Input((20, 6))
    x = keras.layers.LSTM(5, name="lstm")(inputs)   # on the model input: kept whole
    x = keras.layers.Dense(8, name="d")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    costs = hads.model_costs(hads.convert(model))
    assert costs["params"] == model.count_params()
    assert costs["macs"] == 20 * 4 * (6 + 5) * 5 + 5 * 8 + 8 * 2
    inputs = keras.Input((20, 6))
    x = keras.layers.Dense(8, name="d")(inputs)
    x = keras.layers.LSTM(5, name="lstm")(x)
    with pytest.raises(ValueError, match=r"'lstm'.*keep=\['d'\]"):
        hads.convert(keras.Model(inputs, keras.layers.Dense(2)(x)))
    inputs = keras.Input((20, 6))
    x = keras.layers.Conv1D(8, 3, name="c")(inputs)
    x = keras.layers.Conv1D(4, 3, groups=2, name="grouped")(x)
    with pytest.raises(ValueError, match=r"'grouped'.*grouped convolution.*keep=\['c'\]"):
        hads.convert(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x))))


def test_reshape_keeping_channels_and_of_fixed_groups_is_accepted():
    # keras.applications.MobileNet's classifier: GAP -> Reshape(1, 1, C) ->
    # Conv2D(classes) -> Reshape(classes,) -> softmax.
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Reshape((1, 1, 8), name="reshape_1")(x)
    x = keras.layers.Conv2D(4, 1, name="preds")(x)
    x = keras.layers.Reshape((4,), name="reshape_2")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    converted = hads.convert(model)
    assert [g.name for g in hads.groups(converted).sliceable] == ["conv"]
    nested = hads.apply(converted, hads.Plan({"conv": [8, 3]}))
    x = _x((8, 8, 3))
    nested.set_subnetwork(1)
    want = hads.extract_subnetwork(nested, 1)(x)
    np.testing.assert_allclose(nested(x), want, atol=1e-6)
    with hads.static_subnetwork(1):  # narrow tensors pass the Reshape
        np.testing.assert_allclose(nested.hads_network(x), want, atol=1e-6)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.Reshape((6, 48), name="regroup")(x)
    with pytest.raises(ValueError, match=r"'regroup'.*keep=\['conv'\]"):
        hads.convert(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x))))


def test_batchnorm_on_the_input_uses_one_row_everywhere():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    x = keras.layers.BatchNormalization(name="input_bn")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="a")(x)
    x = keras.layers.BatchNormalization(name="a_bn")(x)
    model = hads.convert(keras.Model(inputs, keras.layers.Dense(3, name="out")(x)))
    nested = hads.apply(model, hads.Plan({"a": [16, 9, 4]}))
    nested.compile("adam", "mse")
    x = _x((12,), n=64) * 3 + 2
    nested.fit(x, np.zeros((64, 3)), epochs=2, batch_size=16, verbose=0)
    stats = nested.hads_network.get_layer("input_bn").moving_mean.numpy()
    assert not np.allclose(stats[0], 0)       # row 0 trained by all subnetworks
    np.testing.assert_array_equal(stats[1], stats[2])  # the others are unused
    a_bn = nested.hads_network.get_layer("a_bn").moving_mean.numpy()
    assert not np.allclose(a_bn[1, :9], a_bn[2, :9])  # per subnetwork below
    for k in range(3):
        nested.set_subnetwork(k)
        np.testing.assert_allclose(nested(x[:8]), hads.extract_subnetwork(nested, k)(x[:8]),
                                   atol=1e-5)
