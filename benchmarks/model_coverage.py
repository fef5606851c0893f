"""The HADS pipeline on models users bring, stage by stage, with figures.

Stages per model (each `ok` or the error, so one failure does not hide the
next model): convert (function kept within 1e-5) -> Taylor importance in fit
-> solve at 100/75/50/25 % MACs -> apply + a short multi-width fit ->
nested == extract_subnetwork(k) within 1e-5 for every k -> a random
permutation of every group keeps the function within 1e-5 -> model_costs
equals an independent count on the extracted plain models -> nested int8
.tflite, materialize(k) running in LiteRT for every k -> one per-subnetwork
TFLite export. Data: random tensors of the model's input shape (the figures
are about the pipeline, not accuracy).

Models: the MLPerf Tiny reference architectures (own definitions in
tests/model_zoo.py; VWW MobileNetV1 here), keras.applications MobileNet
(alpha 0.25), MobileNetV2 (alpha 0.35), MobileNetV3Small (with and without
minimalistic) at 96x96, weights=None; `--sweep` also runs convert + costs +
one subnetwork check on every keras.applications model at its smallest
input.

Usage:
  python benchmarks/model_coverage.py [--models a,b] [--sweep]
      [--out benchmarks/results/model_coverage.json]
"""

import argparse
import ast
import json
import re
import pathlib
import sys
import time
import traceback

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TARGETS = [1.0, 0.75, 0.5, 0.25]


def vww_mobilenet_v1(input_shape=(96, 96, 3), classes=2, alpha=0.25):
    """MLPerf Tiny VWW MobileNetV1 (alpha 0.25, 96x96), own definition."""
    import keras
    inputs = keras.Input(input_shape)
    filters = int(32 * alpha)
    x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                            name="conv0")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.ReLU()(x)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + \
        [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (f, s) in enumerate(plan):
        x = keras.layers.DepthwiseConv2D(3, strides=s, padding="same",
                                         use_bias=False, name=f"dw{i}")(x)
        x = keras.layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Conv2D(int(f * alpha), 1, use_bias=False, name=f"pw{i}")(x)
        x = keras.layers.BatchNormalization(name=f"pw{i}_bn")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="vww_mobilenet_v1")


def _applications():
    import keras
    A = keras.applications
    return {
        "mobilenet_a025": lambda: A.MobileNet(input_shape=(96, 96, 3), alpha=0.25,
                                               weights=None, classes=10),
        "mobilenetv2_a035": lambda: A.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                                   weights=None, classes=10),
        "mobilenetv3small": lambda: A.MobileNetV3Small(
            input_shape=(96, 96, 3), weights=None, classes=10),
        "mobilenetv3small_min": lambda: A.MobileNetV3Small(
            input_shape=(96, 96, 3), weights=None, classes=10, minimalistic=True),
    }


def builders():
    import model_zoo
    out = dict(model_zoo.BUILDERS)
    out["vww_mobilenet_v1"] = vww_mobilenet_v1
    out.update(_applications())
    return out


def _stage(report, name, fn):
    t0 = time.perf_counter()
    try:
        value = fn()
        report["stages"][name] = "ok"
        return value
    except Exception as error:  # noqa: BLE001 - reported, next stage skipped
        report["stages"][name] = f"failed: {type(error).__name__}: {error}"[:600]
        report["traceback"] = traceback.format_exc()[-2000:]
        raise
    finally:
        report["seconds"][name] = round(time.perf_counter() - t0, 1)


def run_pipeline(name, build, samples=32):
    import keras
    import hads_keras as hads
    import model_zoo
    from hads_keras import export
    from hads_keras.export import checks, materialize

    report = {"model": name, "stages": {}, "seconds": {}}
    keras.utils.set_random_seed(0)
    try:
        plain = build()
        x, y = model_zoo.data_for(plain, n=samples)
        if plain.name.startswith(("mobilenet", "MobilenetV3")):
            x = np.random.default_rng(0).uniform(0, 255, x.shape).astype("float32")
        loss = model_zoo.loss_for(plain)

        def convert():
            model = hads.convert(plain)
            diff = np.abs(model.predict(x[:4], verbose=0) - plain.predict(x[:4], verbose=0)).max()
            assert diff < 1e-5, f"converted model differs by {diff}"
            report["groups"] = len(hads.groups(model).sliceable)
            report["full_costs"] = hads.model_costs(model)
            return model
        model = _stage(report, "convert", convert)

        def importance():
            model.compile(keras.optimizers.Adam(1e-3), loss)
            callback = hads.TaylorImportance()
            model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
            return callback
        scores = _stage(report, "importance_in_fit", importance)

        def solve():
            plan = hads.solve(model, scores, mac_targets=TARGETS, time_limit=20.0)
            full = report["full_costs"]["macs"]
            report["mac_share"] = [round(c["macs"] / full, 4) for c in plan.costs]
            report["solver"] = plan.info.get("solver")
            return plan
        plan = _stage(report, "solve", solve)

        def apply():
            nested = hads.apply(model, plan)
            nested.compile(keras.optimizers.Adam(1e-3), loss)
            nested.fit(x, y, epochs=1, batch_size=16, verbose=0)
            return nested
        nested = _stage(report, "apply_multi_width_fit", apply)

        def equality():
            worst, costs_ok = 0.0, True
            for k in range(plan.num_subnetworks):
                sub = hads.extract_subnetwork(nested, k)
                with nested.subnetwork(k):
                    got = nested.predict(x[:8], verbose=0)
                worst = max(worst, float(np.abs(got - sub.predict(x[:8], verbose=0)).max()))
                costs_ok &= model_zoo.independent_costs(sub) == plan.costs[k]
            report["nested_vs_extracted_max_abs"] = worst
            assert worst <= 1e-5, f"nested and extracted differ by {worst}"
            assert costs_ok, "plan costs differ from the independent count"
        _stage(report, "nested_equals_extracted_and_costs", equality)

        def permutation():
            rng = np.random.default_rng(1)
            order = {g.name: rng.permutation(g.width)
                     for g in hads.groups(model).sliceable}
            permuted = hads.permute_units(model, order)
            diff = float(np.abs(permuted.predict(x[:8], verbose=0)
                                - model.predict(x[:8], verbose=0)).max())
            report["permutation_max_abs"] = diff
            assert diff <= 1e-5, f"permutation changes the function by {diff}"
        _stage(report, "permutation_invariance", permutation)

        def nested_int8():
            data = export.tflite_nested(nested, None, x)
            report["nested_bytes"] = len(data)
            errors = []
            for k in range(plan.num_subnetworks):
                got = checks.run_litert(materialize(data, k), x[:2])
                want = hads.extract_subnetwork(nested, k).predict(x[:2], verbose=0)
                errors.append(float(np.abs(got - want).max() / (np.abs(want).max() + 1e-9)))
            report["materialized_int8_rel_error"] = [round(e, 4) for e in errors]
        _stage(report, "nested_int8_export_materialize_litert", nested_int8)

        def per_subnetwork():
            k = plan.num_subnetworks - 1
            flat = export.tflite_subnetwork(nested, k)
            got = checks.run_litert(flat, x[:2])
            want = hads.extract_subnetwork(nested, k).predict(x[:2], verbose=0)
            assert np.abs(got - want).max() < 1e-3
        _stage(report, "per_subnetwork_tflite", per_subnetwork)
    except Exception:  # noqa: BLE001 - recorded in report["stages"]
        pass
    return report


def sweep(include=None, retries=3):
    """convert + costs + one subnetwork equality on keras.applications models."""
    import inspect
    import keras
    import hads_keras as hads
    import model_zoo

    results = []
    for name, fn in sorted(inspect.getmembers(keras.applications, callable)):
        if not name[0].isupper() or (include and name not in include):
            continue
        entry = {"model": name}
        keras.utils.set_random_seed(0)
        try:
            size = 75 if name.startswith("Inception") else 71 if name == "Xception" else 32
            if name.startswith(("NASNet",)):
                size = 32
            if name.startswith(("EfficientNet", "ConvNeXt", "ResNet", "DenseNet",
                                "VGG", "MobileNet", "RegNet")):
                size = 32
            kwargs = dict(weights=None, input_shape=(size, size, 3), classes=10)
            if name.startswith("NASNet"):
                kwargs["input_shape"] = (32, 32, 3)
            t0 = time.perf_counter()
            plain = fn(**kwargs)
            entry["params"] = int(plain.count_params())
            keep = []
            for _ in range(retries + 1):
                try:
                    model = hads.convert(plain, keep=keep)
                    break
                except ValueError as error:
                    # Follow the error's own advice (keep=[...]) a few times.
                    found = re.search(r"keep=(\[[^\]]*\])", str(error))
                    if not found or _ == retries:
                        raise
                    keep += ast.literal_eval(found.group(1))
            if keep:
                entry["keep"] = keep
            costs = hads.model_costs(model)
            entry["costs"] = costs
            groups = hads.groups(model).sliceable
            plan = hads.Plan({g.name: [g.width, max(1, g.width // 2)] for g in groups})
            nested = hads.apply(model, plan)
            x = np.random.default_rng(0).uniform(0, 255, (2,) + plain.input_shape[1:]).astype("float32")
            sub = hads.extract_subnetwork(nested, 1)
            with nested.subnetwork(1):
                got = nested.predict(x, verbose=0)
            diff = float(np.abs(got - sub.predict(x, verbose=0)).max())
            ok_costs = model_zoo.independent_costs(plain) == costs and \
                model_zoo.independent_costs(sub) == hads.subnetwork_costs(nested, plan)[1]
            entry.update(groups=len(groups), half_width_max_abs=diff,
                         costs_match=bool(ok_costs),
                         status="ok" if diff <= 1e-4 and ok_costs else "mismatch",
                         seconds=round(time.perf_counter() - t0, 1))
        except Exception as error:  # noqa: BLE001 - recorded
            entry["status"] = f"failed: {type(error).__name__}: {error}"[:400]
        print(json.dumps(entry), flush=True)
        results.append(entry)
        keras.backend.clear_session()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated subset")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--sweep_only", default=None,
                        help="comma-separated keras.applications names")
    parser.add_argument("--keep_retries", type=int, default=0,
                        help="sweep: retry convert with the keep=[...] an error "
                             "recommends, up to this many times")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "model_coverage.json"))
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    table = builders()
    names = args.models.split(",") if args.models else list(table)
    pipelines = {r["model"]: r for r in result.get("pipeline", [])}
    if args.models != "none":
        for name in names:
            report = run_pipeline(name, table[name])
            print(json.dumps({k: v for k, v in report.items() if k != "traceback"}), flush=True)
            pipelines[name] = report
    result["pipeline"] = list(pipelines.values())
    if args.sweep or args.sweep_only:
        include = args.sweep_only.split(",") if args.sweep_only else None
        previous = {r["model"]: r for r in result.get("applications", [])}
        previous.update({r["model"]: r for r in sweep(include, args.keep_retries)})
        result["applications"] = list(previous.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
