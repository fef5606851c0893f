"""Latency tables measured on the host, in the LiteRT interpreter.

    table = host_table(model, points=5)       # target "host-litert", unit "us"
    table.save("ds_cnn_s.host-litert.json")

How a table is measured:

1. The model (a Keras/HADS model or a `NestedModel`; only its full network
   matters) is converted once to an int8 TFLite model (the stock converter,
   calibrated on `representative_data`, by default seeded normal noise:
   int8 kernels take the same time whatever the values).
2. Each sliced layer's operator (FULLY_CONNECTED, CONV_2D,
   DEPTHWISE_CONV_2D) is cut out of it into a one-operator model, and at
   every grid point of its groups' widths its input, weights, bias and
   output are cut to the active prefix (what the subnetwork's own model
   holds at those widths; the same per-channel quantization).
3. Each of those models is timed in `ai_edge_litert`'s interpreter (its
   default CPU kernels, XNNPACK included, `threads` threads): `warmup`
   invokes, then `repeats` timed invokes; the cost is the median.

Noise and overhead. Host timings are noisy (other processes, frequency
scaling, caches). Medians over repeats keep single outliers out; the
spread between repeats, (90th - 10th percentile) / median of every grid
point, is recorded in the table's `source` (its median and maximum) so a
reader sees how far to trust it. Every `invoke` also pays a fixed
overhead (the Python binding, the interpreter's loop): it is measured on a
one-operator model of one MAC, subtracted from every layer's time (clipped
at 0), and kept once in `constant`, which is the full model's median time
minus the sum of its layers at full width (it also holds the operators
outside the sliced layers: pooling, softmax, reshapes). So `table.cost(w)`
predicts one end-to-end invoke of the subnetwork at widths `w`
(`subnetwork_latencies` measures exactly that, for checking).
"""

from __future__ import annotations

import datetime
import platform
import time

import numpy as np

from hads_keras import latency as latency_lib

TARGET = "host-litert"
UNIT = "us"
DEFAULT_REPEATS = 100
DEFAULT_WARMUP = 10

_TIMED_OPERATORS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


# -- timing ------------------------------------------------------------------

def time_invoke(tflite_bytes, repeats=DEFAULT_REPEATS, warmup=DEFAULT_WARMUP,
                threads=1, seed=0):
    """Median wall time of one `invoke` (us) and the spread between repeats.

    Returns:
        (median, spread): spread = (90th - 10th percentile) / median.
    """
    from ai_edge_litert.interpreter import Interpreter

    if int(repeats) < 1 or int(warmup) < 0:
        raise ValueError(f"time_invoke: repeats must be >= 1 and warmup >= 0, "
                         f"got {repeats}, {warmup}.")
    interpreter = Interpreter(model_content=bytes(tflite_bytes), num_threads=int(threads))
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 127) + 1,
                                 detail["shape"]).astype(dtype)
        else:
            value = rng.standard_normal(detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    for _ in range(int(warmup)):
        interpreter.invoke()
    samples = np.empty(int(repeats))
    for i in range(int(repeats)):
        start = time.perf_counter_ns()
        interpreter.invoke()
        samples[i] = time.perf_counter_ns() - start
    samples /= 1000.0
    median = float(np.median(samples))
    p10, p90 = np.percentile(samples, [10, 90])
    return median, float((p90 - p10) / median) if median > 0 else 0.0


def subnetwork_latencies(nested, representative_data=None, repeats=DEFAULT_REPEATS,
                         warmup=DEFAULT_WARMUP, threads=1, tflite_models=None):
    """Measured latency (us, medians) of every subnetwork's own int8 model.

    Args:
        nested: a `NestedModel`.
        representative_data: calibration samples (default: seeded noise).
        tflite_models: optional list of already converted per-subnetwork
            `.tflite` bytes (e.g. the demo's export), one per subnetwork.

    Returns:
        {"us": [median per subnetwork], "spread": [...], "target", "unit"}.
    """
    from hads_keras.export import convert

    count = nested.plan.num_subnetworks
    if tflite_models is None:
        data = _representative(nested, representative_data)
        tflite_models = [convert.tflite_subnetwork(nested, k, data, int8=True)
                         for k in range(count)]
    if len(tflite_models) != count:
        raise ValueError(f"subnetwork_latencies: {len(tflite_models)} models for "
                         f"{count} subnetworks.")
    timed = [time_invoke(m, repeats, warmup, threads) for m in tflite_models]
    return {"target": TARGET, "unit": UNIT, "us": [t for t, _ in timed],
            "spread": [s for _, s in timed]}


# -- one-operator models -------------------------------------------------------

def _representative(model, data, samples=16, seed=0):
    from hads_keras.export import convert
    if data is not None:
        return data
    shape = convert.input_shape(latency_lib._network(model))
    return np.random.default_rng(seed).standard_normal((samples,) + shape).astype("float32")


def _full_int8(model, representative_data):
    from hads_keras.export import convert
    return convert.tflite_subnetwork(model, 0, _representative(model, representative_data),
                                     int8=True)


def _layer_operators(model, tflite_bytes):
    """layer name -> index of its operator in the int8 model."""
    from hads_keras import graph as graph_lib
    from hads_keras.export import flatbuffer, nested
    from hads_keras.plan import Plan

    network = latency_lib._network(model)
    analysis = graph_lib.analyze(network)
    sliced = {g.name: [g.width] for g in analysis.groups if not g.fixed}
    if not sliced:
        raise ValueError(f"Model '{network.name}' slices no group: there is no "
                         "layer latency to measure.")
    infos, _ = nested.layer_infos(network, analysis, Plan(sliced))
    tflite = flatbuffer.load(tflite_bytes, "the converted model")
    subgraph = tflite.subgraphs[0]
    indices = [i for i, op in enumerate(subgraph.operators)
               if flatbuffer.op_name(tflite, op) in _TIMED_OPERATORS]
    matched = nested.match_operators(tflite, subgraph,
                                     [subgraph.operators[i] for i in indices],
                                     infos, network)
    return {info.name: index for info, index in zip(matched, indices)}


def _one_operator(tflite_bytes, index):
    """The operator `index` of a model alone, as a model of its own."""
    from hads_keras.export import flatbuffer
    model = flatbuffer.load(tflite_bytes)
    subgraph = model.subgraphs[0]
    op = subgraph.operators[index]
    subgraph.operators = [op]
    subgraph.inputs = np.asarray([op.inputs[0]], np.int32)
    subgraph.outputs = np.asarray([op.outputs[0]], np.int32)
    model.signatureDefs = None
    flatbuffer.drop_unused_opcodes(model)
    flatbuffer.prune(model)
    return flatbuffer.save(model)


def _cut(model, tensor, cuts):
    """Cut a tensor to a prefix along some axes (`cuts`: axis -> count,
    None: keep), with its data and its per-channel quantization."""
    from hads_keras.export import flatbuffer
    shape = [int(d) for d in tensor.shape]
    cuts = {axis % len(shape): count for axis, count in cuts.items() if count is not None}
    index = tuple(slice(0, cuts[a]) if a in cuts else slice(None) for a in range(len(shape)))
    buffer = model.buffers[tensor.buffer]
    if buffer.data is not None and len(buffer.data):
        data = np.ascontiguousarray(flatbuffer.tensor_data(model, tensor)[index])
        buffer.data = np.frombuffer(data.tobytes(), np.uint8).copy()
    tensor.shape = np.asarray([cuts.get(a, d) for a, d in enumerate(shape)], np.int32)
    tensor.shapeSignature = None
    q = tensor.quantization
    if q is not None and q.scale is not None and len(q.scale) > 1 and \
            q.quantizedDimension in cuts:
        q.scale = np.asarray(q.scale)[:cuts[q.quantizedDimension]]
        q.zeroPoint = np.asarray(q.zeroPoint)[:cuts[q.quantizedDimension]]


def _sliced_operator(op_bytes, in_channels, out_channels):
    """A one-operator model with its input cut to `in_channels` (last axis)
    and its output to `out_channels`, weights and bias to match."""
    from hads_keras.export import flatbuffer
    model = flatbuffer.load(op_bytes)
    subgraph = model.subgraphs[0]
    op = subgraph.operators[0]
    tensors = subgraph.tensors
    _cut(model, tensors[op.inputs[0]], {-1: in_channels})
    _cut(model, tensors[op.outputs[0]], {-1: out_channels})
    if flatbuffer.op_name(model, op) == "DEPTHWISE_CONV_2D":
        _cut(model, tensors[op.inputs[1]], {-1: out_channels})   # [1, kh, kw, c]
    else:
        _cut(model, tensors[op.inputs[1]], {0: out_channels, -1: in_channels})
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        _cut(model, tensors[op.inputs[2]], {0: out_channels})
    return flatbuffer.save(model)


def _overhead_model():
    """One FULLY_CONNECTED of one int8 input and output: one MAC, so its
    invoke time is the interpreter's fixed per-invoke overhead."""
    from ai_edge_litert import schema_py_generated as schema
    from hads_keras.export import flatbuffer

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.operatorCodes = []
    subgraph = schema.SubGraphT()
    subgraph.tensors = []
    unit = flatbuffer.quantization([1.0], [0])
    x = flatbuffer.add_tensor(model, subgraph, "x", [1, 1], schema.TensorType.INT8,
                              quantization=unit)
    w = flatbuffer.add_tensor(model, subgraph, "w", [1, 1], schema.TensorType.INT8,
                              np.ones((1, 1), np.int8), flatbuffer.quantization([1.0], [0]))
    b = flatbuffer.add_tensor(model, subgraph, "b", [1], schema.TensorType.INT32,
                              np.zeros(1, np.int32), flatbuffer.quantization([1.0], [0]))
    y = flatbuffer.add_tensor(model, subgraph, "y", [1, 1], schema.TensorType.INT8,
                              quantization=flatbuffer.quantization([1.0], [0]))
    op = schema.OperatorT()
    op.opcodeIndex = flatbuffer.opcode_index(
        model, builtin=schema.BuiltinOperator.FULLY_CONNECTED)
    op.inputs = np.asarray([x, w, b], np.int32)
    op.outputs = np.asarray([y], np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    subgraph.operators = [op]
    subgraph.inputs = np.asarray([x], np.int32)
    subgraph.outputs = np.asarray([y], np.int32)
    model.subgraphs = [subgraph]
    return flatbuffer.save(model)


# -- the table -------------------------------------------------------------------

def _channels(tensor_width, width, full):
    """Active size of a last axis holding `tensor_width` values per full
    group of `full` units (positions x multiplier x units) at `width`."""
    return tensor_width * width // full


def host_table(model, *, representative_data=None, grids=None, points=5,
               minimum=1, repeats=DEFAULT_REPEATS, warmup=DEFAULT_WARMUP,
               threads=1, name=None, log=None):
    """Measures a latency table of `model` on the host (LiteRT, us).

    Args:
        model: a Keras/HADS model or a `NestedModel`.
        representative_data: calibration samples for the int8 conversion
            (default: seeded normal noise of the input's shape).
        grids, points, minimum: the width grid (`latency.build_table`).
        repeats, warmup: timed and untimed invokes per grid point.
        threads: interpreter threads (1: what a single core sees).
        log: optional callable for one progress line per layer.

    Returns:
        A `LatencyTable` with target "host-litert" and unit "us"; its
        `source` records the overhead, the full model's time and the
        spread between repeats (see the module docstring).
    """
    from hads_keras import graph as graph_lib
    from hads_keras.export import flatbuffer

    network = latency_lib._network(model)
    analysis = graph_lib.analyze(network)
    full_width = {g.name: g.width for g in analysis.groups}
    full_bytes = _full_int8(model, representative_data)
    operators = _layer_operators(model, full_bytes)
    overhead, _ = time_invoke(_overhead_model(), repeats, warmup, threads)
    layer_groups = dict(latency_lib.latency_layers(model))
    spreads = []
    cache = {}

    def measure(layer, widths):
        if layer not in cache:
            op_bytes = _one_operator(full_bytes, operators[layer])
            op_model = flatbuffer.load(op_bytes)
            op = op_model.subgraphs[0].operators[0]
            tensors = op_model.subgraphs[0].tensors
            cache[layer] = (op_bytes, int(tensors[op.inputs[0]].shape[-1]),
                            int(tensors[op.outputs[0]].shape[-1]))
            if log:
                log(f"  timing {layer} ({flatbuffer.op_name(op_model, op)})")
        op_bytes, in_full, out_full = cache[layer]
        active = dict(zip(layer_groups[layer], widths))
        wiring = analysis.wiring[layer]
        in_channels = out_channels = None
        if wiring.in_group in active:
            in_channels = _channels(in_full, active[wiring.in_group],
                                    full_width[wiring.in_group])
        if wiring.kind == "depthwise":
            out_channels = None if in_channels is None else \
                _channels(out_full, active[wiring.in_group], full_width[wiring.in_group])
        elif wiring.out_group in active:
            out_channels = active[wiring.out_group]
        median, spread = time_invoke(
            _sliced_operator(op_bytes, in_channels, out_channels), repeats, warmup,
            threads)
        spreads.append(spread)
        return max(0.0, median - overhead)

    table = latency_lib.build_table(model, TARGET, UNIT, measure, grids=grids,
                                    points=points, minimum=minimum, name=name)
    full_us, full_spread = time_invoke(full_bytes, repeats, warmup, threads)
    layers_us = table.cost(full_width) - table.constant
    table.constant = max(0.0, full_us - layers_us)
    table.source = {
        "tool": "hads_keras.latency_host.host_table",
        "runtime": f"ai_edge_litert {_version('ai-edge-litert')}",
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": int(threads), "repeats": int(repeats), "warmup": int(warmup),
        "statistic": "median of repeats, minus the per-invoke overhead",
        "overhead_us": overhead,
        "full_model_us": full_us,
        "sum_of_layers_at_full_width_us": layers_us,
        "spread": {"definition": "(p90 - p10) / median over the repeats",
                   "median": float(np.median(spreads + [full_spread])),
                   "max": float(np.max(spreads + [full_spread]))},
    }
    return table


def _version(package):
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
