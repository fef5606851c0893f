"""Latency per subnetwork in the nested model's metadata and the sketch."""

import math

import keras
import pytest

import families
import hads_keras as hads
from hads_keras import latency
from hads_keras.export import arduino, metadata


def _model(filters=8):
    return families.conv_toy(filters)


def _measure(layer, widths):
    # Deterministic "measurements": bilinear, so the table is exact anywhere.
    return 2.5 * math.prod(widths) + len(layer)


def _table(model):
    return latency.build_table(model, "toy-board", "us", _measure, points=3, constant=7.0)


@pytest.fixture(scope="module")
def exported():
    model = _model()
    plan = hads.uniform_plan(model, [1.0, 0.5, 0.25])
    nested = hads.apply(model, plan)
    data = keras.random.normal((8, 8, 8, 3), seed=1)
    return model, nested, hads.export.tflite_nested(nested, None, data,
                                                    latency_table=_table(model))


def test_the_metadata_holds_the_table_at_every_subnetwork(exported):
    model, nested, tflite = exported
    stored = metadata.read_metadata(tflite)
    table, plan = _table(model), nested.plan
    expected = [table.cost({g: plan.width(g, k) for g in plan.groups})
                for k in range(plan.num_subnetworks)]
    assert [c["latency"] for c in stored["costs"]] == pytest.approx(expected)
    assert expected[0] > expected[1] > expected[2] > 7.0
    assert stored["info"]["latency"] == {"target": "toy-board", "unit": "us",
                                         "source": "latency_table"}
    assert stored["costs"][1]["macs"] == plan.costs[1]["macs"]   # unchanged beside it
    assert metadata.verify_crc(tflite)


def test_the_sketch_cost_table_takes_the_latency_rounded_up(exported):
    _, _, tflite = exported
    header = arduino.model_header(tflite)
    stored = metadata.read_metadata(tflite)["costs"]
    assert "#define HADS_MODEL_HAS_LATENCY 1" in header
    assert "hads::LatencyUnit::kMicroseconds};" in header
    for cost in stored:
        assert f"{cost['macs']}u, " in header
        assert f", {math.ceil(cost['latency'])}u}}," in header


def test_a_plan_solved_with_latency_carries_it_and_a_half_one_is_refused():
    model = _model()
    uniform = hads.uniform_plan(model, [1.0, 0.5])
    widths = {g: uniform.widths(g) for g in uniform.groups}
    costs = [dict(c, latency=100.0 / (k + 1)) for k, c in enumerate(uniform.costs)]
    info = {"latency": {"target": "cortex-m4-qemu", "unit": "instructions"}}
    found = metadata.subnetwork_latency(model, hads.Plan(widths, costs=costs, info=info))
    assert found == ([100.0, 50.0], {"target": "cortex-m4-qemu",
                                     "unit": "instructions", "source": "plan"})
    assert metadata.subnetwork_latency(model, uniform) is None
    with pytest.raises(ValueError, match="carry 'latency' for only some subnetworks"):
        metadata.subnetwork_latency(model, hads.Plan(
            widths, costs=[costs[0], uniform.costs[1]], info=info))
    with pytest.raises(ValueError, match="info\\['latency'\\]"):
        metadata.subnetwork_latency(model, hads.Plan(widths, costs=costs))


def test_a_table_for_another_model_is_refused_by_the_exporter(tmp_path):
    model = _model()
    path = _table(_model(filters=7)).save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="fingerprints differ"):
        metadata.subnetwork_latency(model, hads.uniform_plan(model, [1.0, 0.5]), path)
