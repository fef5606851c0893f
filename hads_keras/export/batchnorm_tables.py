"""Per-subnetwork statistics of a BatchNormalization the converter cannot fold.

A BatchNormalization that does not directly follow its Dense/Conv (Dense +
ReLU + Dropout + BN, the MLPerf Tiny KWS FC model) reaches the converter's
int8 model as a MUL by a per-channel scale and an ADD of a per-channel
offset, both int8 constants of subnetwork 0's statistics. With
per-subnetwork statistics every subnetwork has its own scale and offset, so
the nested model stores them as `[S, C]` int8 tables and a builtin GATHER by
the `subnetwork` input gives the MUL / ADD row k (docs/nested_tflite_format.md,
"Standalone BatchNormalization"). `materialize` turns the GATHER back into
the constant row k, which is what the nested model computes at k.

Here: the rows of a layer (`rows_of`), the rewrite of the converter's model
(`install`), the materializer's step (`select_rows`) and the structural
check (`table_problems`).
"""

import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hads_keras.export import flatbuffer

# Version of the builtin GATHER with int8 params (what the converter writes).
_GATHER_VERSION = 2


@dataclasses.dataclass
class BatchNormRows:
    """`scale` and `offset` ([S, C]) of one BatchNormalization: subnetwork
    k computes `x * scale[k] + offset[k]` per channel."""

    name: str
    scale: np.ndarray
    offset: np.ndarray


def rows_of(bn):
    """The `BatchNormRows` of a HADS BatchNormalization layer (every row of
    its moving statistics, gamma and beta shared)."""
    mean = np.atleast_2d(np.asarray(bn.moving_mean.numpy(), np.float64))
    var = np.atleast_2d(np.asarray(bn.moving_variance.numpy(), np.float64))
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else 1.0
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else 0.0
    scale = gamma / np.sqrt(var + float(bn.epsilon)) * np.ones_like(mean)
    return BatchNormRows(bn.name, scale, beta - mean * scale)


def _dequantized(model, tensor):
    data = flatbuffer.tensor_data(model, tensor).astype(np.float64)
    (scale,), (zero_point,) = flatbuffer.scales(tensor)
    return (data.reshape(-1) - zero_point) * float(scale)


def _constant_input(model, graph, op, channels):
    """(position, tensor) of the int8 constant input of a two-input MUL/ADD
    whose other input is computed, or None. The constant has one value per
    channel, or one for all (the converter writes a scalar when every
    channel has the same value)."""
    if len(op.inputs) != 2:
        return None
    found = None
    for position, index in enumerate(op.inputs):
        tensor = graph.tensors[int(index)]
        buffer = model.buffers[tensor.buffer]
        if buffer.data is None or len(buffer.data) == 0:
            continue
        quant = tensor.quantization
        if (tensor.type != schema.TensorType.INT8 or quant is None
                or quant.scale is None or len(quant.scale) != 1
                or int(np.prod(tensor.shape)) not in (1, channels)
                or (len(tensor.shape) and int(tensor.shape[-1]) not in (1, channels))):
            return None
        if found is not None:
            return None
        found = (position, tensor)
    return found


def _distance(model, tensor, row):
    """Largest error of an int8 constant against `row`, in its steps."""
    (scale,), _ = flatbuffer.scales(tensor)
    return float(np.max(np.abs(_dequantized(model, tensor) - row)) / float(scale))


def _find_mul_add(model, graph, rows, claimed):
    """(MUL op, its constant position, ADD op, its constant position) of the
    converter's rendering of `rows` (subnetwork 0's scale and offset)."""
    channels = rows.scale.shape[1]
    readers = {}
    for op in graph.operators:
        for index in op.inputs:
            readers.setdefault(int(index), []).append(op)
    candidates = []
    for op in graph.operators:
        if id(op) in claimed or flatbuffer.op_name(model, op) != "MUL":
            continue
        mul_constant = _constant_input(model, graph, op, channels)
        if mul_constant is None:
            continue
        following = readers.get(int(op.outputs[0]), [])
        if len(following) != 1 or flatbuffer.op_name(model, following[0]) != "ADD":
            continue
        add = following[0]
        add_constant = _constant_input(model, graph, add, channels)
        if add_constant is None:
            continue
        distance = max(_distance(model, mul_constant[1], rows.scale[0]),
                       _distance(model, add_constant[1], rows.offset[0]))
        candidates.append((distance, op, mul_constant[0], add, add_constant[0]))
    # Within one int8 step (the converter rounds float32 values).
    close = sorted((c for c in candidates if c[0] <= 1.0), key=lambda c: c[0])
    if not close:
        raise ValueError(
            f"BatchNormalization '{rows.name}': the converter's int8 model has "
            f"no MUL + ADD by constants of its {channels} channels' scale and "
            "offset, so its per-subnetwork statistics cannot be put into the "
            "nested model. The converter folds the MUL into the next layer "
            "when subnetwork 0's offset (beta - mean * scale) is 0 in every "
            "channel (untrained statistics): fit the nested model first, or "
            "place the BatchNormalization right after its Dense/Conv "
            "(activation after it) to have it folded there.")
    if len(close) > 1 and close[1][0] == close[0][0]:
        raise ValueError(
            f"BatchNormalization '{rows.name}': several MUL + ADD of the "
            "converter's int8 model match its subnetwork-0 scale and offset "
            "equally well, so the exporter cannot tell which one is this "
            "layer; train the model (distinct statistics) before exporting.")
    return close[0][1:]


def _table_quantization(model, converted, rows):
    """(scale, zero point) of the int8 table of `rows`: the converter's own
    when every row fits its range (subnetwork 0 then computes exactly what
    the converter's model does), else asymmetric over all rows and 0."""
    (scale,), (zero_point,) = flatbuffer.scales(converted)
    scale, zero_point = float(scale), int(zero_point)
    low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
    if rows.min() >= low - scale / 2 and rows.max() <= high + scale / 2:
        return np.float32(scale), zero_point
    low, high = min(0.0, float(rows.min())), max(0.0, float(rows.max()))
    scale = np.float32((high - low) / 255.0)
    zero_point = int(np.clip(np.round(-128 - low / float(scale)), -128, 127))
    return scale, zero_point


def _add_table(model, graph, selector, op, position, values, label):
    """Replace constant input `position` of `op` by GATHER(table, subnetwork)."""
    converted = graph.tensors[int(op.inputs[position])]
    scale, zero_point = _table_quantization(model, converted, values)
    table = np.clip(np.round(values / float(scale)) + zero_point, -128, 127)
    num, channels = values.shape
    quant = lambda: flatbuffer.quantization([scale], [zero_point])
    table_index = flatbuffer.add_tensor(
        model, graph, f"{label}/table", [num, channels], schema.TensorType.INT8,
        table.astype(np.int8), quant())
    row_index = flatbuffer.add_tensor(
        model, graph, f"{label}/row", [1, channels], schema.TensorType.INT8,
        None, quant())
    gather = schema.OperatorT()
    gather.opcodeIndex = flatbuffer.opcode_index(
        model, builtin=schema.BuiltinOperator.GATHER, version=_GATHER_VERSION)
    gather.inputs = np.asarray([table_index, selector], np.int32)
    gather.outputs = np.asarray([row_index], np.int32)
    gather.builtinOptionsType = schema.BuiltinOptions.GatherOptions
    gather.builtinOptions = schema.GatherOptionsT()
    gather.builtinOptions.axis = 0
    # Right before its MUL / ADD, so after the HADS operator that feeds the
    # BatchNormalization: TFLite Micro's GATHER only DCHECKs its index, the
    # HADS operator rejects an out-of-range `subnetwork` first and Invoke
    # stops there, before any out-of-bounds read.
    graph.operators.insert(graph.operators.index(op), gather)
    inputs = np.array(op.inputs, np.int32)
    inputs[position] = row_index
    op.inputs = inputs


def install(model, graph, selector, batchnorms):
    """Give every BatchNormalization of `batchnorms` its per-subnetwork rows.

    Finds the converter's MUL + ADD of each (by subnetwork 0's values) and
    feeds them GATHERed rows of `[S, C]` tables. Returns the plan's
    `batchnorm_tables` entries (layer and channels).
    """
    claimed, entries = set(), []
    for rows in batchnorms:
        mul, mul_position, add, add_position = _find_mul_add(model, graph, rows, claimed)
        claimed.update({id(mul), id(add)})
        _add_table(model, graph, selector, mul, mul_position, rows.scale,
                   f"{rows.name}/scale")
        _add_table(model, graph, selector, add, add_position, rows.offset,
                   f"{rows.name}/offset")
        entries.append({"layer": rows.name, "channels": int(rows.scale.shape[1])})
    return entries


def _reads_selector(graph, op, selector):
    return any(int(i) == selector for i in op.inputs)


def table_problems(model, selector, num_subnetworks):
    """What is wrong with the GATHERs that read `subnetwork` (a list of
    messages): each must pick a row of a constant int8 `[S, C]` table."""
    graph = model.subgraphs[0]
    problems = []
    for op in graph.operators:
        name = flatbuffer.op_name(model, op)
        if name.startswith("HADS_") or not _reads_selector(graph, op, selector):
            continue
        if name != "GATHER" or len(op.inputs) != 2 or int(op.inputs[1]) != selector:
            problems.append(f"a {name} reads 'subnetwork' (only HADS operators "
                            "and the GATHER of a table may)")
            continue
        table = graph.tensors[int(op.inputs[0])]
        buffer = model.buffers[table.buffer]
        label = f"GATHER of '{flatbuffer.tensor_name(table)}'"
        if buffer.data is None or len(buffer.data) == 0:
            problems.append(f"{label}: the table is not a constant")
        elif (table.type != schema.TensorType.INT8 or len(table.shape) != 2
              or int(table.shape[0]) != num_subnetworks):
            problems.append(f"{label}: the table is not int8 [{num_subnetworks}, C] "
                            f"(shape {[int(d) for d in table.shape]})")
        elif op.builtinOptions is not None and int(op.builtinOptions.axis) != 0:
            problems.append(f"{label}: it gathers along axis "
                            f"{int(op.builtinOptions.axis)}, not 0")
    return problems


def select_rows(model, selector, k, num_subnetworks):
    """Materialize subnetwork k's rows: every GATHER of a table by
    `subnetwork` becomes the constant row k (its output tensor), and goes.

    Raises:
        ValueError: when something other than HADS operators and such
            GATHERs reads `subnetwork`.
    """
    problems = table_problems(model, selector, num_subnetworks)
    if problems:
        raise ValueError("materialize: " + "; ".join(problems) + ".")
    graph = model.subgraphs[0]
    kept = []
    for op in graph.operators:
        name = flatbuffer.op_name(model, op)
        if name.startswith("HADS_") or not _reads_selector(graph, op, selector):
            kept.append(op)
            continue
        table = flatbuffer.tensor_data(model, graph.tensors[int(op.inputs[0])])
        row = graph.tensors[int(op.outputs[0])]
        row.buffer = flatbuffer.add_buffer(model, np.ascontiguousarray(table[k:k + 1]))
    graph.operators = kept
