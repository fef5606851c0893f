"""`hads demo` end to end (tiny epochs), the few-shot helper and the plots."""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from hads_keras import fewshot, plots

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _readme_demo_files():
    """The file names the README's demo section lists (one bullet each)."""
    text = README.read_text()
    section = text[text.index("## The demo"):]
    section = section[:section.index("\n## ", 1)]
    listing = section[section.index("holds:"):]
    listing = listing[:listing.index("\n\n", listing.index("\n- "))]
    return re.findall(r"^- `([^`]+)`", listing, re.M)


def test_demo_end_to_end(tmp_path, capsys):
    import keras

    import hads_keras as hads
    from hads_keras import cli, demo

    out = tmp_path / "demo"
    code = cli.main(["demo", "--model", "dnn", "--epochs", "2",
                     "--finetune-epochs", "1", "--seed", "3", "--out", str(out),
                     "--few-shot", "20", "--method", "top_down", "--no-export", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("nested.keras", "plan.json", "plan_uniform.json",
                 "plan_l1.json", "plan_random.json", "results.json",
                 "results.txt", "accuracy_vs_macs.png", "slicing_points.png"):
        assert (out / name).stat().st_size > 0, name
    # The README lists exactly what the demo writes (export/ is skipped here).
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    assert sorted(_readme_demo_files()) == sorted(demo.OUTPUT_FILES)
    assert written == sorted(set(demo.OUTPUT_FILES) - {"export/"})
    results = json.loads((out / "results.json").read_text())
    assert results["bn_calibration"] is True
    for r in results["methods"].values():
        # The dnn has no BatchNormalization: recalibration changes nothing.
        assert r["accuracy_before_finetuning_bn_calibrated"] == pytest.approx(
            r["accuracy_before_finetuning"], abs=1e-6)
    assert "without -> with BN recalibration" in (out / "results.txt").read_text()
    assert results["seed"] == 3 and results["model"] == "dnn"
    assert results["method"] == "top_down"
    assert results["few_shot"] == 20 and "fine-tuning on 20 samples" in printed
    assert set(results["methods"]) == {"HADS", "uniform", "L1", "random"}
    full_macs = results["methods"]["HADS"]["macs"][0]
    for method, r in results["methods"].items():
        assert r["macs"][0] == full_macs
        for k, target in enumerate(demo.MAC_TARGETS):
            assert r["macs"][k] <= target * full_macs * 1.0001, (method, k)
            assert 0.0 <= r["accuracy"][k] <= 1.0
    # The table shows every subnetwork, MACs in % and each baseline.
    table = (out / "results.txt").read_text()
    assert "uniform acc" in table and "random acc" in table
    assert table.splitlines()[0] in printed
    # The saved model reloads with the plan and gives the reported accuracy.
    nested = keras.models.load_model(out / "nested.keras")
    assert nested.plan == hads.Plan.load(out / "plan.json").without_order()
    _, x_test, _, y_test = demo.load_digits_split()
    nested.set_subnetwork(3)
    accuracy = np.mean(nested.predict(x_test, verbose=0).argmax(-1) == y_test)
    assert accuracy == pytest.approx(results["methods"]["HADS"]["accuracy"][3],
                                     abs=1e-6)
    # Without `import hads_keras` Keras cannot find the classes (it imports
    # only its own packages while loading); the README says so, and Keras's
    # message names the module to import.
    load = subprocess.run(
        [sys.executable, "-c", "import keras, sys; keras.saving.load_model(sys.argv[1])",
         str(out / "nested.keras")], capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert load.returncode != 0
    assert "Could not locate class 'NestedModel'" in load.stderr
    assert "'module': 'hads_keras.training'" in load.stderr
    assert "import hads_keras" in README.read_text().split("## The demo")[0]


def test_demo_with_latency_targets_and_a_memory_limit(tmp_path):
    """--latency-targets on a table measured now, --memory-limit below the
    full network: every plan meets both, the latency is measured afterwards
    and plotted, and the export's TFLite Micro arenas fit the limit."""
    from hads_keras import budgets, cli, demo, memory

    full_arena = memory.planned_arena(demo.build_model("ds_cnn"))
    limit = int(0.8 * full_arena)
    out = tmp_path / "demo"
    code = cli.main(["demo", "--epochs", "1", "--finetune-epochs", "0",
                     "--out", str(out), "--quiet", "--latency_targets", "1,0.6,0.3",
                     "--memory_limit", str(limit)])
    assert code == 0
    for name in demo.LATENCY_FILES + ("export/",):
        assert (out / name.rstrip("/")).exists(), name
    readme = README.read_text()
    assert all(f"`{name}`" in readme for name in demo.LATENCY_FILES)
    results = json.loads((out / "results.json").read_text())
    latency = results["latency"]
    qemu = budgets._qemu_available()
    assert latency["target"] == ("cortex-m4-qemu" if qemu else "host-litert")
    assert set(results["methods"]) == {"HADS", "uniform", demo.MAC_BUDGET_LABEL,
                                       "L1", "random"}
    assert results["target_labels"] == [
        f"{p} % latency, <= {limit:,} B" for p in (100, 60, 30)]
    for method, r in results["methods"].items():
        assert len(r["latency"]) == 3 and len(r["accuracy"]) == 3
        assert all(b <= limit for b in r["planned_arena_bytes"]), method
        if method == demo.MAC_BUDGET_LABEL:
            continue
        for k, target in enumerate((1.0, 0.6, 0.3)):   # in the table
            assert r["latency_table_predicted"][k] <= target * latency["full"] * (1 + 1e-9)
    hads = results["methods"]["HADS"]
    if qemu:   # deterministic: the table meets its targets on the probe within 2 %
        for k, target in enumerate((1.0, 0.6, 0.3)):
            assert hads["latency"][k] <= target * latency["full"] * 1.02, k
    # The full network is over the limit: subnetwork 0 is smaller.
    assert hads["macs"][0] < results["full_macs"]
    check = results["memory"]
    assert check["fits"] and check["limit"] == limit
    assert check["tflm_arena_head_bytes"] == hads["planned_arena_bytes"]
    text = (out / "results.txt").read_text()
    assert f"memory limit {limit:,} B: every subnetwork fits" in text
    assert "latency %" in text and latency["how"] in text


def test_demo_budget_flags_reject_bad_values(capsys):
    from hads_keras import cli
    assert cli.main(["demo", "--memory-limit", "12 parsecs"]) == 2
    assert "--memory-limit '12 parsecs': give bytes" in capsys.readouterr().out
    assert cli.main(["demo", "--latency-targets", "1,,0.5"]) == 2
    assert "--latency-targets '1,,0.5'" in capsys.readouterr().out
    assert cli.main(["demo", "--mac-targets", "1,half"]) == 2
    assert "'half' is neither a number" in capsys.readouterr().out


def test_demo_export_paths_are_json_strings(tmp_path, monkeypatch):
    """results.json holds C array paths as lists of strings, not a repr."""
    import hads_keras.export
    from hads_keras import demo

    def fake_export_all(nested, out_dir, *args, **kwargs):
        out = pathlib.Path(out_dir)
        return {"nested": out / "nested.tflite",
                "c_array": (out / "model_data.h", out / "model_data.cc"),
                "report": {"subnetworks": []}, "report_file": out / "r.json"}

    monkeypatch.setattr(hads_keras.export, "export_all", fake_export_all)
    x = np.zeros((4, 8, 8, 1), "float32")
    written = demo._export(None, tmp_path, x, x, np.zeros(4), True, lambda *a: None)
    text = json.dumps(written)   # no default=: only JSON types
    assert "PosixPath" not in text
    assert written["c_array"] == [str(tmp_path / "model_data.h"),
                                  str(tmp_path / "model_data.cc")]
    assert written["nested"] == str(tmp_path / "nested.tflite")


def _fake_run(seed, accuracies):
    methods = {}
    for i, m in enumerate(("HADS", "uniform")):
        methods[m] = {"macs": [100, 50], "accuracy": accuracies[i],
                      "accuracy_before_finetuning": [0.1, 0.1],
                      "accuracy_before_finetuning_bn_calibrated": [0.9, 0.5 + i / 10]}
    return {"model": "dnn", "epochs": 1, "finetune_epochs": 1,
            "method": "bottom_up", "few_shot": None, "mac_targets": [1.0, 0.5],
            "target_labels": ["100 % MACs", "50 % MACs"], "full_macs": 100,
            "bn_calibration": True, "seed": seed,
            "full_network_accuracy": 0.9 + seed / 100, "methods": methods}


def test_seed_summary_mean_and_std(tmp_path):
    from hads_keras import demo

    runs = [_fake_run(0, ([0.9, 0.8], [0.9, 0.7])),
            _fake_run(1, ([0.9, 0.6], [0.9, 0.9])),
            _fake_run(2, ([0.9, 0.7], [0.9, 0.8]))]
    summary = demo.summarize_seeds(runs)
    hads = summary["methods"]["HADS"]
    assert hads["accuracy_mean"] == pytest.approx([0.9, 0.7])
    assert hads["accuracy_std"] == pytest.approx([0.0, 0.1])     # ddof=1
    assert hads["accuracy"] == [[0.9, 0.8], [0.9, 0.6], [0.9, 0.7]]
    assert summary["methods"]["uniform"]["accuracy_mean"] == pytest.approx([0.9, 0.8])
    assert summary["best_method"][1] == "uniform"
    assert summary["full_network_accuracy_std"] == pytest.approx(0.01)
    table = demo.format_seeds_table(summary)
    assert "| 1 | 50 % MACs | 70.00 ± 10.00 (50.0) | 80.00 ± 10.00 (50.0) | uniform |" in table
    assert "10.00 ± 0.00 -> 50.00 ± 0.00" in table
    with pytest.raises(ValueError, match="runs differ in 'model'"):
        demo.summarize_seeds([runs[0], dict(runs[1], model="cnn")])
    assert demo.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert demo.parse_seeds("0,2,5") == [0, 2, 5]
    for bad in ("4-0", "a", "0,0", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            demo.parse_seeds(bad)


def test_demo_seeds_flag_rejects_bad_ranges(capsys):
    from hads_keras import cli
    assert cli.main(["demo", "--seeds", "3-1", "--no-export"]) == 2
    assert "give a range like 0-4" in capsys.readouterr().out
    assert cli.main(["demo", "--seeds", "2", "--no-export"]) == 2
    assert "at least two" in capsys.readouterr().out


def test_demo_rejects_unknown_model():
    from hads_keras import demo
    with pytest.raises(ValueError, match="Unknown model 'resnet'"):
        demo.build_model("resnet")


def test_samples_per_class():
    x = np.arange(30).reshape(15, 2)
    y = np.array([0] * 5 + [1] * 4 + [2] * 6)
    xs, ys = fewshot.samples_per_class(x, y, 3, seed=1)
    assert np.bincount(ys).tolist() == [3, 3, 3]
    np.testing.assert_array_equal(y[xs[:, 0] // 2], ys)     # pairs kept
    again, _ = fewshot.samples_per_class(x, y, 3, seed=1)
    np.testing.assert_array_equal(xs, again)                 # reproducible
    one_hot = np.eye(3)[y]
    _, yo = fewshot.samples_per_class(x, one_hot, 2)
    assert yo.shape == (6, 3) and yo.sum(0).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="class 1 has only 4 samples"):
        fewshot.samples_per_class(x, y, 5)
    with pytest.raises(ValueError, match="x has 15 samples but y has 14"):
        fewshot.samples_per_class(x, y[:-1], 2)


def test_plots_write_images(tmp_path):
    from hads_keras import Plan
    plan = Plan({"conv": [8, 6, 3], "fc": [16, 8, 4]},
                costs=[{"macs": 100}, {"macs": 60}, {"macs": 25}])
    path = plots.slicing_points(plan, tmp_path / "slicing.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    path = plots.accuracy_vs_macs(
        {"HADS": ([100, 60, 25], [.9, .8, .7]), "uniform": ([100, 58, 24], [.9, .7, .5])},
        tmp_path / "acc.png", full_macs=100)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="curve 'x' has 2 MAC values"):
        plots.accuracy_vs_macs({"x": ([1, 2], [.5])}, tmp_path / "bad.png")
    path = plots.accuracy_vs_latency(
        {"HADS": ([900, 500], [.9, .8])}, tmp_path / "lat.png", unit="instructions",
        full_latency=1000, how="measured on QEMU's Cortex-M4")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="accuracy_vs_latency: curve 'x' has 1 latency"):
        plots.accuracy_vs_latency({"x": ([1], [.5, .6])}, tmp_path / "bad.png", unit="us")
    # Error bars from standard deviations.
    path = plots.accuracy_vs_macs(
        {"HADS": ([100, 60], [.9, .8], [.01, .02])}, tmp_path / "err.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="2 accuracies and 1 standard"):
        plots.accuracy_vs_macs({"x": ([1, 2], [.5, .6], [.1])}, tmp_path / "bad.png")
