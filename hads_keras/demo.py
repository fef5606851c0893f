"""`hads demo`: the whole HADS pipeline on scikit-learn's digits, in minutes.

    hads demo [--model ds_cnn|cnn|dnn] [--epochs 30] [--finetune-epochs 15]
              [--seed 0 | --seeds 0-4] [--out hads_demo] [--few-shot N]
              [--method bottom_up|top_down|joint] [--no-bn-calibration]
              [--no-export] [--mac-targets 1,0.75,0.5,0.25]
              [--latency-targets 1,0.75,0.5,0.25] [--latency-table auto|qemu|host|FILE]
              [--memory-limit BYTES]

1. Load `sklearn.datasets.load_digits` (1,797 real 8x8 images, 10 classes;
   ships with scikit-learn, no download); fixed stratified 75/25 split.
2. Train a small network built from `hads_keras.layers`.
3. Taylor importance of every unit (`hads_keras.taylor_importance`).
4. Solve the nested knapsack for 100/75/50/25 % of the MACs (`hads.solve`),
   or for the budgets given: `--latency-targets` in a latency table
   measured now (QEMU's Cortex-M4 when installed, else this host) or read
   from `--latency-table`, and/or `--memory-limit` bytes of activation
   memory per subnetwork (a full network over it makes the largest
   subnetwork smaller, `hads_keras.budgets`).
5. Recompute every subnetwork's BatchNormalization statistics on the
   fine-tuning images (`hads.calibrate_batch_norm`, forward passes only;
   accuracy is measured before and after), then fine-tune all subnetworks
   at once (`NestedModel.fit`, multi-width loss).
6. The baselines, each calibrated and fine-tuned the same way from the same
   trained weights: uniform width (`hads.uniform_plan`), L1-norm importance
   (BN-folded kernels) and random importance (both through the same solver);
   with latency targets also HADS at the same fractions of the MACs, to
   show what budgeting latency itself buys.
7. Print a table per subnetwork and write to `--out` the files listed in
   `OUTPUT_FILES` (`nested.keras`, the four plans, `results.json`,
   `results.txt`, two plots, and the TFLite / C array export `export/`
   unless `--no-export`). With a latency table every subnetwork of every
   method is measured afterwards on the table's target and
   `accuracy_vs_latency.png` plots accuracy against it; with a memory
   limit the table lists each subnetwork's planned arena and the export
   the TFLite Micro runtime's.

`--seeds 0-4` runs the demo once per seed (into `--out/seed_<s>/`) and
writes the mean and standard deviation over the seeds of every subnetwork
and method: `seeds.json`, `seeds.txt` and `accuracy_vs_macs_seeds.png`
(error bars: +- one standard deviation).
"""

import json
import os
import pathlib
import re
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
# Written as well with a latency table (--latency-targets / --latency-table).
LATENCY_FILES = ("accuracy_vs_latency.png", "plan_hads_mac_budget.json",
                 "latency_table.json")
MAC_BUDGET_LABEL = "HADS, MAC budget"   # HADS at MAC fractions = the latency ones


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
        export=True, bn_calibration=True, verbose=1, log=print,
        mac_targets=None, latency_targets=None, latency_table=None,
        memory_limit=None):
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
        mac_targets: MAC budgets (`hads_keras.solve`); default 100/75/50/25 %
            unless latency targets are given.
        latency_targets: latency budgets (fractions of the full latency or
            strings with a unit, `hads_keras.solve`) in `latency_table`.
        latency_table: a table file, or "qemu", "host", "auto" to measure
            one now (`hads_keras.budgets.latency_table`); with it (or with
            latency targets, then "auto") every subnetwork's latency is
            measured after fine-tuning and plotted.
        memory_limit: activation-memory bytes every subnetwork must fit
            (`hads_keras.solve(memory_limit=...)`).
    """
    import keras

    import hads_keras as hads
    from hads_keras import budgets
    from hads_keras import fewshot
    from hads_keras import memory
    from hads_keras import plots

    if int(epochs) < 1 or int(finetune_epochs) < 0:
        raise ValueError(
            f"epochs must be >= 1 and finetune_epochs >= 0; got {epochs}, "
            f"{finetune_epochs}.")
    if mac_targets is None and latency_targets is None:
        mac_targets = MAC_TARGETS
    if latency_targets is not None and latency_table is None:
        latency_table = "auto"
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
    table = None
    if latency_table is not None:
        table = budgets.latency_table(model, latency_table,
                                      points=budgets.LATENCY_POINTS,
                                      multiple_of=budgets.LATENCY_MULTIPLE_OF, log=log)
        table.save(out / "latency_table.json")
        full_latency = float(table.cost(hads.costs.full_widths(model)))
        log(f"      latency table: target '{table.target}', unit {table.unit}, full "
            f"network {full_latency:,.0f} {table.unit}")
    budget = dict(mac_targets=mac_targets, latency_targets=latency_targets,
                  latency_table=table if latency_targets is not None else None,
                  memory_limit=memory_limit)
    log(f"[2/5] Taylor importance, nested knapsack for {describe_budgets(budget)}")
    import tensorflow as tf
    batches = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(64)
    taylor = hads.taylor_importance(model, batches)
    solve_budget = {k: v for k, v in budget.items() if v is not None}
    step = {} if table is None else {"multiple_of": budgets.LATENCY_MULTIPLE_OF}
    solve_options = dict(step, method=method,
                         min_width=budgets.LATENCY_MULTIPLE_OF if table is not None else 1)
    plans = {"HADS": hads.solve(model, taylor, **solve_options, **solve_budget),
             "uniform": hads.uniform_plan(model, **step, **solve_budget)}
    if latency_targets is not None and mac_targets is None:
        fractions = mac_fractions_of(plans["HADS"], full_latency)
        plans[MAC_BUDGET_LABEL] = hads.solve(
            model, taylor, mac_targets=fractions, memory_limit=memory_limit,
            **solve_options)
    plans["L1"] = hads.solve(model, hads.l1_importance(model), **solve_options,
                             **solve_budget)
    plans["random"] = hads.solve(model, hads.random_importance(model, seed=seed),
                                 **solve_options, **solve_budget)
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
               "mac_targets": None if mac_targets is None else list(mac_targets),
               "latency_targets": (None if latency_targets is None
                                   else list(latency_targets)),
               "memory_limit": memory_limit,
               "target_labels": budgets.target_labels(plans["HADS"]),
               "full_macs": hads.model_costs(model)["macs"],
               "bn_calibration": bool(bn_calibration),
               "full_network_accuracy": full_accuracy, "methods": {}}
    arena = memory.arena_function(model)
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
        widths = [plan.subnetwork_widths(k) for k in range(count)]
        results["methods"][label] = {
            "widths": {g: list(plan.widths(g)) for g in plan.groups},
            "macs": [c["macs"] for c in plan.costs],
            "params": [c["params"] for c in plan.costs],
            "planned_arena_bytes": [int(arena(w)) for w in widths],
            "accuracy_before_finetuning": [before[f"sub{k}_accuracy"]
                                           for k in range(count)],
            "accuracy_before_finetuning_bn_calibrated": (
                None if calibrated is None
                else [calibrated[f"sub{k}_accuracy"] for k in range(count)]),
            "accuracy": [after[f"sub{k}_accuracy"] for k in range(count)],
        }
        if table is not None:
            results["methods"][label]["latency_table_predicted"] = [
                float(table.cost(w)) for w in widths]
        nested_models[label] = nested

    if table is not None:
        log(f"      measuring every subnetwork's latency (target '{table.target}')")
        measured, how = budgets.subnetwork_latencies(model, table, plans, nested_models)
        for label, values in measured.items():
            results["methods"][label]["latency"] = values
        results["latency"] = {"target": table.target, "unit": table.unit, "how": how,
                              "full": full_latency,
                              "table": "latency_table.json"}

    # 4. Files.
    log(f"[4/5] writing {out}/")
    hads_nested = nested_models["HADS"]
    hads_nested.set_subnetwork(0)
    hads_nested.save(out / "nested.keras")
    plans["HADS"].save(out / "plan.json")
    for label, plan in plans.items():
        if label != "HADS":
            plan.save(out / f"plan_{_file_label(label)}.json")
    full_macs = results["full_macs"]
    plots.accuracy_vs_macs(
        {m: (r["macs"], r["accuracy"]) for m, r in results["methods"].items()},
        out / "accuracy_vs_macs.png", full_macs=full_macs,
        title=f"digits, {model_name}: test accuracy after fine-tuning")
    if table is not None:
        info = results["latency"]
        plots.accuracy_vs_latency(
            {m: (r["latency"], r["accuracy"]) for m, r in results["methods"].items()},
            out / "accuracy_vs_latency.png", unit=info["unit"], how=info["how"],
            full_latency=info["full"],
            title=f"digits, {model_name}: accuracy vs latency ({info['target']})")
    hads_plan = hads_nested.plan
    plots.slicing_points(hads_plan, out / "slicing_points.png",
                         title=f"HADS slicing points ({model_name})")

    # 5. Export (TFLite per subnetwork, nested int8 TFLite, C array).
    # The metadata's latency: the plan's own when solved in the table; else
    # the table's at the plan's widths, which needs the model the table was
    # measured on (a reduced nested model has fewer channels).
    plan_has_latency = "latency" in plans["HADS"].costs[0]
    metadata_table = None if plan_has_latency or plans["HADS"].reduced else table
    results["export"] = _export(hads_nested, out / "export", x_train, x_test,
                                y_test, export, log, metadata_table)
    if memory_limit is not None:
        results["memory"] = memory_check(results, memory_limit)
    results["seconds"] = round(time.time() - started, 1)
    table_text = format_table(results)
    log(table_text)
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2, default=_jsonable)
    report = results["export"].get("report")
    if report:   # the exporter's table: int8 accuracies, sizes, arenas
        from hads_keras.export import format_report
        table_text += "\n\nExport (TFLite per subnetwork):\n" + format_report(report)
    (out / "results.txt").write_text(table_text + "\n")
    return results


def _file_label(label):
    """'HADS, MAC budget' -> 'hads_mac_budget' (plan file names)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def describe_budgets(budget):
    """One line naming the budgets, for the log."""
    parts = []
    if budget.get("mac_targets") is not None:
        parts.append(f"MACs {_percent_list(budget['mac_targets'])}")
    if budget.get("latency_targets") is not None:
        parts.append(f"latency {_percent_list(budget['latency_targets'])}")
    if budget.get("memory_limit") is not None:
        parts.append(f"at most {budget['memory_limit']:,} B of activation memory")
    return ", ".join(parts)


def _percent_list(values):
    return "[" + ", ".join(f"{100 * v:g} %" if isinstance(v, (int, float)) and v <= 1
                           else str(v) for v in values) + "]"


def mac_fractions_of(plan, full_latency):
    """The latency plan's budgets as fractions of the full latency: the MAC
    targets of the MAC-budget plan it is compared with (a budget given in
    the table's unit becomes its fraction of the full network's latency)."""
    values = plan.info["targets"]["latency"]
    return [min(1.0, v if v <= 1 else v / full_latency) for v in values]


def memory_check(results, limit):
    """Every HADS subnetwork's activation memory against `limit`: simulated
    planner and, where the export measured it, the head of the TFLite Micro
    runtime's arena for the materialized subnetwork."""
    planned = results["methods"]["HADS"]["planned_arena_bytes"]
    report = (results.get("export") or {}).get("report") or {}
    heads = [row.get("materialized_arena_head") for row in report.get("subnetworks", [])]
    measured = heads if heads and all(h is not None for h in heads) else None
    return {"limit": limit, "planned_arena_bytes": planned,
            "tflm_arena_head_bytes": measured,
            "fits": all(p <= limit for p in (measured or planned))}


def _export(nested, out_dir, x_train, x_test, y_test, enabled, log, table=None):
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
                         labels=[str(d) for d in range(NUM_CLASSES)], log=log,
                         latency_table=table)
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

    Baselines show their accuracy and, in brackets, their MACs in % of the
    full network (their measured latency in % of the full network's when
    there is a latency table). A second table shows the accuracy straight
    after slicing, before fine-tuning, without and with BN recalibration.
    """
    methods = results["methods"]
    hads = methods["HADS"]
    full_macs = results["full_macs"]
    latency = results.get("latency")
    memory_limit = results.get("memory_limit")
    baselines = [m for m in methods if m != "HADS"]
    share = "latency %" if latency else "MACs %"
    header = ["sub", "budget", "MACs", "MACs %"]
    if latency:
        header += [f"latency ({latency['unit']})", "latency %"]
    if memory_limit is not None:
        header += ["planned arena B"]
    header += ["params", "HADS acc"] + [f"{m} acc ({share})" for m in baselines]

    def cost_share(r, k):
        if latency:
            return 100 * r["latency"][k] / latency["full"]
        return 100 * r["macs"][k] / full_macs

    rows = [header]
    for k, label in enumerate(results["target_labels"]):
        row = [str(k), label, f"{hads['macs'][k]:,}",
               f"{100 * hads['macs'][k] / full_macs:.1f}"]
        if latency:
            row += [f"{hads['latency'][k]:,.0f}", f"{cost_share(hads, k):.1f}"]
        if memory_limit is not None:
            row += [f"{hads['planned_arena_bytes'][k]:,}"]
        row += [f"{hads['params'][k]:,}", f"{100 * hads['accuracy'][k]:.2f} %"]
        for m in baselines:
            r = methods[m]
            row.append(f"{100 * r['accuracy'][k]:.2f} % ({cost_share(r, k):.1f})")
        rows.append(row)
    title = (f"digits, {results['model']}, seed {results['seed']}: test "
             f"accuracy per subnetwork after {results['finetune_epochs']} "
             "fine-tuning epochs (full network before slicing: "
             f"{100 * results['full_network_accuracy']:.2f} %)")
    text = title + "\n" + "\n".join(_aligned(rows))
    if latency:
        text += (f"\nlatency: {latency['how']}, target '{latency['target']}'; % of "
                 f"the full network's {latency['full']:,.0f} {latency['unit']} in "
                 "the table")
    if results.get("memory"):
        check = results["memory"]
        measured = check.get("tflm_arena_head_bytes")
        text += (f"\nmemory limit {check['limit']:,} B: every subnetwork "
                 f"{'fits' if check['fits'] else 'does NOT fit'}"
                 + (f"; TFLite Micro runtime arena heads (materialized "
                    f"subnetworks): {', '.join(f'{b:,}' for b in measured)} B"
                    if measured else " (simulated planner; export skipped)"))
    calibrated = any(r.get("accuracy_before_finetuning_bn_calibrated")
                     for r in methods.values())
    rows = [["sub", "budget"] + [
        f"{m} {'raw -> BN-calibrated' if calibrated else 'raw'}"
        for m in methods]]
    for k, label in enumerate(results["target_labels"]):
        row = [str(k), label]
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
    full_macs = summary["full_macs"]
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
        for key in _SAME_IN_EVERY_SEED:
            if r.get(key) != first.get(key):
                raise ValueError(f"runs differ in '{key}': {first[key]} vs {r[key]}.")

    def stats(values):
        values = np.asarray(values, dtype=np.float64)   # [seeds, subnetworks]
        return (values.mean(axis=0).tolist(), values.std(axis=0, ddof=1).tolist())

    summary = {key: first.get(key) for key in _SAME_IN_EVERY_SEED + ("full_macs",)}
    summary["seeds"] = [r["seed"] for r in runs]
    full = [r["full_network_accuracy"] for r in runs]
    summary["full_network_accuracy"] = full
    summary["full_network_accuracy_mean"] = float(np.mean(full))
    summary["full_network_accuracy_std"] = float(np.std(full, ddof=1))
    summary["methods"] = {}
    for method in first["methods"]:
        per_run = [r["methods"][method] for r in runs]
        entry = {}
        for key in ("macs", "latency", "accuracy", "accuracy_before_finetuning",
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
        for k in range(len(first["target_labels"]))]
    return summary


# What every run of a seed summary shares (the budgets give the subnetworks).
_SAME_IN_EVERY_SEED = ("model", "epochs", "finetune_epochs", "method", "few_shot",
                       "mac_targets", "latency_targets", "memory_limit",
                       "target_labels", "bn_calibration")


def format_seeds_table(summary):
    """Mean +- std per subnetwork and method, as a Markdown table."""
    methods = summary["methods"]
    full_macs = summary["full_macs"]
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
        "| sub | budget | " + " | ".join(f"{m} (MACs %)" for m in methods)
        + " | best mean |",
        "|---|---|" + "---|" * len(methods) + "---|"]
    for k, label in enumerate(summary["target_labels"]):
        row = [str(k), label]
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
        for k in range(len(summary["target_labels"])):
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
    from hads_keras import budgets
    budgets.add_arguments(parser)
    parser.set_defaults(func=_run_command)
    return parser


def _run_command(args):
    from hads_keras import budgets

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        budget = budgets.from_arguments(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"hads demo: {error}")
        return 2
    options = dict(model_name=args.model, epochs=args.epochs,
                   finetune_epochs=args.finetune_epochs,
                   few_shot=args.few_shot, method=args.method,
                   export=not args.no_export,
                   bn_calibration=not args.no_bn_calibration,
                   verbose=0 if args.quiet else 2, **budget)
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
    try:
        results = run(seed=args.seed, out=args.out, **options)
    except (ValueError, FileNotFoundError) as error:   # budgets the model cannot meet
        print(f"hads demo: {error}")
        return 2
    print(f"done in {results['seconds']} s; files in {args.out}/")
    return 0
