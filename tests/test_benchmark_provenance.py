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


def test_a_result_from_an_older_commit_needs_matching_history_and_readme(
        tmp_path, monkeypatch):
    import subprocess
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True,
                                    capture_output=True, text=True).stdout
    run("init", "-q")
    (tmp_path / "src.txt").write_text("measured")
    run("add", "src.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    commit = run("rev-parse", "HEAD").strip()
    (tmp_path / "src.txt").write_text("moved on")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    result = provenance.mark_measured_at({}, ["src.txt"], "python make_it.py",
                                         commit, "too long to rerun")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    problems = provenance.stale(path)  # README does not say so yet
    assert any("README" in p for p in problems)
    (tmp_path / "README.md").write_text(f"r.json: measured at {commit[:7]}\n")
    assert provenance.stale(path) == []
    tampered = dict(result["provenance"], sources={"src.txt": "0" * 64})
    path.write_text(json.dumps({"provenance": tampered}))
    assert any("does not match" in p for p in provenance.stale(path))
