"""`hads export` on a saved nested model."""

import numpy as np
import pytest

from hads_keras import cli, export
from test_export_fixtures import digits, trained


def test_hads_export_writes_the_artefacts(tmp_path):
    nested = trained("dnn")
    model_path = tmp_path / "dnn.keras"
    nested.save(model_path)
    _, _, x_test, y_test, rep = digits()
    np.save(tmp_path / "rep.npy", rep)
    (tmp_path / "labels.txt").write_text("\n".join(f"d{i}" for i in range(10)))
    out = tmp_path / "export"
    code = cli.main(["export", str(model_path), "--out", str(out),
                     "--representative-data", str(tmp_path / "rep.npy"),
                     "--labels", str(tmp_path / "labels.txt"),
                     "--no-per-subnetwork"])
    assert code == 0
    nested_bytes = (out / "nested.tflite").read_bytes()
    assert export.read_plan(nested_bytes).widths("fc1") == nested.plan.widths("fc1")
    assert export.read_labels(nested_bytes) == [f"d{i}" for i in range(10)]
    assert (out / "model_data.h").is_file() and (out / "model_data.cc").is_file()
    # The reloaded model exports the same accuracy as the one in memory.
    acc = export.checks.accuracy(
        export.run_litert(export.materialize(nested_bytes, 1), x_test), y_test)
    with nested.subnetwork(1):
        float_acc = export.checks.accuracy(nested.predict(x_test, verbose=0), y_test)
    assert abs(acc - float_acc) <= 0.01


def test_hads_export_bad_arguments(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "missing.keras"), "--out",
                     str(tmp_path), "--representative-data", "x.npy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hads export: model file") and "does not exist" in err
    (tmp_path / "m.keras").write_text("not a zip")
    np.save(tmp_path / "rep.npy", np.zeros((2, 3), "float32"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    # The output folder is checked before the model is even loaded.
    assert cli.main(["export", str(tmp_path / "m.keras"), "--out", str(blocker),
                     "--representative-data", str(tmp_path / "rep.npy")]) == 2
    assert "--out" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o"),
                     "--representative-data", str(tmp_path / "rep.npy")]) == 2
    assert "not a readable .keras file" in capsys.readouterr().err


def test_export_reports_only_files_it_wrote(tmp_path, monkeypatch):
    from hads_keras.export import bundle

    def failing(*args, **kwargs):
        raise ValueError("conversion failed")

    monkeypatch.setattr(bundle, "tflite_nested", failing)
    lines = []
    with pytest.raises(ValueError, match="conversion failed"):
        bundle.export_all(object(), tmp_path, None, log=lines.append)
    assert lines == [] and not (tmp_path / bundle.NESTED_FILE).exists()
