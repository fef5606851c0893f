"""Checks with real runtimes, and the per-subnetwork export report.

* `run_litert(bytes, x)`: outputs of `ai_edge_litert`'s interpreter (the
  builtin reference kernels by default), dequantized to float;
* `run_tflm(bytes, x)`: the same with the TFLite Micro Python runtime;
* `arena_size(bytes)`: tensor arena bytes TFLite Micro allocates for the
  model (its `RecordingMicroAllocator` total); `arena_usage` splits it into
  head (planned activations) and tail (persistent data);
* `live_tensor_bytes(bytes)`: per operator, the activation bytes live
  while it runs, read from the file (the reference for `hads_keras.memory`);
* `check_nested(bytes)`: structural checks of a nested model;
* `subnetwork_report(nested, x, y, representative_data)`: per subnetwork,
  float accuracy in Keras, float and int8 accuracy in TFLite, size and
  arena of the per-subnetwork int8 model and of the materialized nested
  model, and the arena of the nested model itself (`nested_arena_report`,
  when a TFLite Micro tree is given); `format_report` prints it as a table.
"""

import contextlib
import ctypes
import os
import re
import tempfile

import numpy as np

from hads_keras.export import flatbuffer

_SLICEABLE_BUILTINS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def _quantize(x, details):
    if details["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zero_point = details["quantization"]
    info = np.iinfo(details["dtype"])
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(details["dtype"])


def _dequantize(y, details):
    if details["dtype"] == np.float32:
        return y.astype(np.float32)
    scale, zero_point = details["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


def run_litert(tflite_bytes, x, reference=True):
    """Outputs of a single-input model for every sample of `x` (batch 1 each)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kwargs = {}
    if reference:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    interpreter = Interpreter(model_content=bytes(tflite_bytes), **kwargs)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ValueError(
            f"run_litert: the model has {len(inputs)} inputs; a nested model "
            "cannot run here (its HADS operators are custom): materialize it.")
    inp, out = inputs[0], interpreter.get_output_details()[0]
    results = []
    for sample in np.asarray(x, np.float32):
        interpreter.set_tensor(inp["index"], _quantize(sample[None], inp))
        interpreter.invoke()
        results.append(_dequantize(interpreter.get_tensor(out["index"])[0], out))
    return np.asarray(results)


def _tflm_details(details):
    quant = details.get("quantization_parameters") or {}
    scales = np.atleast_1d(quant.get("scales", [])) if quant else []
    if len(scales):
        zero_points = np.atleast_1d(quant["zero_points"])
        return {"dtype": details["dtype"],
                "quantization": (float(scales[0]), int(zero_points[0]))}
    return {"dtype": details["dtype"], "quantization": details.get("quantization", (0.0, 0))}


def run_tflm(tflite_bytes, x):
    """Outputs with the TFLite Micro Python runtime (builtin operators only)."""
    from tflite_micro import runtime
    interpreter = runtime.Interpreter.from_bytes(bytes(tflite_bytes))
    inp = _tflm_details(interpreter.get_input_details(0))
    out = _tflm_details(interpreter.get_output_details(0))
    results = []
    for sample in np.asarray(x, np.float32):
        interpreter.set_input(_quantize(sample[None], inp), 0)
        interpreter.invoke()
        results.append(_dequantize(np.asarray(interpreter.get_output(0))[0], out))
    return np.asarray(results)


@contextlib.contextmanager
def _captured_output(path):
    """Redirect the process's stdout and stderr (file descriptors 1 and 2,
    where TFLite Micro's C++ logging goes) into `path`."""
    import sys
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "w") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers of the runtime
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def arena_size(tflite_bytes):
    """Tensor arena bytes TFLite Micro allocates for the model.

    The total of the `RecordingMicroAllocator` (head + tail), as printed by
    `print_allocations`, for the TFLite Micro Python runtime's build.
    """
    return arena_usage(tflite_bytes)["total"]


def arena_usage(tflite_bytes):
    """The TFLite Micro arena of a builtin-operator model, in its parts:
    `head` (the planned non-persistent buffers: activations and scratch),
    `tail` (persistent data: tensor structs, operator data such as
    per-channel quantization parameters) and `total`, in bytes, from the
    `RecordingMicroAllocator` of the TFLite Micro Python runtime."""
    from tflite_micro import runtime
    interpreter = runtime.Interpreter.from_bytes(bytes(tflite_bytes))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "allocations.txt")
        with _captured_output(path):
            interpreter.print_allocations()
        with open(path) as f:
            text = f.read()
    found = {part: re.search(rf"Arena allocation {part} (\d+) bytes", text)
             for part in ("total", "head", "tail")}
    if not all(found.values()):
        raise RuntimeError(
            "arena_size: TFLite Micro printed no arena total; got:\n" + text)
    return {part: int(match.group(1)) for part, match in found.items()}


def live_tensor_bytes(tflite_bytes):
    """Per operator of a `.tflite` model (first subgraph), the bytes of the
    activation tensors live while it runs: produced by it or before (model
    inputs from the first operator) and read by it or later (model outputs
    to the last one), as TFLite Micro's planner sees their lifetimes.
    Returns a list of `(operator name, bytes)`; read from the file alone,
    an independent check of `hads_keras.memory`."""
    from ai_edge_litert.schema_py_generated import TensorType
    model = flatbuffer.load(tflite_bytes, "live_tensor_bytes: the model")
    graph = model.subgraphs[0]
    item_bytes = {TensorType.INT8: 1, TensorType.UINT8: 1, TensorType.INT16: 2,
                  TensorType.INT32: 4, TensorType.FLOAT32: 4}

    def constant(index):
        data = model.buffers[graph.tensors[index].buffer].data
        return data is not None and len(data) > 0

    first = {int(i): 0 for i in graph.inputs}
    last = dict(first)
    for k, op in enumerate(graph.operators):
        for i in op.inputs:
            if i >= 0 and not constant(i):
                last[int(i)] = k
        for i in op.outputs:
            first[int(i)] = last[int(i)] = k
    for i in graph.outputs:
        last[int(i)] = len(graph.operators) - 1

    def nbytes(index):
        tensor = graph.tensors[index]
        if tensor.type not in item_bytes:
            raise ValueError(f"live_tensor_bytes: tensor {index} has type "
                             f"{tensor.type}, not an activation type of an "
                             "int8 or float model.")
        return int(np.prod(tensor.shape)) * item_bytes[tensor.type]

    return [(flatbuffer.op_name(model, op),
             sum(nbytes(i) for i in first if first[i] <= k <= last[i]))
            for k, op in enumerate(graph.operators)]


def accuracy(outputs, labels):
    return float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(labels).reshape(-1)))


def check_nested(nested_bytes):
    """Structural checks of a nested model; returns a dict of facts.

    Raises:
        AssertionError-like ValueError naming the problem when the model
        does not re-parse, lacks the `subnetwork` input, keeps a builtin
        FULLY_CONNECTED/CONV_2D/DEPTHWISE_CONV_2D on a sliced layer, lets
        anything but HADS operators and the GATHERs of per-subnetwork
        BatchNormalization tables read `subnetwork` (or has other tables than
        the plan lists), or stores a weight buffer twice.
    """
    from hads_keras.export import batchnorm_tables
    from hads_keras.export import metadata as metadata_lib
    from hads_keras.export.nested import SUBNETWORK_INPUT
    model = flatbuffer.load(nested_bytes, "check_nested: the model")
    plan = metadata_lib.read_metadata(nested_bytes)
    graph = model.subgraphs[0]
    names = [flatbuffer.op_name(model, op) for op in graph.operators]
    selector = [i for i in graph.inputs
                if flatbuffer.tensor_name(graph.tensors[i]) == SUBNETWORK_INPUT]
    if len(selector) != 1:
        raise ValueError("check_nested: no single 'subnetwork' model input.")
    hads = [n for n in names if n.startswith("HADS_")]
    if len(hads) != len(plan["operators"]):
        raise ValueError(
            f"check_nested: {len(hads)} HADS operators but the plan lists "
            f"{len(plan['operators'])} sliced layers.")
    for op, name in zip(graph.operators, names):
        if name.startswith("HADS_") and int(op.inputs[-1]) != int(selector[0]):
            raise ValueError(f"check_nested: a {name} does not read 'subnetwork'.")
    problems = batchnorm_tables.table_problems(
        model, int(selector[0]), int(plan["num_subnetworks"]))
    if problems:
        raise ValueError("check_nested: " + "; ".join(problems) + ".")
    tables = plan.get("batchnorm_tables", [])
    gathers = sum(1 for op, name in zip(graph.operators, names) if name == "GATHER"
                  and int(selector[0]) in [int(i) for i in op.inputs])
    if gathers != 2 * len(tables):
        raise ValueError(
            f"check_nested: {gathers} GATHER operators but the plan lists "
            f"{len(tables)} BatchNormalization tables (a scale and an offset each).")
    seen = {}
    for index, buffer in enumerate(model.buffers):
        if buffer.data is None or len(buffer.data) == 0:
            continue
        key = np.asarray(buffer.data, np.uint8).tobytes()
        if key in seen:
            raise ValueError(f"check_nested: buffers {seen[key]} and {index} "
                             "hold the same bytes.")
        seen[key] = index
    return {"operators": names, "hads_operators": len(hads),
            "builtin_sliceable": [n for n in names if n in _SLICEABLE_BUILTINS],
            "buffers": len(model.buffers), "size": len(nested_bytes)}


def subnetwork_report(nested, x_test, y_test, representative_data,
                      nested_bytes=None, tflm=True, out_dir=None, log=None):
    """Per-subnetwork figures of the export, measured with real runtimes.

    Args:
        nested: the `NestedModel`.
        x_test, y_test: test samples and integer labels.
        representative_data: calibration samples for the int8 models.
        nested_bytes: the nested `.tflite` (exported here when None).
        tflm: also run the per-subnetwork int8 and the materialized models
            in TFLite Micro (accuracies `*_tflm`).
        out_dir: when given, the per-subnetwork and materialized `.tflite`
            files are written there (`subnetwork_<k>_float.tflite`,
            `subnetwork_<k>_int8.tflite`, `nested_materialized_<k>.tflite`).
        log: when given, called with one progress line per subnetwork
            (this takes about 15 s per subnetwork for the demo's model).

    Returns:
        dict with `subnetworks` (one dict per subnetwork), `nested_size`,
        `sum_int8_sizes`.
    """
    import pathlib
    from hads_keras.costs import subnetwork_costs
    from hads_keras.export.convert import tflite_subnetwork
    from hads_keras.export.materialize import materialize
    from hads_keras.export.nested import tflite_nested

    if nested_bytes is None:
        nested_bytes = tflite_nested(nested, None, representative_data)
    costs = subnetwork_costs(nested, nested.plan)
    rows = []
    count = nested.plan.num_subnetworks
    for k in range(count):
        if log is not None:
            log(f"      subnetwork {k} ({k + 1}/{count}): converting to "
                "TFLite float and int8, running LiteRT"
                + (" and TFLite Micro" if tflm else ""))
        with nested.subnetwork(k):
            keras_out = nested.predict(x_test, verbose=0, batch_size=256)
        float_bytes = tflite_subnetwork(nested, k)
        int8_bytes = tflite_subnetwork(nested, k, representative_data, int8=True)
        mat_bytes = materialize(nested_bytes, k)
        float_out = run_litert(float_bytes, x_test)
        row = {
            "subnetwork": k,
            "macs": costs[k]["macs"],
            "params": costs[k]["params"],
            "keras_float_accuracy": accuracy(keras_out, y_test),
            "tflite_float_accuracy": accuracy(float_out, y_test),
            "tflite_float_max_abs_diff": float(np.max(np.abs(float_out - keras_out))),
            "tflite_int8_accuracy": accuracy(run_litert(int8_bytes, x_test), y_test),
            "nested_int8_accuracy": accuracy(run_litert(mat_bytes, x_test), y_test),
            "float_size": len(float_bytes),
            "int8_size": len(int8_bytes),
            "materialized_size": len(mat_bytes),
            "int8_arena": arena_size(int8_bytes),
        }
        materialized = arena_usage(mat_bytes)
        # head: the planned activations, what solve(memory_limit=) bounds.
        row["materialized_arena"] = materialized["total"]
        row["materialized_arena_head"] = materialized["head"]
        if tflm:
            row["tflite_int8_accuracy_tflm"] = accuracy(run_tflm(int8_bytes, x_test), y_test)
            row["nested_int8_accuracy_tflm"] = accuracy(run_tflm(mat_bytes, x_test), y_test)
        rows.append(row)
        if out_dir is not None:
            out = pathlib.Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"subnetwork_{k}_float.tflite").write_bytes(float_bytes)
            (out / f"subnetwork_{k}_int8.tflite").write_bytes(int8_bytes)
            (out / f"nested_materialized_{k}.tflite").write_bytes(mat_bytes)
    return {"subnetworks": rows, "nested_size": len(nested_bytes),
            "sum_int8_sizes": sum(r["int8_size"] for r in rows),
            "arena": nested_arena_report(nested_bytes)}


def nested_arena_report(nested_bytes):
    """The nested model's TFLite Micro arena next to the materialized full
    model's, both measured in the same host build of TFLite Micro with the
    HADS operators (`tflm_host.arena_usage`, recording allocator).

    Without a TFLite Micro tree (HADS_TFLM_DIR) the nested arena cannot be
    measured (the PyPI runtime cannot load custom operators): the entry then
    says so, and only the materialized models' arenas (per subnetwork, the
    `materialized_arena` of each row, PyPI runtime) are in the report.
    """
    from hads_keras.export import tflm_host
    from hads_keras.export.materialize import materialize
    try:
        nested = tflm_host.arena_usage(nested_bytes)
    except (RuntimeError, ValueError) as e:
        return {"nested": None, "note": f"not measured: {e}"}
    if nested is None:
        return {"nested": None,
                "note": (f"not measured: set {tflm_host.TFLM_DIR_ENV} to a built "
                         "tflite-micro tree (tests/native/README.md); the PyPI "
                         "TFLite Micro runtime cannot load the HADS operators")}
    full = tflm_host.arena_usage(materialize(nested_bytes, 0))
    return {"nested": nested, "materialized_full": full,
            "ratio": nested["arena_used_bytes"] / full["arena_used_bytes"],
            "note": ("host TFLite Micro build (recording allocator), the same "
                     "build for both")}


def format_report(report):
    """The report as a text table."""
    columns = [("sub", "subnetwork", "{}"), ("MACs", "macs", "{:,}"),
               ("keras", "keras_float_accuracy", "{:.4f}"),
               ("tfl f32", "tflite_float_accuracy", "{:.4f}"),
               ("tfl int8", "tflite_int8_accuracy", "{:.4f}"),
               ("nested int8", "nested_int8_accuracy", "{:.4f}"),
               ("int8 B", "int8_size", "{:,}"),
               ("arena B", "int8_arena", "{:,}"),
               ("materialized arena B", "materialized_arena", "{:,}")]
    rows = [[c[0] for c in columns]]
    for r in report["subnetworks"]:
        rows.append([fmt.format(r[key]) for _, key, fmt in columns])
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(widths[i]) for i, v in enumerate(row)) for row in rows]
    lines.append(f"nested .tflite: {report['nested_size']:,} bytes; sum of the "
                 f"per-subnetwork int8 files: {report['sum_int8_sizes']:,} bytes")
    lines.append("arena B: the standalone int8 subnetwork; materialized arena B: "
                 "nested_materialized_<k>.tflite (builtin operators), both in "
                 "the PyPI TFLite Micro runtime")
    arena = report.get("arena")
    if arena and arena.get("nested"):
        lines.append(
            f"nested model arena (HADS operators, every subnetwork): "
            f"{arena['nested']['arena_used_bytes']:,} B = {arena['ratio']:.3f}x the "
            f"materialized full model's {arena['materialized_full']['arena_used_bytes']:,}"
            f" B ({arena['note']})")
    elif arena:
        lines.append(f"nested model arena (HADS operators): {arena['note']}")
    return "\n".join(lines)
