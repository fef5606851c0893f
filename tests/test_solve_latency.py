"""hads_keras.solve with latency targets from a latency table: budgets in
the table's unit, alone or with MAC targets, and the errors."""

import json

import numpy as np
import pytest

import families
import hads_keras as hads
from hads_keras import latency


def _cost_model(model):
    """A stand-in for a measured table: instructions ~ 2 per MAC plus 40 per
    output channel, so latency is not proportional to MACs."""
    macs = {t.layer: t for t in hads.costs.cost_terms(model, ("macs",))}

    def measure(layer, widths):
        term = macs[layer]
        value = term.coef * float(np.prod(widths))
        return 2.0 * value + 40.0 * widths[-1]
    return measure


@pytest.fixture(scope="module")
def ds_cnn():
    model = families.ds_cnn(hads=True)
    table = latency.build_table(model, "toy-m4", "instructions", _cost_model(model),
                                points=3, constant=500.0)
    return model, table, hads.random_importance(model, seed=0)


def test_latency_plan_meets_every_target_in_the_table(ds_cnn, tmp_path):
    model, table, scores = ds_cnn
    full = table.cost({g: w for g, w in hads.costs.full_widths(model).items()})
    plan = hads.solve(model, scores, latency_targets=[1.0, 0.6, 0.3],
                      latency_table=table.save(tmp_path / "t.json"))
    assert plan.num_subnetworks == 3
    assert plan.info["latency"]["unit"] == "instructions"
    assert plan.info["latency"]["target"] == "toy-m4"
    for k, target in enumerate([1.0, 0.6, 0.3]):
        widths = {g: plan.widths(g)[k] for g in plan.groups}
        measured = table.cost(widths)  # the table itself, not the solver's sum
        assert plan.costs[k]["latency"] == pytest.approx(measured, rel=1e-12)
        assert measured <= target * full * (1 + 1e-12)
    assert plan.costs[2]["latency"] > 0.25 * full  # the budget is used


def test_latency_with_mac_targets_and_absolute_budgets(ds_cnn):
    model, table, scores = ds_cnn
    full = table.cost(hads.costs.full_widths(model))
    plan = hads.solve(model, scores, mac_targets=[0.7, 0.4],
                      latency_targets=[f"{0.6 * full:.0f} instructions", 0.35],
                      latency_table=table)
    full_macs = plan.costs[0]["macs"]
    assert plan.costs[1]["macs"] <= 0.7 * full_macs
    assert plan.costs[1]["latency"] <= 0.6 * full + 1
    assert plan.costs[2]["macs"] <= 0.4 * full_macs
    assert plan.costs[2]["latency"] <= 0.35 * full


def test_latency_bad_input_is_named(ds_cnn, tmp_path):
    model, table, scores = ds_cnn
    with pytest.raises(ValueError, match="latency_targets needs latency_table"):
        hads.solve(model, scores, latency_targets=[0.5])
    with pytest.raises(ValueError, match="without latency_targets"):
        hads.solve(model, scores, mac_targets=[0.5], latency_table=table)
    with pytest.raises(ValueError, match="strictly decreasing"):
        hads.solve(model, scores, latency_targets=[0.5, 0.7], latency_table=table)
    with pytest.raises(ValueError, match="'20ms'.*in ms.*measures instructions"):
        hads.solve(model, scores, latency_targets=["20ms"], latency_table=table)
    with pytest.raises(ValueError, match="in cycles.*measures instructions"):
        hads.solve(model, scores, latency_targets=["1e4 cycles"], latency_table=table)
    other = families.ds_cnn(hads=True, channels=6)
    with pytest.raises(ValueError, match="fingerprints differ"):
        hads.solve(other, hads.random_importance(other), latency_targets=[0.5],
                   latency_table=table)
    data = table.to_dict()
    data["layers"][0]["cost"] = (np.array(data["layers"][0]["cost"]) * np.nan).tolist()
    (tmp_path / "nan.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="nan.json.*finite and >= 0"):
        hads.solve(model, scores, latency_targets=[0.5],
                   latency_table=tmp_path / "nan.json")
    coarse = latency.build_table(model, "toy-m4", "instructions", _cost_model(model),
                                 points=3, minimum=3)
    with pytest.raises(ValueError, match="measured at widths 3..8.*may use widths 1..8"):
        hads.solve(model, scores, latency_targets=[0.5], latency_table=coarse)


def test_solve_cli_latency_flags(tmp_path, capsys):
    from hads_keras import cli
    model = families.ds_cnn(hads=False)
    path = tmp_path / "model.keras"
    model.save(path)
    table = latency.build_table(model, "toy-m4", "instructions", _cost_model(model),
                                points=3)
    table.save(tmp_path / "t.json")
    out = tmp_path / "plan.json"
    assert cli.main(["solve", str(path), "--importance", "l1", "--latency-table",
                     str(tmp_path / "t.json"), "--latency_targets", "1,0.5",
                     "--out", str(out)]) == 0
    plan = hads.Plan.load(out)
    full = table.cost(hads.costs.full_widths(model))
    assert plan.num_subnetworks == 2
    assert plan.costs[1]["latency"] <= 0.5 * full and "macs" in plan.costs[1]
    capsys.readouterr()
    code = cli.main(["solve", str(path), "--importance", "l1",
                     "--latency-targets", "0.5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--latency-targets and --latency-table go together" in err
    code = cli.main(["solve", str(path), "--importance", "l1", "--latency-table",
                     str(tmp_path / "t.json"), "--latency-targets", "20ms",
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "measures instructions" in err
