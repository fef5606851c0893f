"""The `hads` command: help, report, and one-line errors for bad input."""

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import hads_keras as hads
from hads_keras import cli

import families

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _hads(*args, env=None):
    """`python -m hads_keras.cli ARGS` in a fresh process (as a user runs it)."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300,
        cwd=REPO, env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


def test_help_lists_the_subcommands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for command in ("solve", "report", "export", "demo", "--verbose"):
        assert command in out


# What the `hads` console script runs, reporting whether TensorFlow or Keras
# were imported by the time the process ends.
_CONSOLE_SCRIPT = """
import atexit, sys
sys.argv = ["hads"] + sys.argv[1:]
atexit.register(lambda: print("heavy:", sorted({"tensorflow", "keras"} & set(sys.modules)),
                              file=sys.__stdout__))
from hads_keras.cli import main
sys.exit(main())
"""


def test_help_and_argument_errors_do_not_import_tensorflow():
    for args in (["--help"], ["solve", "--help"], ["export", "--help"],
                 ["solve", "m.keras", "--importance", "l1", "--mac-targets", "x"]):
        out = _hads("-c", _CONSOLE_SCRIPT, *args)
        assert "heavy: []" in out.stdout, (args, out.stdout[-300:], out.stderr[-300:])
        # python -m hads_keras.cli: no import statement of either runs.
        out = _hads("-X", "importtime", "-m", "hads_keras.cli", *args)
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "numpy" in imported
        assert not {"tensorflow", "keras"} & imported, args
    assert out.returncode == 2 and "--mac-targets: 'x' is not a comma-separated" in out.stderr


def test_solve_help_documents_importance_targets_and_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["solve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("one array per sliceable group, keyed by the group's name",
                  "numbers above 1 are absolute MACs",
                  "Subnetwork 0 is always the full network",
                  "--min-width N smallest slicing point", "--multiple-of N slicing points",
                  "--seed SEED seed of --importance random",
                  "--method {bottom_up,top_down,joint} bottom_up (the paper's"):
        assert words in text, words


@pytest.fixture(scope="module")
def saved_dnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.keras"
    families.dnn(hads=False).save(path)
    return path


def _one_line_error(capsys, code, status, *words):
    captured = capsys.readouterr()
    assert code == status
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_solve_with_a_missing_or_corrupt_model(tmp_path, capsys):
    code = cli.main(["solve", str(tmp_path / "missing.keras"), "--importance", "l1"])
    _one_line_error(capsys, code, 2, "hads solve:", "missing.keras", "does not exist")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    code = cli.main(["solve", str(text), "--importance", "l1"])
    _one_line_error(capsys, code, 2, "notes.keras", "not a readable .keras file")
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("config.json", "{")
    code = cli.main(["solve", str(broken), "--importance", "l1"])
    _one_line_error(capsys, code, 2, "broken.keras", "not a readable .keras file")


def test_solve_with_bad_importance_targets_and_out(saved_dnn, tmp_path, capsys, monkeypatch):
    solve_module = sys.modules["hads_keras.solve"]

    def no_solve(*a, **k):
        raise AssertionError("the flags must be checked before solving")

    code = cli.main(["solve", str(saved_dnn), "--importance", str(tmp_path / "x.npz")])
    _one_line_error(capsys, code, 2, "--importance", "x.npz", "does not exist")
    bad = tmp_path / "bad.npz"
    bad.write_text("text")
    code = cli.main(["solve", str(saved_dnn), "--importance", str(bad)])
    _one_line_error(capsys, code, 2, "--importance", "bad.npz", "not an .npz")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["solve", str(saved_dnn), "--importance", "l1", "--mac-targets", "1,a"])
    assert exit_.value.code == 2 and "--mac-targets" in capsys.readouterr().err
    code = cli.main(["solve", str(saved_dnn), "--importance", "l1", "--mac-targets",
                     "1.5,0.5", "--out", str(tmp_path / "p.json")])
    _one_line_error(capsys, code, 2, "1.5 is neither a fraction")
    monkeypatch.setattr(solve_module, "solve", no_solve)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker / "plan.json", tmp_path):
        code = cli.main(["solve", str(saved_dnn), "--importance", "l1", "--out", str(out)])
        _one_line_error(capsys, code, 2, "--out", str(out))
    code = cli.main(["solve", str(saved_dnn), "--importance", "l1", "--min-width", "0"])
    _one_line_error(capsys, code, 2, "--min-width 0")


def test_solve_cli_writes_a_plan_from_an_npz(saved_dnn, tmp_path, capsys):
    import keras

    scores = hads.random_importance(keras.saving.load_model(saved_dnn), seed=3)
    np.savez(tmp_path / "importance.npz", **scores)
    out = tmp_path / "plan.json"
    assert cli.main(["solve", str(saved_dnn), "--importance",
                     str(tmp_path / "importance.npz"), "--mac-targets", "0.5",
                     "--out", str(out)]) == 0
    plan = hads.Plan.load(out)
    assert plan.num_subnetworks == 2  # the full network came first
    model = keras.saving.load_model(saved_dnn)
    direct = hads.solve(model, scores, mac_targets=[0.5])
    assert plan.costs == direct.costs
    assert all(plan.widths(g) == direct.widths(g) for g in direct.groups)
    assert f"plan written to {out}" in capsys.readouterr().out


def test_report_with_a_missing_or_corrupt_file(tmp_path, capsys):
    code = cli.main(["report", str(tmp_path / "plan.json")])
    _one_line_error(capsys, code, 2, "hads report:", "plan.json", "does not exist")
    (tmp_path / "bad.json").write_text('{"groups": {"fc1": [4, 2]}}')
    code = cli.main(["report", str(tmp_path / "bad.json")])
    _one_line_error(capsys, code, 2, "bad.json", "not a valid HADS plan: 'groups' "
                                     "must be a list")
    (tmp_path / "m.keras").write_bytes(b"\x00" * 64)
    code = cli.main(["report", str(tmp_path / "m.keras")])
    _one_line_error(capsys, code, 2, "m.keras", "not a readable .keras file")


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


def test_native_log_lines_are_dropped_and_python_messages_kept(capfd):
    with cli.native_stderr_dropped():
        os.write(2, b"I0000 a C++ log line\n")
        print("a Python warning", file=sys.stderr)
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "C++ log line" not in err
    assert "a Python warning" in err and "after" in err


def test_hads_prints_only_what_the_user_asked_for(tmp_path):
    """A fresh `hads report model.keras` loads TensorFlow: none of its log
    lines reach the terminal unless --verbose."""
    nested = hads.apply(families.dnn(), hads.Plan(families.PLANS["dnn"]))
    nested.save(tmp_path / "nested.keras")
    out = _hads("-m", "hads_keras.cli", "report", str(tmp_path / "nested.keras"),
                env={"TF_CPP_MIN_LOG_LEVEL": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("model: nested_")
    assert out.stderr.strip() == "", out.stderr
