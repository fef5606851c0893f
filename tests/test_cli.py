"""The `hads` command: help and report."""

import hads_keras as hads
from hads_keras import cli

import families


def test_help_lists_the_subcommands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for command in ("solve", "report"):
        assert command in out


def test_report_of_a_nested_model_and_of_a_plan(tmp_path, capsys):
    nested = hads.apply(families.cnn(), hads.Plan(families.PLANS["cnn"]))
    nested.set_subnetwork(1)
    path = tmp_path / "nested.keras"
    nested.save(path)
    assert cli.main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "conv2:producer fc1:consumer@6pos" in out
    assert "(active: 1)" in out
    costs = hads.subnetwork_costs(nested, nested.plan)
    assert f"{costs[3]['macs']:,}" in out
    plan_path = tmp_path / "plan.json"
    nested.plan.save(plan_path)
    assert cli.main(["report", str(plan_path)]) == 0
    assert "fc1" in capsys.readouterr().out
