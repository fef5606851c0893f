"""The HADS pipeline the example scripts share, step by step.

    pretrain (or load a .keras checkpoint) -> Taylor importance -> knapsack
    plan -> nested model -> multi-width fine-tuning -> accuracy of every
    subnetwork -> export (int8 TFLite per subnetwork, nested TFLite, C
    array) -> results table (Markdown + JSON) and plots

`kws.py`, `fashion_mnist.py` and `cifar10.py` only choose the data set and
the model; everything else is here, with the flags below. Every artefact
goes to `--out_dir`:

    pretrained.keras    the pretrained model (reused with --checkpoint)
    importance.json     Taylor importance per group
    plan.json           slicing points, unit order, costs, solver report
    nested.keras        the fine-tuned nested model
    subnetwork{k}.tflite  int8 standalone subnetwork k (stock TFLite)
    nested.tflite       all subnetworks in one int8 file (HADS operators)
    model_data.h/.cc    the nested model as a C array
    results.json        every number of the run; results.md the table
    accuracy_vs_macs.png, slicing_points.png
    latency_table.json, accuracy_vs_latency.png   with a latency table
"""

import json
import os
import time

from absl import flags
from absl import logging
import numpy as np

FLAGS = flags.FLAGS

METHODS = ("bottom_up", "top_down", "joint")


def define_flags(out_dir, batch_size, pretrain_epochs, finetune_epochs,
                 learning_rate):
    """The flags every example shares (defaults per task)."""
    flags.DEFINE_string("out_dir", out_dir, "Where all artefacts are written.")
    flags.DEFINE_string("data_dir", None,
                        "TFDS data directory (must exist); default ~/tensorflow_datasets.")
    flags.DEFINE_bool("fake_data", False,
                      "Use random data of the real shapes (tfds mock data): "
                      "runs offline in seconds, accuracies are meaningless.")
    flags.DEFINE_integer("fake_examples", 48, "Examples per split with --fake_data.")
    flags.DEFINE_string("checkpoint", None,
                        "A pretrained .keras model of the same architecture; "
                        "skips pretraining.")
    flags.DEFINE_integer("pretrain_epochs", pretrain_epochs, "Epochs of ordinary training.",
                         lower_bound=1)
    flags.DEFINE_integer("finetune_epochs", finetune_epochs,
                         "Epochs of multi-width fine-tuning of all subnetworks "
                         "(0: evaluate the nested model without fine-tuning).",
                         lower_bound=0)
    flags.DEFINE_integer("batch_size", batch_size, "Batch size.")
    flags.DEFINE_float("learning_rate", learning_rate, "Adam learning rate.")
    flags.DEFINE_bool("lr_steps", True,
                      "Hello Edge's three-step schedule: the learning rate is "
                      "divided by 5 after a third and again after two thirds of "
                      "the epochs (5e-4, 1e-4, 2e-5 in Hello Edge), in pretraining "
                      "and in fine-tuning.")
    flags.DEFINE_integer("bn_calibration_batches", 20,
                         "Training batches on which every subnetwork's "
                         "BatchNormalization statistics are recomputed after "
                         "slicing, before fine-tuning "
                         "(hads_keras.calibrate_batch_norm; 0: off).",
                         lower_bound=0)
    flags.DEFINE_integer("importance_batches", 100,
                         "Training batches over which Taylor importance is accumulated.")
    flags.DEFINE_enum("method", "bottom_up", METHODS,
                      "Knapsack: bottom_up (paper default), top_down, or joint "
                      "(all subnetworks in one exact model).")
    flags.DEFINE_list("mac_targets", ["1.0", "0.75", "0.5", "0.25"],
                      "MAC budgets as fractions of the full model (not applied "
                      "when --latency_targets is given and this flag is not).")
    flags.DEFINE_list("latency_targets", None,
                      "Latency budgets: fractions of the full latency (1,0.5,0.25) "
                      "or numbers with a unit (20ms on a table in us), measured "
                      "in --latency_table (hads_keras.budgets).")
    flags.DEFINE_string("latency_table", None,
                        "A latency table file (`hads latency ...`), or qemu / "
                        "host / auto to measure one now (auto: QEMU's Cortex-M4 "
                        "when installed, else this host; the default with "
                        "--latency_targets). With a table every subnetwork's "
                        "latency is measured afterwards and plotted "
                        "(accuracy_vs_latency.png).")
    flags.DEFINE_string("memory_limit", None,
                        "Activation memory every subnetwork must fit, in bytes "
                        "(49152, 48KiB, 48kB); a full model above it makes the "
                        "largest subnetwork smaller.")
    flags.DEFINE_integer("samples_per_class", None,
                         "Few-shot: importance and fine-tuning see only the first "
                         "n training examples of each class (the paper's "
                         "bottom-up vs top-down comparison).")
    flags.DEFINE_bool("validate", True,
                      "Report validation metrics after each epoch of pretraining "
                      "and (per subnetwork) of fine-tuning.")
    flags.DEFINE_bool("export", True, "Write the TFLite models and the C array.")
    flags.DEFINE_integer("tflite_eval_examples", 1000,
                         "Test examples on which each int8 subnetwork is "
                         "evaluated with the TFLite interpreter (0: skip).")
    flags.DEFINE_integer("seed", 0, "Random seed.")


_START = time.time()


def _log(message, *args):
    text = message % args if args else message
    text = f"[{time.time() - _START:7.1f} s] {text}"
    logging.info("%s", text)
    print(text, flush=True)


def run_or_exit(fn):
    """Run `fn()`; bad input (unknown names, missing files, a checkpoint of
    another architecture) ends the script with its message, no traceback."""
    import sys
    try:
        return fn()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


# --- data ----------------------------------------------------------------

def check_data_dir():
    if FLAGS.data_dir and not FLAGS.fake_data and not os.path.isdir(FLAGS.data_dir):
        raise FileNotFoundError(
            f"--data_dir '{FLAGS.data_dir}' does not exist. Create it (TFDS "
            "downloads into it), point it at an existing TFDS directory, or "
            "leave it unset to use ~/tensorflow_datasets.")


def load_data(dataset_name, window_stride_ms=None, train_options=None):
    """Batched train / validation / test datasets and the few-shot train set.

    `train_options` go to `hads_keras.datasets.load` for the training split
    only (e.g. `unknown_share` for speech commands).
    """
    import tensorflow as tf
    from hads_keras import datasets

    kwargs = dict(data_dir=FLAGS.data_dir, fake=FLAGS.fake_data,
                  fake_examples=FLAGS.fake_examples)
    if window_stride_ms is not None:
        kwargs["window_stride_ms"] = window_stride_ms
    splits = datasets.info(dataset_name).splits
    val_split = "validation" if "validation" in splits else "test"
    train_kwargs = dict(kwargs, **(train_options or {}))
    train = datasets.load(dataset_name, "train", augment=True, **train_kwargs)
    few = train
    if FLAGS.samples_per_class:
        few = datasets.load(dataset_name, "train", augment=False,
                            samples_per_class=FLAGS.samples_per_class, **train_kwargs)
    val = datasets.load(dataset_name, val_split, **kwargs)
    test = datasets.load(dataset_name, "test", **kwargs)

    def batch(ds, shuffle=False):
        if shuffle:
            ds = ds.shuffle(10000, seed=FLAGS.seed, reshuffle_each_iteration=True)
        return ds.batch(FLAGS.batch_size).prefetch(tf.data.AUTOTUNE)

    # Cache what is not augmented (a cached augmented set would repeat the
    # first epoch's random shifts forever).
    few = batch(few.cache(), True) if FLAGS.samples_per_class else batch(train, True)
    return dict(train=batch(train, True), few=few,
                val=batch(val.cache()), test=batch(test.cache()),
                val_split=val_split)


# --- model ---------------------------------------------------------------

def _signature(model):
    """What identifies an architecture: layer types and weight shapes."""
    rows = []
    for layer in model.layers:
        shapes = tuple(tuple(w.shape) for w in layer.weights)
        if shapes:
            rows.append((type(layer).__name__.split(".")[-1], shapes))
    return rows


def load_checkpoint(path, reference):
    """Load a .keras model and check it has `reference`'s architecture."""
    import keras
    import hads_keras as hads

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--checkpoint '{path}' does not exist; give a .keras file saved by "
            "model.save(...) (e.g. pretrained.keras of an earlier run).")
    model = hads.convert(keras.models.load_model(path, compile=False))
    want, got = _signature(reference), _signature(model)
    if want != got:
        first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b),
                     min(len(want), len(got)))
        raise ValueError(
            f"--checkpoint '{path}' holds model '{model.name}' with "
            f"{len(got)} weighted layers, but '{reference.name}' (the "
            f"--model/--size asked for) has {len(want)}; first difference at "
            f"weighted layer {first}: checkpoint "
            f"{got[first] if first < len(got) else 'nothing'} vs expected "
            f"{want[first] if first < len(want) else 'nothing'}. Pick the "
            "--model/--size the checkpoint was trained as.")
    reference.set_weights(model.get_weights())
    return reference


def step_schedule(base, epochs):
    """Learning rate of each epoch: base, base / 5, base / 25 by thirds."""
    def rate(epoch, lr=None):
        if not FLAGS.lr_steps:
            return base
        third = epochs / 3
        return base * (1.0 if epoch < third else 0.2 if epoch < 2 * third else 0.04)
    return rate


def lr_callbacks(epochs):
    import keras
    return [keras.callbacks.LearningRateScheduler(step_schedule(FLAGS.learning_rate, epochs))]


def compile_plain(model):
    import keras
    model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def pretrain(model, data):
    path = os.path.join(FLAGS.out_dir, "pretrained.keras")
    if FLAGS.checkpoint:   # already loaded by run()
        compile_plain(model)
        return model, None
    compile_plain(model)
    _log("Pretraining %s for %d epochs", model.name, FLAGS.pretrain_epochs)
    history = model.fit(data["train"],
                        validation_data=data["val"] if FLAGS.validate else None,
                        epochs=FLAGS.pretrain_epochs, verbose=2,
                        callbacks=lr_callbacks(FLAGS.pretrain_epochs))
    model.save(path)
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


# --- evaluation ----------------------------------------------------------

def labels_of(dataset):
    return np.concatenate([y.numpy() for _, y in dataset])


def subnetwork_accuracies(nested, dataset, labels):
    """Accuracy of every subnetwork (switching with set_subnetwork)."""
    accuracies = []
    for k in range(nested.num_subnetworks):
        with nested.subnetwork(k):
            predictions = nested.predict(dataset, verbose=0)
        accuracies.append(float(np.mean(predictions.argmax(-1) == labels)))
    return accuracies


def tflite_accuracy(tflite_bytes, dataset, limit):
    """Accuracy of an int8 .tflite model on the first `limit` examples."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    correct = seen = 0
    for x, y in dataset.unbatch().take(limit):
        x = x.numpy()[None]
        if inp["dtype"] == np.int8:
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        correct += int(interpreter.get_tensor(out["index"])[0].argmax() == int(y))
        seen += 1
    return correct / max(seen, 1)


def representative(dataset, count=200):
    return np.concatenate([x.numpy() for x, _ in dataset.unbatch().batch(count).take(1)])


# --- the pipeline --------------------------------------------------------

def budget_flags():
    """--mac_targets, --latency_targets, --latency_table, --memory_limit as
    the budgets of `hads_keras.solve` (hads_keras.budgets reads them)."""
    from hads_keras import budgets

    latency = (None if FLAGS.latency_targets is None else
               budgets.parse_targets(",".join(FLAGS.latency_targets), "--latency_targets"))
    macs = [float(t) for t in FLAGS.mac_targets]
    if latency is not None and not FLAGS["mac_targets"].present:
        macs = None
    table = FLAGS.latency_table
    if latency is not None and table is None:
        table = "auto"
    limit = (None if FLAGS.memory_limit is None
             else budgets.parse_bytes(FLAGS.memory_limit, "--memory_limit"))
    return dict(mac_targets=macs, latency_targets=latency, latency_table=table,
                memory_limit=limit)


def run(model, dataset_name, labels=None, window_stride_ms=None, extra=None,
        train_options=None):
    """Run every step on `model` and `dataset_name`; return the results dict."""
    import keras
    import hads_keras as hads

    from hads_keras import budgets, memory

    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    started = time.time()
    if FLAGS.checkpoint:   # fail on a wrong checkpoint before reading any data
        _log("Loading pretrained weights from %s", FLAGS.checkpoint)
        model = load_checkpoint(FLAGS.checkpoint, model)
    data = load_data(dataset_name, window_stride_ms, train_options)
    test_labels = labels_of(data["test"])
    budget = budget_flags()
    results = dict(task=dataset_name, model=model.name, fake_data=FLAGS.fake_data,
                   method=FLAGS.method, samples_per_class=FLAGS.samples_per_class,
                   mac_targets=budget["mac_targets"],
                   latency_targets=budget["latency_targets"],
                   memory_limit=budget["memory_limit"],
                   full_costs=hads.model_costs(model), **(extra or {}))

    model, results["pretrain_history"] = pretrain(model, data)
    results["pretrained_test_accuracy"] = float(
        np.mean(model.predict(data["test"], verbose=0).argmax(-1) == test_labels))
    _log("Pretrained test accuracy: %.4f", results["pretrained_test_accuracy"])

    _log("Taylor importance over %d batches", FLAGS.importance_batches)
    importance = hads.taylor_importance(model, data["few"], batches=FLAGS.importance_batches)
    with open(os.path.join(FLAGS.out_dir, "importance.json"), "w") as f:
        json.dump({g: np.asarray(s).tolist() for g, s in importance.items()}, f)

    table = None
    if budget["latency_table"] is not None:
        table = budgets.latency_table(model, budget["latency_table"],
                                      points=budgets.LATENCY_POINTS,
                                      multiple_of=budgets.LATENCY_MULTIPLE_OF, log=_log)
        table.save(os.path.join(FLAGS.out_dir, "latency_table.json"))
    solve_budget = {k: v for k, v in budget.items()
                    if v is not None and k != "latency_table"}
    if budget["latency_targets"] is not None:
        # Widths aligned as the grid the table measured.
        solve_budget.update(latency_table=table, multiple_of=budgets.LATENCY_MULTIPLE_OF,
                            min_width=budgets.LATENCY_MULTIPLE_OF)
    _log("Solving the %s knapsack for %s", FLAGS.method,
         ", ".join(f"{k} {v}" for k, v in solve_budget.items() if k != "latency_table"))
    plan = hads.solve(model, importance, method=FLAGS.method, **solve_budget)
    plan.save(os.path.join(FLAGS.out_dir, "plan.json"))
    results["target_labels"] = budgets.target_labels(plan)
    _log("%s", plan)

    nested = hads.apply(model, plan)
    nested.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    results["accuracy_before_finetuning"] = subnetwork_accuracies(
        nested, data["test"], test_labels)
    results["accuracy_before_finetuning_bn_calibrated"] = None
    if FLAGS.bn_calibration_batches:
        _log("Recomputing BN statistics per subnetwork on %d batches",
             FLAGS.bn_calibration_batches)
        hads.calibrate_batch_norm(nested, data["few"],
                                  batches=FLAGS.bn_calibration_batches)
        results["accuracy_before_finetuning_bn_calibrated"] = subnetwork_accuracies(
            nested, data["test"], test_labels)
    results["finetune_history"] = None
    if FLAGS.finetune_epochs > 0:
        _log("Fine-tuning all %d subnetworks for %d epochs", nested.num_subnetworks,
             FLAGS.finetune_epochs)
        history = nested.fit(data["few"],
                             validation_data=data["val"] if FLAGS.validate else None,
                             epochs=FLAGS.finetune_epochs, verbose=2,
                             callbacks=lr_callbacks(FLAGS.finetune_epochs))
        results["finetune_history"] = {k: [float(v) for v in vals]
                                       for k, vals in history.history.items()}
    _log("Evaluating every subnetwork")
    results["test_accuracy"] = subnetwork_accuracies(nested, data["test"], test_labels)
    nested.save(os.path.join(FLAGS.out_dir, "nested.keras"))
    costs = hads.subnetwork_costs(nested, nested.plan)  # rebased when reduced
    full_macs = results["full_costs"]["macs"]
    arena = memory.arena_function(model)
    results["subnetworks"] = [
        dict(index=k, macs=c["macs"], params=c["params"],
             macs_fraction=c["macs"] / full_macs,
             widths=plan.subnetwork_widths(k),
             planned_arena_bytes=int(arena(plan.subnetwork_widths(k))))
        for k, c in enumerate(costs)]
    if table is not None:
        _log("Measuring every subnetwork's latency (target %s)", table.target)
        measured, how = budgets.subnetwork_latencies(model, table, {"HADS": plan},
                                                     {"HADS": nested})
        full = float(table.cost(hads.costs.full_widths(model)))
        results["latency"] = dict(target=table.target, unit=table.unit, how=how,
                                  full=full)
        for sub, value in zip(results["subnetworks"], measured["HADS"]):
            sub.update(latency=value, latency_fraction=value / full)

    if FLAGS.export:
        _log("Exporting")
        results["export"] = export(nested, data, labels)
    results["seconds"] = time.time() - started
    write_report(results, plan)
    return results


def export(nested, data, labels):
    from hads_keras import export as hexport
    from hads_keras.export.c_array import c_array

    calibration = representative(data["val"])   # un-augmented, not the test split
    files, int8_accuracy = [], []
    for k in range(nested.num_subnetworks):
        blob = hexport.tflite_subnetwork(nested, k, calibration, int8=True)
        path = os.path.join(FLAGS.out_dir, f"subnetwork{k}.tflite")
        with open(path, "wb") as f:
            f.write(blob)
        files.append(path)
        if FLAGS.tflite_eval_examples:
            int8_accuracy.append(tflite_accuracy(blob, data["test"], FLAGS.tflite_eval_examples))
    _log("Exported the standalone int8 subnetworks")
    nested_path = os.path.join(FLAGS.out_dir, "nested.tflite")
    blob = hexport.tflite_nested(nested, nested_path, calibration, labels=labels)
    header, source = c_array(blob, "model_data", FLAGS.out_dir, plan=nested.plan)
    files += [nested_path, str(header), str(source)]
    _log("Exported %s", ", ".join(os.path.basename(p) for p in files))
    return dict(files=files, nested_tflite_bytes=len(blob),
                int8_test_accuracy=int8_accuracy or None,
                int8_eval_examples=FLAGS.tflite_eval_examples)


# --- report --------------------------------------------------------------

def table(results):
    """The results as a Markdown table, one row per subnetwork."""
    int8 = (results.get("export") or {}).get("int8_test_accuracy")
    calibrated = results.get("accuracy_before_finetuning_bn_calibrated")
    latency = results.get("latency")
    head = ("| subnetwork | budget | MACs | % MACs | "
            + (f"latency ({latency['unit']}) | % latency | " if latency else "")
            + "planned arena B | params | accuracy before fine-tuning | before "
            "fine-tuning, BN recalibrated | accuracy | int8 TFLite accuracy |")
    lines = [head, "|" + "---|" * head.count(" |")]
    for sub, label in zip(results["subnetworks"], results["target_labels"]):
        k = sub["index"]
        lines.append(
            f"| {k} | {label} | {sub['macs']:,} | {100 * sub['macs_fraction']:.1f} "
            + (f"| {sub['latency']:,.0f} | {100 * sub['latency_fraction']:.1f} "
               if latency else "")
            + f"| {sub['planned_arena_bytes']:,} "
            f"| {sub['params']:,} | {100 * results['accuracy_before_finetuning'][k]:.2f} "
            f"| {'' if not calibrated else f'{100 * calibrated[k]:.2f}'} "
            f"| {100 * results['test_accuracy'][k]:.2f} "
            f"| {'' if not int8 else f'{100 * int8[k]:.2f}'} |")
    if latency:
        lines += ["", f"latency: {latency['how']} (target '{latency['target']}'); % of "
                      f"the full model's {latency['full']:,.0f} {latency['unit']} in the table"]
    return "\n".join(lines)


def write_report(results, plan):
    from hads_keras import plots

    out = FLAGS.out_dir
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    title = (f"{results['model']} on {results['task']}"
             f"{' (FAKE DATA: accuracies meaningless)' if results['fake_data'] else ''}")
    text = [f"# {title}", "",
            f"method {results['method']}, samples per class "
            f"{results['samples_per_class'] or 'all'}, pretrained test accuracy "
            f"{100 * results['pretrained_test_accuracy']:.2f} %", "", table(results), ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(text))
    print("\n".join(text), flush=True)

    # The plots of `hads demo` (hads_keras.plots).
    macs = [s["macs"] for s in results["subnetworks"]]
    curves = {"fine-tuned": (macs, results["test_accuracy"]),
              "before fine-tuning": (macs, results["accuracy_before_finetuning"])}
    if results.get("accuracy_before_finetuning_bn_calibrated"):
        curves["before fine-tuning, BN recalibrated"] = (
            macs, results["accuracy_before_finetuning_bn_calibrated"])
    plots.accuracy_vs_macs(
        curves,
        os.path.join(out, "accuracy_vs_macs.png"),
        title=f"{results['model']} on {results['task']}"
              f"{' (fake data)' if results['fake_data'] else ''}",
        full_macs=results["full_costs"]["macs"])
    latency = results.get("latency")
    if latency:
        subs = results["subnetworks"]
        plots.accuracy_vs_latency(
            {"fine-tuned": ([s["latency"] for s in subs], results["test_accuracy"])},
            os.path.join(out, "accuracy_vs_latency.png"), unit=latency["unit"],
            how=latency["how"], full_latency=latency["full"],
            title=f"{results['model']} on {results['task']}: accuracy vs latency")
    plots.slicing_points(plan, os.path.join(out, "slicing_points.png"),
                         title=f"{results['model']}: slicing points per group")
