"""`hads demo`: the whole HADS pipeline on scikit-learn's digits, in minutes.

    hads demo [--model ds_cnn|cnn|dnn] [--epochs 30] [--finetune-epochs 15]
              [--seed 0 | --seeds 0-4] [--out hads_demo] [--few-shot N]
              [--method bottom_up|top_down|joint] [--no-bn-calibration]
              [--no-export]

1. Load `sklearn.datasets.load_digits` (1,797 real 8x8 images, 10 classes;
   ships with scikit-learn, no download); fixed stratified 75/25 split.
2. Train a small network built from `hads_keras.layers`.
3. Taylor importance of every unit (`hads_keras.taylor_importance`).
4. Solve the nested knapsack for 100/75/50/25 % of the MACs (`hads.solve`).
5. Recompute every subnetwork's BatchNormalization statistics on the
   fine-tuning images (`hads.calibrate_batch_norm`, forward passes only;
   accuracy is measured before and after), then fine-tune all subnetworks
   at once (`NestedModel.fit`, multi-width loss).
6. The baselines, each calibrated and fine-tuned the same way from the same
   trained weights: uniform width (`hads.uniform_plan`), L1-norm importance
   (BN-folded kernels) and random importance (both through the same solver).
7. Print a table per subnetwork and write to `--out` the files listed in
   `OUTPUT_FILES` (`nested.keras`, the four plans, `results.json`,
   `results.txt`, two plots, and the TFLite / C array export `export/`
   unless `--no-export`).

`--seeds 0-4` runs the demo once per seed (into `--out/seed_<s>/`) and
writes the mean and standard deviation over the seeds of every subnetwork
and method: `seeds.json`, `seeds.txt` and `accuracy_vs_macs_seeds.png`
(error bars: +- one standard deviation).
"""

import json
import os
import pathlib
import time

import numpy as np

MAC_TARGETS = (1.0, 0.75, 0.5, 0.25)
MODELS = ("ds_cnn", "cnn", "dnn")
NUM_CLASSES = 10

# What one run writes into --out (the README lists the same names).
OUTPUT_FILES = ("nested.keras", "plan.json", "plan_uniform.json",
                "plan_l1.json", "plan_random.json", "results.json",
                "results.txt", "accuracy_vs_macs.png", "slicing_points.png",
                "export/")


# Data --------------------------------------------------------------------

def load_digits_split(seed_split=0):
    """Digits as float32 images [N, 8, 8, 1] in [0, 1]; a fixed split.

    The split does not follow `--seed` on purpose: every run is scored on
    the same 450 test images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    return train_test_split(x, y, test_size=0.25, stratify=y,
                            random_state=seed_split)


# Models ------------------------------------------------------------------

def build_model(name, input_shape=(8, 8, 1), num_classes=NUM_CLASSES):
    """Small networks for 8x8 digits, from `hads_keras.layers`.

    * ds_cnn: a 3x3 conv of 32, three depthwise-separable blocks of 32
      (the first of stride 2), global average pooling, a classifier.
    * cnn: two 3x3 convs (16, 32; the second of stride 2), a dense layer of
      64, a classifier.
    * dnn: two dense layers of 128, a classifier.
    """
    import keras
    from hads_keras import layers as hl

    if name not in MODELS:
        raise ValueError(f"Unknown model '{name}'; choose one of {MODELS}.")
    inputs = keras.Input(input_shape, name="image")
    if name == "ds_cnn":
        x = hl.Conv2D(32, 3, padding="same", use_bias=False, name="conv1")(inputs)
        x = hl.BatchNormalization(name="conv1_bn")(x)
        x = keras.layers.ReLU(name="conv1_act")(x)
        for i, stride in enumerate((2, 1, 1), start=1):
            x = hl.DepthwiseConv2D(3, strides=stride, padding="same",
                                   use_bias=False, name=f"ds{i}_depthwise")(x)
            x = hl.BatchNormalization(name=f"ds{i}_depthwise_bn")(x)
            x = keras.layers.ReLU(name=f"ds{i}_depthwise_act")(x)
            x = hl.Conv2D(32, 1, use_bias=False, name=f"ds{i}_pointwise")(x)
            x = hl.BatchNormalization(name=f"ds{i}_pointwise_bn")(x)
            x = keras.layers.ReLU(name=f"ds{i}_pointwise_act")(x)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif name == "cnn":
        x = hl.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = hl.Conv2D(32, 3, strides=2, padding="same", activation="relu",
                      name="conv2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = hl.Dense(64, activation="relu", name="fc1")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(inputs)
        x = hl.Dense(128, activation="relu", name="fc1")(x)
        x = hl.Dense(128, activation="relu", name="fc2")(x)
    outputs = hl.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"digits_{name}")


def _compile(model, learning_rate, **kwargs):
    import keras
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], **kwargs)


# Pipeline ----------------------------------------------------------------

def run(model_name="ds_cnn", epochs=30, finetune_epochs=15, seed=0,
        out="hads_demo", few_shot=None, method="bottom_up", batch_size=32,
        export=True, bn_calibration=True, verbose=1, log=print):
    """Run the demo; returns the results dict (also in `out/results.json`).

    Args:
        model_name: "ds_cnn", "cnn" or "dnn".
        epochs: training epochs of the full network.
        finetune_epochs: multi-width fine-tuning epochs (HADS and each
            baseline).
        seed: seeds Keras, NumPy and the random baseline.
        out: output folder (created).
        few_shot: fine-tune on only this many training samples per class
            (`hads_keras.fewshot.samples_per_class`); None: all.
        method: the knapsack heuristic of `hads_keras.solve` ("bottom_up",
            "top_down" or "joint"), for HADS and the L1/random baselines;
            with `few_shot` this is the paper's bottom-up vs top-down study.
        batch_size: training batch size.
        bn_calibration: recompute each subnetwork's BN statistics on the
            fine-tuning images before fine-tuning
            (`hads_keras.calibrate_batch_norm`); accuracies are recorded
            without (`accuracy_before_finetuning`) and with it
            (`accuracy_before_finetuning_bn_calibrated`).
        export: also write the TFLite / C array export when
            `hads_keras.export` is installed.
        verbose: Keras verbosity of `fit` (0, 1 or 2).
        log: where progress lines and the table go.
    """
    import keras

    import hads_keras as hads
    from hads_keras import fewshot
    from hads_keras import plots

    if int(epochs) < 1 or int(finetune_epochs) < 0:
        raise ValueError(
            f"epochs must be >= 1 and finetune_epochs >= 0; got {epochs}, "
            f"{finetune_epochs}.")
    started = time.time()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = load_digits_split()
    log(f"digits: {len(x_train)} training and {len(x_test)} test images, "
        f"model {model_name}, seed {seed}")

    # 1. The full network.
    model = build_model(model_name)
    _compile(model, 3e-3)
    log(f"[1/5] training the full network ({epochs} epochs)")
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
              verbose=verbose)
    full_accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    log(f"      full network test accuracy {100 * full_accuracy:.2f} %")

    # 2. Importance and the plans.
    log("[2/5] Taylor importance, nested knapsack for "
        f"{[int(100 * t) for t in MAC_TARGETS]} % MACs")
    import tensorflow as tf
    batches = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(64)
    plans = {
        "HADS": hads.solve(model, hads.taylor_importance(model, batches),
                           mac_targets=MAC_TARGETS, method=method),
        "uniform": hads.uniform_plan(model, MAC_TARGETS),
        "L1": hads.solve(model, hads.l1_importance(model),
                         mac_targets=MAC_TARGETS, method=method),
        "random": hads.solve(model, hads.random_importance(model, seed=seed),
                             mac_targets=MAC_TARGETS, method=method),
    }
    log(str(plans["HADS"]))

    # 3. Multi-width fine-tuning of every method, from the same weights.
    x_tune, y_tune = x_train, y_train
    if few_shot:
        x_tune, y_tune = fewshot.samples_per_class(
            x_train, y_train, int(few_shot), seed=seed)
        log(f"      fine-tuning on {few_shot} samples per class "
            f"({len(x_tune)} images)")
    results = {"model": model_name, "seed": seed, "epochs": epochs,
               "method": method,
               "finetune_epochs": finetune_epochs, "few_shot": few_shot,
               "mac_targets": list(MAC_TARGETS),
               "bn_calibration": bool(bn_calibration),
               "full_network_accuracy": full_accuracy, "methods": {}}
    nested_models = {}
    for i, (label, plan) in enumerate(plans.items()):
        log(f"[3/5] {label} ({i + 1}/{len(plans)}): "
            + ("BN recalibration, " if bn_calibration else "")
            + f"{finetune_epochs} fine-tuning epochs")
        keras.utils.set_random_seed(seed)
        nested = hads.apply(model, plan)
        _compile(nested, 1e-3)
        before = nested.evaluate(x_test, y_test, verbose=0, return_dict=True)
        calibrated = None
        if bn_calibration:
            hads.calibrate_batch_norm(nested, x_tune)
            calibrated = nested.evaluate(x_test, y_test, verbose=0,
                                         return_dict=True)
        if finetune_epochs:
            nested.fit(x_tune, y_tune, epochs=finetune_epochs,
                       batch_size=batch_size, verbose=verbose)
        after = nested.evaluate(x_test, y_test, verbose=0, return_dict=True)
        count = plan.num_subnetworks
        results["methods"][label] = {
            "widths": {g: list(plan.widths(g)) for g in plan.groups},
            "macs": [c["macs"] for c in plan.costs],
            "params": [c["params"] for c in plan.costs],
            "accuracy_before_finetuning": [before[f"sub{k}_accuracy"]
                                           for k in range(count)],
            "accuracy_before_finetuning_bn_calibrated": (
                None if calibrated is None
                else [calibrated[f"sub{k}_accuracy"] for k in range(count)]),
            "accuracy": [after[f"sub{k}_accuracy"] for k in range(count)],
        }
        nested_models[label] = nested

    # 4. Files.
    log(f"[4/5] writing {out}/")
    hads_nested = nested_models["HADS"]
    hads_nested.set_subnetwork(0)
    hads_nested.save(out / "nested.keras")
    plans["HADS"].save(out / "plan.json")
    for label, plan in plans.items():
        if label != "HADS":
            plan.save(out / f"plan_{label.lower()}.json")
    full_macs = results["methods"]["HADS"]["macs"][0]
    plots.accuracy_vs_macs(
        {m: (r["macs"], r["accuracy"]) for m, r in results["methods"].items()},
        out / "accuracy_vs_macs.png", full_macs=full_macs,
        title=f"digits, {model_name}: test accuracy after fine-tuning")
    hads_plan = hads_nested.plan
    plots.slicing_points(hads_plan, out / "slicing_points.png",
                         title=f"HADS slicing points ({model_name})")

    # 5. Export (TFLite per subnetwork, nested int8 TFLite, C array).
    results["export"] = _export(hads_nested, out / "export", x_train, x_test,
                                y_test, export, log)
    results["seconds"] = round(time.time() - started, 1)
    table = format_table(results)
    log(table)
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2, default=_jsonable)
    report = results["export"].get("report")
    if report:   # the exporter's table: int8 accuracies, sizes, arenas
        from hads_keras.export import format_report
        table += "\n\nExport (TFLite per subnetwork):\n" + format_report(report)
    (out / "results.txt").write_text(table + "\n")
    return results


def _export(nested, out_dir, x_train, x_test, y_test, enabled, log):
    """The export step; returns what it wrote (or why not)."""
    if not enabled:
        return {"skipped": "--no-export"}
    try:
        from hads_keras.export import export_all
    except ImportError as error:   # exporter not part of this install
        log(f"[5/5] export skipped: {error}")
        return {"skipped": str(error)}
    log(f"[5/5] exporting to {out_dir}/ (TFLite, int8, C array)")
    representative = x_train[:100]
    written = export_all(nested, out_dir, representative, x_test, y_test,
                         labels=[str(d) for d in range(NUM_CLASSES)], log=log)
    return {key: (value if key == "report" else _path_strings(value))
            for key, value in written.items()}


def _path_strings(value):
    """Paths as JSON strings; several paths as a list of strings."""
    if isinstance(value, (tuple, list)):
        return [str(v) for v in value]
    return str(value)


def _aligned(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(widths[i]) for i, c in enumerate(r))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def format_table(results):
    """The per-subnetwork table: HADS next to the baselines.

    A second table shows the accuracy straight after slicing, before
    fine-tuning, without and with BN recalibration.
    """
    methods = results["methods"]
    hads = methods["HADS"]
    full_macs = hads["macs"][0]
    baselines = [m for m in methods if m != "HADS"]
    header = ["sub", "target", "MACs", "MACs %", "params", "HADS acc"]
    header += [f"{m} acc (MACs %)" for m in baselines]
    rows = [header]
    for k, target in enumerate(results["mac_targets"]):
        row = [str(k), f"{100 * target:.0f} %", f"{hads['macs'][k]:,}",
               f"{100 * hads['macs'][k] / full_macs:.1f}",
               f"{hads['params'][k]:,}", f"{100 * hads['accuracy'][k]:.2f} %"]
        for m in baselines:
            r = methods[m]
            row.append(f"{100 * r['accuracy'][k]:.2f} % "
                       f"({100 * r['macs'][k] / full_macs:.1f})")
        rows.append(row)
    title = (f"digits, {results['model']}, seed {results['seed']}: test "
             f"accuracy per subnetwork after {results['finetune_epochs']} "
             "fine-tuning epochs (full network before slicing: "
             f"{100 * results['full_network_accuracy']:.2f} %)")
    text = title + "\n" + "\n".join(_aligned(rows))
    calibrated = any(r.get("accuracy_before_finetuning_bn_calibrated")
                     for r in methods.values())
    rows = [["sub", "target"] + [
        f"{m} {'raw -> BN-calibrated' if calibrated else 'raw'}"
        for m in methods]]
    for k, target in enumerate(results["mac_targets"]):
        row = [str(k), f"{100 * target:.0f} %"]
        for r in methods.values():
            cell = f"{100 * r['accuracy_before_finetuning'][k]:.2f} %"
            if r.get("accuracy_before_finetuning_bn_calibrated"):
                cell += (" -> " f"{100 * r['accuracy_before_finetuning_bn_calibrated'][k]:.2f} %")
            row.append(cell)
        rows.append(row)
    text += ("\n\nbefore fine-tuning: accuracy right after slicing ("
             + ("without -> with BN recalibration" if calibrated
                else "no BN recalibration") + ")\n" + "\n".join(_aligned(rows)))
    return text


# Several seeds -------------------------------------------------------------

def parse_seeds(text):
    """'0-4' -> [0, 1, 2, 3, 4]; '0,2,5' -> [0, 2, 5]; '3' -> [3]."""
    import re

    seeds = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise ValueError(
                f"--seeds {text!r}: give a range like 0-4 or a list like "
                "0,1,2 of non-negative integers.")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: a seed is repeated.")
    return seeds


def run_seeds(seeds, out="hads_demo", log=print, **kwargs):
    """`run` once per seed (into `out/seed_<s>/`), then mean +- std over seeds.

    Returns the summary dict, also written to `out/seeds.json`, with
    `out/seeds.txt` (the table) and `out/accuracy_vs_macs_seeds.png`
    (error bars of one standard deviation). Standard deviations are sample
    standard deviations (ddof=1) over the seeds.
    """
    from hads_keras import plots

    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError("run_seeds needs at least two seeds for a standard "
                         f"deviation; got {seeds}.")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs = []
    for i, seed in enumerate(seeds):
        log(f"=== seed {seed} ({i + 1}/{len(seeds)}) ===")
        runs.append(run(seed=seed, out=out / f"seed_{seed}", log=log, **kwargs))
    summary = summarize_seeds(runs)
    summary["seconds"] = round(time.time() - started, 1)
    with open(out / "seeds.json", "w") as f:
        json.dump(summary, f, indent=2, default=_jsonable)
    table = format_seeds_table(summary)
    (out / "seeds.txt").write_text(table + "\n")
    full_macs = summary["methods"]["HADS"]["macs_mean"][0]
    plots.accuracy_vs_macs(
        {m: (r["macs_mean"], r["accuracy_mean"], r["accuracy_std"])
         for m, r in summary["methods"].items()},
        out / "accuracy_vs_macs_seeds.png", full_macs=full_macs,
        title=(f"digits, {summary['model']}: mean +- std over "
               f"{len(seeds)} seeds"))
    log(table)
    return summary


def summarize_seeds(runs):
    """Mean and sample standard deviation over runs, per method and subnetwork."""
    first = runs[0]
    for r in runs[1:]:
        for key in ("model", "epochs", "finetune_epochs", "method", "few_shot",
                    "mac_targets", "bn_calibration"):
            if r[key] != first[key]:
                raise ValueError(f"runs differ in '{key}': {first[key]} vs {r[key]}.")

    def stats(values):
        values = np.asarray(values, dtype=np.float64)   # [seeds, subnetworks]
        return (values.mean(axis=0).tolist(), values.std(axis=0, ddof=1).tolist())

    summary = {key: first[key] for key in (
        "model", "epochs", "finetune_epochs", "method", "few_shot",
        "mac_targets", "bn_calibration")}
    summary["seeds"] = [r["seed"] for r in runs]
    full = [r["full_network_accuracy"] for r in runs]
    summary["full_network_accuracy"] = full
    summary["full_network_accuracy_mean"] = float(np.mean(full))
    summary["full_network_accuracy_std"] = float(np.std(full, ddof=1))
    summary["methods"] = {}
    for method in first["methods"]:
        per_run = [r["methods"][method] for r in runs]
        entry = {}
        for key in ("macs", "accuracy", "accuracy_before_finetuning",
                    "accuracy_before_finetuning_bn_calibrated"):
            if any(p.get(key) is None for p in per_run):
                continue
            values = [p[key] for p in per_run]
            entry[key] = values
            entry[f"{key}_mean"], entry[f"{key}_std"] = stats(values)
        summary["methods"][method] = entry
    # Per subnetwork: the method with the best mean accuracy.
    summary["best_method"] = [
        max(summary["methods"],
            key=lambda m: summary["methods"][m]["accuracy_mean"][k])
        for k in range(len(first["mac_targets"]))]
    return summary


def format_seeds_table(summary):
    """Mean +- std per subnetwork and method, as a Markdown table."""
    methods = summary["methods"]
    full_macs = methods["HADS"]["macs_mean"][0]
    n = len(summary["seeds"])

    def cell(r, key, k, digits=2):
        return (f"{100 * r[key + '_mean'][k]:.{digits}f} ± "
                f"{100 * r[key + '_std'][k]:.{digits}f}")

    lines = [
        f"digits, {summary['model']}, seeds {summary['seeds']}: test accuracy "
        f"(%) after {summary['finetune_epochs']} fine-tuning epochs, mean ± "
        f"std over {n} seeds; MACs in % of the full network (mean over seeds); "
        "full network before slicing "
        f"{100 * summary['full_network_accuracy_mean']:.2f} ± "
        f"{100 * summary['full_network_accuracy_std']:.2f} %",
        "",
        "| sub | target | " + " | ".join(f"{m} (MACs %)" for m in methods)
        + " | best mean |",
        "|---|---|" + "---|" * len(methods) + "---|"]
    for k, target in enumerate(summary["mac_targets"]):
        row = [str(k), f"{100 * target:.0f} %"]
        for r in methods.values():
            row.append(f"{cell(r, 'accuracy', k)} "
                       f"({100 * r['macs_mean'][k] / full_macs:.1f})")
        row.append(summary["best_method"][k])
        lines.append("| " + " | ".join(row) + " |")
    if all("accuracy_before_finetuning_bn_calibrated_mean" in r
           for r in methods.values()):
        lines += ["", "Before fine-tuning, right after slicing: without -> "
                      "with BN recalibration (mean ± std)", "",
                  "| sub | " + " | ".join(methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for k in range(len(summary["mac_targets"])):
            row = [str(k)] + [
                f"{cell(r, 'accuracy_before_finetuning', k)} -> "
                f"{cell(r, 'accuracy_before_finetuning_bn_calibrated', k)}"
                for r in methods.values()]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# Command line ------------------------------------------------------------

def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="the HADS pipeline on scikit-learn's digits (minutes)",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="ds_cnn",
                        help="network family (default: ds_cnn)")
    parser.add_argument("--epochs", type=int, default=30,
                        help="training epochs of the full network")
    parser.add_argument("--finetune-epochs", type=int, default=15,
                        help="multi-width fine-tuning epochs per method")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of Keras, NumPy and the random baseline")
    parser.add_argument("--seeds", default=None, metavar="RANGE",
                        help="run once per seed (e.g. 0-4 or 0,1,2) into "
                             "OUT/seed_<s>/ and write mean +- std over them "
                             "(seeds.json, seeds.txt, "
                             "accuracy_vs_macs_seeds.png)")
    parser.add_argument("--out", default="hads_demo", help="output folder")
    parser.add_argument("--few-shot", type=int, default=None, metavar="N",
                        help="fine-tune on N training samples per class")
    parser.add_argument("--method", default="bottom_up",
                        choices=("bottom_up", "top_down", "joint"),
                        help="knapsack heuristic for HADS, L1 and random")
    parser.add_argument("--no-bn-calibration", action="store_true",
                        help="do not recompute the subnetworks' BN "
                             "statistics before fine-tuning")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite / C array export")
    parser.add_argument("--quiet", action="store_true",
                        help="no Keras progress bars")
    parser.set_defaults(func=_run_command)
    return parser


def _run_command(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = dict(model_name=args.model, epochs=args.epochs,
                   finetune_epochs=args.finetune_epochs,
                   few_shot=args.few_shot, method=args.method,
                   export=not args.no_export,
                   bn_calibration=not args.no_bn_calibration,
                   verbose=0 if args.quiet else 2)
    if args.seeds is not None:
        try:
            seeds = parse_seeds(args.seeds)
            if len(seeds) < 2:
                raise ValueError(f"--seeds {args.seeds!r}: give at least two "
                                 "seeds (use --seed for one run).")
        except ValueError as error:
            print(f"hads demo: {error}")
            return 2
        summary = run_seeds(seeds, out=args.out, **options)
        print(f"done in {summary['seconds']} s; files in {args.out}/")
        return 0
    results = run(seed=args.seed, out=args.out, **options)
    print(f"done in {results['seconds']} s; files in {args.out}/")
    return 0
