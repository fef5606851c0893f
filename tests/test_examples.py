"""Each example script end to end on fake data (tfds mock data), all artefacts.

The scripts run as users run them (a subprocess with absl flags), with tiny
settings: a few dozen fake examples, one epoch of pretraining and one of
multi-width fine-tuning. Accuracies on random data mean nothing; the tests
check that every step ran and that its outputs are consistent.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
TINY = ["--fake_data", "--fake_examples=16", "--batch_size=8", "--pretrain_epochs=1",
        "--finetune_epochs=1", "--importance_batches=2", "--tflite_eval_examples=8",
        "--novalidate"]
ARTEFACTS = ["pretrained.keras", "importance.json", "plan.json", "nested.keras",
             "subnetwork0.tflite", "subnetwork1.tflite", "nested.tflite",
             "model_data.h", "model_data.cc", "results.json", "results.md",
             "accuracy_vs_macs.png", "slicing_points.png"]


def run_example(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args],
                          capture_output=True, text=True, env=env, timeout=900)


def check_run(out_dir, proc, task, model, shape, classes, count=4):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ARTEFACTS:
        assert os.path.getsize(os.path.join(out_dir, name)) > 0, name
    results = json.load(open(os.path.join(out_dir, "results.json")))
    assert results["task"] == task and results["model"] == model and results["fake_data"]
    subs = results["subnetworks"]
    assert len(subs) == count and len(results["test_accuracy"]) == count
    # Every subnetwork fits its MAC budget; subnetwork 0 is the full model
    # (unless a memory limit cut it down).
    if results["memory_limit"] is None:
        assert subs[0]["macs"] == results["full_costs"]["macs"]
    for sub, target in zip(subs, results["mac_targets"] or []):
        assert sub["macs"] <= target * results["full_costs"]["macs"] + 1e-6
    # Nested: every group keeps a prefix no longer than in the larger subnetwork.
    for group in subs[0]["widths"]:
        widths = [s["widths"][group] for s in subs]
        assert widths == sorted(widths, reverse=True)
    assert all(0.0 <= a <= 1.0 for a in results["test_accuracy"])
    assert len(results["export"]["int8_test_accuracy"]) == count

    # The exported files agree with the Keras model.
    from ai_edge_litert.interpreter import Interpreter
    from hads_keras import export
    nested = open(os.path.join(out_dir, "nested.tflite"), "rb").read()
    assert export.num_subnetworks(nested) == count
    plan = export.read_plan(nested)
    assert [list(plan.widths(g)) for g in plan.groups] == [
        [s["widths"][g] for s in subs] for g in plan.groups]
    interpreter = Interpreter(model_path=os.path.join(out_dir, f"subnetwork{count - 1}.tflite"))
    interpreter.allocate_tensors()
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1,) + shape
    assert tuple(interpreter.get_output_details()[0]["shape"]) == (1, classes)
    header = open(os.path.join(out_dir, "model_data.h")).read()
    assert "model_data" in header
    table = open(os.path.join(out_dir, "results.md")).read()
    assert "FAKE DATA" in table and table.count("\n| ") == count + 1
    return results


def test_kws_dnn_end_to_end(tmp_path):
    out = str(tmp_path / "kws")
    proc = run_example("kws.py", "--model=dnn", "--size=s", f"--out_dir={out}", *TINY)
    results = check_run(out, proc, "speech_commands", "dnn_s", (25, 10, 1), 12)
    # Hello Edge's DNN reads MFCCs every 40 ms: 25 frames of 10.
    assert results["mfcc_stride_ms"] == 40
    assert results["full_costs"] == {"macs": 79200, "params": 79644}

    # The pretrained checkpoint is reused (no pretraining), here for the
    # few-shot top-down variant without fine-tuning or export.
    again = str(tmp_path / "again")
    proc = run_example("kws.py", "--model=dnn", "--size=s", f"--out_dir={again}",
                       f"--checkpoint={out}/pretrained.keras", "--noexport",
                       "--method=top_down", "--samples_per_class=1", *TINY,
                       "--finetune_epochs=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rerun = json.load(open(os.path.join(again, "results.json")))
    assert rerun["pretrain_history"] is None and rerun["finetune_history"] is None
    assert rerun["method"] == "top_down" and rerun["samples_per_class"] == 1
    np.testing.assert_allclose(rerun["pretrained_test_accuracy"],
                               results["pretrained_test_accuracy"])
    # Without fine-tuning the full subnetwork is the pretrained model.
    np.testing.assert_allclose(rerun["test_accuracy"][0], rerun["pretrained_test_accuracy"],
                               atol=1 / 16 + 1e-9)  # a near tie may flip on 16 examples

    # A checkpoint of another architecture is refused, naming both.
    sys.path.insert(0, EXAMPLES)
    try:
        import pipeline
    finally:
        sys.path.remove(EXAMPLES)
    from hads_keras import models
    with pytest.raises(ValueError, match="holds model 'dnn_s'.*'cnn_s'"):
        pipeline.load_checkpoint(f"{out}/pretrained.keras", models.get_model("cnn", "s"))
    with pytest.raises(FileNotFoundError, match="--checkpoint 'nope.keras' does not exist"):
        pipeline.load_checkpoint("nope.keras", models.get_model("cnn", "s"))


def test_fashion_mnist_end_to_end_with_latency_targets(tmp_path):
    from hads_keras import budgets
    out = str(tmp_path / "fmnist")
    # Two subnetworks (100 and 50 % of the latency) keep the test short.
    proc = run_example("fashion_mnist.py", f"--out_dir={out}",
                       "--latency_targets=1.0,0.5", *TINY)
    results = check_run(out, proc, "fashion_mnist", "ds_cnn_vision_s", (28, 28, 1), 10,
                        count=2)
    assert results["mac_targets"] is None and results["latency_targets"] == [1.0, 0.5]
    latency = results["latency"]
    qemu = budgets._qemu_available()
    assert latency["target"] == ("cortex-m4-qemu" if qemu else "host-litert")
    for name in ("latency_table.json", "accuracy_vs_latency.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    half = results["subnetworks"][1]
    assert all(w % 4 == 0 for w in half["widths"].values())
    if qemu:   # measured afterwards on the probe: within 2 % of the target
        assert half["latency"] <= 0.5 * latency["full"] * 1.02
        assert half["latency"] > 0.4 * latency["full"]
    table = open(os.path.join(out, "results.md")).read()
    assert "% latency" in table and latency["how"] in table


def test_cifar10_end_to_end_under_a_memory_limit(tmp_path):
    from hads_keras import datasets, memory, models
    shape = datasets.info("cifar10").input_shape
    full = memory.planned_arena(models.get_model("ds_cnn_vision", "s", input_shape=shape,
                                                 num_classes=10))
    limit = int(0.8 * full)
    out = str(tmp_path / "cifar")
    proc = run_example("cifar10.py", f"--out_dir={out}", "--method=joint",
                       "--mac_targets=1.0,0.5", f"--memory_limit={limit}", *TINY)
    results = check_run(out, proc, "cifar10", "ds_cnn_vision_s", (32, 32, 3), 10, count=2)
    assert results["method"] == "joint" and results["memory_limit"] == limit
    subs = results["subnetworks"]
    assert all(s["planned_arena_bytes"] <= limit for s in subs)
    assert subs[0]["macs"] < results["full_costs"]["macs"]   # the largest one is cut


def test_bad_flags_give_clear_errors(tmp_path):
    proc = run_example("kws.py", "--model=resnet")
    assert proc.returncode != 0 and "value should be one of <dnn|cnn|ds_cnn>" in proc.stderr
    proc = run_example("cifar10.py", "--data_dir=/no/such/dir", f"--out_dir={tmp_path}")
    assert proc.returncode == 2
    assert "--data_dir '/no/such/dir' does not exist" in proc.stderr
