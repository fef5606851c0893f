"""Latency tables: file format, interpolation, and the errors on bad input."""

import json

import keras
import numpy as np
import pytest

import families
import hads_keras as hads
from hads_keras import latency
from hads_keras.knapsack.table import TableTerm


def _model(filters=8):
    return families.conv_toy(filters)


def _bilinear(layer, widths):
    return 10.0 * float(np.prod(widths)) + 3.0


def test_interpolation_is_exact_on_grid_and_linear_between():
    term = TableTerm("c", "latency", ("a", "b"), axes=([1, 3], [2, 4, 8]),
                     values=[[1, 2, 3], [5, 6, 7]])
    assert term(1, 2) == 1.0 and term(3, 8) == 7.0
    assert term(2, 3) == pytest.approx(3.5)  # the mean of the four corners
    np.testing.assert_allclose(term.on_domains([1, 2, 3], [2, 8]),
                               [[1, 3], [3, 5], [5, 7]])


def test_layers_follow_the_groups_and_the_table_round_trips(tmp_path):
    model = _model()
    assert latency.latency_layers(model) == [
        ("conv", ("conv",)), ("dw", ("conv",)), ("pw", ("conv", "pw")), ("head", ("pw",))]
    table = latency.build_table(model, "toy", "instructions", _bilinear, points=3,
                                constant=5.0)
    loaded = latency.LatencyTable.load(table.save(tmp_path / "t.json"))
    assert loaded.to_dict() == table.to_dict()
    # Full widths are grid points, so the total is exact: 5 + 4 layers.
    assert loaded.cost({"conv": 8, "pw": 6}) == 5 + 83 + 83 + 483 + 63
    assert [t.layer for t in loaded.terms(model)][-1] == latency.CONSTANT_LAYER


def test_a_converted_model_keeps_the_fingerprint_of_its_original():
    original = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                                 keras.layers.Dense(2, name="out")])
    assert latency.model_fingerprint(original) == \
        latency.model_fingerprint(hads.convert(original))


def test_a_nested_model_keeps_the_fingerprint_with_batch_norm_rows_per_subnetwork():
    # Its BatchNormalization holds one row of statistics per subnetwork
    # ([3, C] here, [1, C] in the trained model): still the same model.
    original = keras.Sequential([
        keras.Input((6, 6, 2)), keras.layers.Conv2D(8, 3, name="c"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, name="out")])
    converted = hads.convert(original)
    nested = hads.apply(converted, hads.uniform_plan(converted, [1.0, 0.5, 0.25]))
    assert tuple(nested.network.get_layer("bn").moving_mean.shape) == (3, 8)
    assert latency.model_fingerprint(original) == latency.model_fingerprint(nested)


def test_grid_of_all_aligned_widths():
    assert latency.grid_widths(18, "all", minimum=4, multiple_of=4) == [4, 8, 12, 16, 18]
    assert latency.grid_widths(5, "all") == [1, 2, 3, 4, 5]
    assert latency.grid_widths(10, "all", minimum=3, multiple_of=4) == [3, 4, 8, 10]
    with pytest.raises(ValueError, match="points='all'"):
        latency.grid_widths(10, 1)


def test_a_table_for_another_model_is_refused():
    table = latency.build_table(_model(8), "toy", "instructions", _bilinear, points=3)
    with pytest.raises(ValueError, match="fingerprints differ.*Measure a table for this model"):
        table.terms(_model(12))


def test_a_width_outside_the_grid_is_refused_naming_layer_and_width():
    model = _model()
    table = latency.build_table(model, "toy", "instructions", _bilinear,
                                grids={"conv": [4, 8], "pw": [2, 6]})
    with pytest.raises(ValueError, match=r"layer 'conv' was measured at widths 4..8.*not at 2"):
        table.cost({"conv": 2, "pw": 6})


def test_another_target_is_refused():
    table = latency.build_table(_model(), "cortex-m4-qemu", "instructions", _bilinear, points=2)
    table.check_target("cortex-m4-qemu")
    with pytest.raises(ValueError, match="measured on target 'cortex-m4-qemu', not 'host'"):
        table.check_target("host")


@pytest.mark.parametrize("change, message", [
    (lambda d: d["layers"][0]["cost"].__setitem__(0, float("nan")), "finite and >= 0"),
    (lambda d: d["layers"][0]["cost"].__setitem__(0, -1.0), "finite and >= 0"),
    (lambda d: d.__setitem__("unit", "ms"), "unit must be one of"),
    (lambda d: d.__setitem__("version", 99), "newer than this hads_keras"),
    (lambda d: d.__setitem__("format", "other"), "not a HADS latency table"),
    (lambda d: d["layers"][0]["widths"].__setitem__(0, [8, 4]), "strictly increasing"),
    (lambda d: d["layers"][0].pop("cost"), "missing keys"),
    (lambda d: d["layers"].append(dict(d["layers"][0])), "appears twice"),
    (lambda d: d.__setitem__("constant", float("inf")), "'constant' must be a finite"),
])
def test_bad_files_get_clear_errors(tmp_path, change, message):
    data = latency.build_table(_model(), "toy", "cycles", _bilinear, points=2).to_dict()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as error:
        latency.LatencyTable.load(path)
    assert "bad.json" in str(error.value)


def test_a_kept_group_is_evaluated_at_its_full_width():
    model = _model()
    table = latency.build_table(model, "toy", "instructions", _bilinear, points=3)
    kept = hads.convert(keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, name="conv"),
        keras.layers.DepthwiseConv2D(3, name="dw"), keras.layers.Conv2D(6, 1, name="pw"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4, name="head")]),
        keep=["conv"])
    terms = {t.layer: t for t in table.terms(kept)}
    assert terms["pw"].groups == ("pw",)
    assert terms["pw"](6) == table.layers["pw"](8, 6)
    # keep= given to the solver, as hads.solve passes it, gives the same terms.
    assert {t.layer: t.groups for t in table.terms(model, keep=["conv"])} == \
        {t.layer: t.groups for t in terms.values()}
