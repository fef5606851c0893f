"""`hads demo` end to end (tiny epochs), the few-shot helper and the plots."""

import json

import numpy as np
import pytest

from hads_keras import fewshot, plots


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
    results = json.loads((out / "results.json").read_text())
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
