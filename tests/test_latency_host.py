"""Host latency tables (LiteRT): shape, values, fingerprint, the sliced
one-operator models, the command. No timing is asserted."""

import math

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import families
import hads_keras as hads
from hads_keras import cli, latency, latency_host


def _model(filters=8):
    return families.conv_toy(filters, flatten_head=True)


@pytest.fixture(scope="module")
def table():
    return latency_host.host_table(_model(), points=2, repeats=5, warmup=1)


def test_the_table_covers_every_sliced_layer_on_its_grid(table):
    model = _model()
    assert (table.target, table.unit) == ("host-litert", "us")
    assert table.model["fingerprint"] == latency.model_fingerprint(model)
    assert [(t.layer, t.groups) for t in table.layers.values()] == \
        latency.latency_layers(model)
    full = {"conv": 8, "pw": 6, "fc": 5}
    for term in table.layers.values():
        assert [a.tolist() for a in term.axes] == [[1, full[g]] for g in term.groups]
        assert term.values.shape == tuple(len(a) for a in term.axes)
        assert np.all(np.isfinite(term.values)) and np.all(term.values >= 0)
    assert math.isfinite(table.constant) and table.constant >= 0
    source = table.source
    assert source["repeats"] == 5 and source["threads"] == 1
    for key in ("overhead_us", "full_model_us"):
        assert math.isfinite(source[key]) and source[key] > 0
    assert 0 <= source["spread"]["median"] <= source["spread"]["max"]
    # The table predicts one end-to-end invoke: at full width it is the full
    # model's measured median (constant = full - layers, unless clipped at 0).
    assert table.cost(full) >= source["full_model_us"] - 1e-9
    table.check_model(model)
    assert len(table.terms(model)) == len(table.layers) + (table.constant > 0)


def test_the_table_round_trips_and_is_refused_for_another_model(table, tmp_path):
    loaded = latency.LatencyTable.load(table.save(tmp_path / "host.json"))
    assert loaded.to_dict() == table.to_dict()
    with pytest.raises(ValueError, match="fingerprints differ"):
        loaded.check_model(_model(filters=7))
    with pytest.raises(ValueError, match="measured on target 'host-litert'"):
        loaded.check_target("cortex-m4-qemu")


@pytest.fixture(scope="module")
def operators():
    model = _model()
    full = latency_host._full_int8(model, None)
    return {layer: latency_host._one_operator(full, index)
            for layer, index in latency_host._layer_operators(model, full).items()}


@pytest.mark.parametrize("layer, active_in, active_out", [
    ("conv", None, 5), ("dw", 3, 3), ("pw", 3, 4)])
def test_a_sliced_operator_computes_the_prefix_of_the_full_operator(
        operators, layer, active_in, active_out):
    """The cut model is the layer at smaller widths: with the inactive inputs
    at the zero point, the full operator's first outputs are the cut one's."""
    op_bytes = operators[layer]
    cut = latency_host._sliced_operator(op_bytes, active_in, active_out)

    def run(data, fill):
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        x = np.full(detail["shape"], detail["quantization"][1], np.int8)
        x[..., :fill.shape[-1]] = fill
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    rng = np.random.default_rng(0)
    shape = Interpreter(model_content=cut).get_input_details()[0]["shape"]
    sample = rng.integers(-128, 128, shape).astype(np.int8)
    small = run(cut, sample)
    assert small.shape[-1] == active_out
    np.testing.assert_array_equal(run(op_bytes, sample)[..., :active_out], small)


def test_subnetwork_latencies_time_every_subnetwork_model():
    model = _model()
    plan = hads.uniform_plan(model, [1.0, 0.5])
    measured = latency_host.subnetwork_latencies(hads.apply(model, plan), repeats=3,
                                                 warmup=1)
    assert (measured["target"], measured["unit"]) == ("host-litert", "us")
    assert len(measured["us"]) == 2 and all(t > 0 for t in measured["us"])


def test_the_command_writes_a_table_and_refuses_bad_flags(tmp_path, capsys):
    path = tmp_path / "toy.keras"
    _model().save(path)
    assert cli.main(["latency", "host", str(path), "--points", "1"]) == 2
    assert "--points 1: give 2 or more" in capsys.readouterr().err
    assert cli.main(["latency", "host", str(path), "--points", "2",
                     "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "toy.host-litert.json"
    assert f"latency table written to {written}" in out
    latency.LatencyTable.load(written).check_model(_model())
