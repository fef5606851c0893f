"""Committed benchmark figures cannot go stale silently: every results JSON
under benchmarks/results/ records the sha256 of the sources it measured
(benchmarks/provenance.py), and this test fails when any of them changed
since, naming the command that regenerates the result."""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import provenance  # noqa: E402

RESULTS = sorted(provenance.RESULTS.glob("*.json"))


def test_there_are_results():
    assert {p.name for p in RESULTS} >= {"cortex_m4.json", "kernels.json",
                                         "knapsack.json", "training_step.json"}


@pytest.mark.parametrize("result", RESULTS, ids=lambda p: p.name)
def test_result_matches_the_sources_it_measured(result):
    problems = provenance.stale(result)
    assert not problems, "\n".join(problems)


def test_a_changed_source_is_reported_with_the_command(tmp_path, monkeypatch):
    source = tmp_path / "src.txt"
    source.write_text("one")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    result = provenance.stamp({}, ["src.txt"], "python make_it.py")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert provenance.stale(path) == []
    source.write_text("two")
    problems = provenance.stale(path)
    assert any("src.txt changed" in p for p in problems)
    assert problems[-1] == "regenerate with: python make_it.py"
    path.write_text(json.dumps({"figure": 1}))
    assert "no provenance entry" in provenance.stale(path)[0]
