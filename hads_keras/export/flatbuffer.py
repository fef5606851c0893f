"""Reading and rewriting `.tflite` flatbuffers with the schema's object API.

`ai_edge_litert` ships the generated schema classes (`schema_py_generated`)
but not TensorFlow's `flatbuffer_utils`, so the few helpers the exporter
needs live here: load/save a `ModelT`, name operators, read and write
constant tensors, encode and decode FlexBuffer custom options, drop tensors
and buffers nothing refers to any more.
"""

import array
import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from flatbuffers import flexbuffers

FILE_IDENTIFIER = b"TFL3"

BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items()
                 if not name.startswith("_")}

# TensorType -> numpy dtype, for the types a quantized model holds.
_DTYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.INT32: np.int32,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
    schema.TensorType.INT16: np.int16,
    schema.TensorType.INT64: np.int64,
}


def load(tflite_bytes, what="model"):
    """The `ModelT` of a `.tflite` file's bytes.

    Raises:
        ValueError: naming `what` when the bytes are not a TFLite model.
    """
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ValueError(
            f"{what} is not a TFLite flatbuffer (no 'TFL3' identifier); pass "
            "the bytes of a .tflite file.")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def save(model):
    """Serialize a `ModelT` to bytes (with the 'TFL3' identifier)."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def op_name(model, op):
    """'CONV_2D', ... for builtins, the custom code for CUSTOM operators."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return custom.decode() if isinstance(custom, bytes) else custom
    return BUILTIN_NAMES[builtin]


def opcode_index(model, builtin=None, custom=None, version=1):
    """Index of the operator code for `builtin` or `custom`, added if absent."""
    for i, code in enumerate(model.operatorCodes):
        existing = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = code.customCode.decode() if isinstance(code.customCode, bytes) \
            else code.customCode
        if custom is not None and existing == schema.BuiltinOperator.CUSTOM \
                and name == custom:
            return i
        if builtin is not None and existing == builtin and code.version == version:
            return i
    code = schema.OperatorCodeT()
    if custom is not None:
        code.builtinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = custom
    else:
        code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def tensor_data(model, tensor):
    """A constant tensor's values as a numpy array of its shape."""
    buffer = model.buffers[tensor.buffer]
    if buffer.data is None or len(buffer.data) == 0:
        raise ValueError(f"Tensor '{tensor_name(tensor)}' has no constant data.")
    raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype=_DTYPES[tensor.type]).reshape(
        [int(d) for d in tensor.shape]).copy()


def add_buffer(model, data=None):
    """Append a buffer holding `data` (numpy array or bytes); its index."""
    buffer = schema.BufferT()
    if data is not None:
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        buffer.data = np.frombuffer(raw, dtype=np.uint8).copy()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def add_tensor(model, subgraph, name, shape, tensor_type, data=None,
               quantization=None):
    """Append a tensor (constant when `data` is given); its index."""
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = np.asarray(shape, dtype=np.int32)
    tensor.type = tensor_type
    tensor.buffer = add_buffer(model, data)
    tensor.quantization = quantization
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def tensor_name(tensor):
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


def quantization(scales, zero_points, dimension=0):
    """A `QuantizationParametersT` with float32 scales and int64 zero points."""
    q = schema.QuantizationParametersT()
    q.scale = np.asarray(scales, dtype=np.float32).reshape(-1)
    zp = np.asarray(zero_points, dtype=np.int64).reshape(-1)
    if zp.size == 1 and q.scale.size > 1:
        zp = np.repeat(zp, q.scale.size)
    q.zeroPoint = zp
    q.quantizedDimension = int(dimension)
    return q


def scales(tensor):
    """(float32 scales, int64 zero points) of a quantized tensor."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        raise ValueError(f"Tensor '{tensor_name(tensor)}' is not quantized.")
    return (np.asarray(q.scale, dtype=np.float32),
            np.asarray(q.zeroPoint, dtype=np.int64))


# Custom options ----------------------------------------------------------

def flexbuffer_map(entries):
    """Encode a dict as a FlexBuffer map.

    Lists become typed vectors of int32 (4-byte elements, 4-byte aligned in
    the FlexBuffer, which is 4-byte aligned in the model), so that the HADS
    operators read them in place from flash instead of copying them into the
    arena (docs/nested_tflite_format.md); bools stay bools, ints are ints.
    """
    builder = flexbuffers.Builder()
    with builder.Map():
        for key, value in entries.items():
            builder.Key(key)
            if isinstance(value, (bool, np.bool_)):
                builder.Bool(bool(value))
            elif isinstance(value, (list, tuple, np.ndarray)):
                values = [int(v) for v in np.asarray(value).reshape(-1)]
                if any(v < -2 ** 31 or v >= 2 ** 31 for v in values):
                    raise ValueError(f"custom option '{key}': an entry does not "
                                     "fit in int32.")
                builder.TypedVectorFromElements(array.array("i", values))
            else:
                builder.Int(int(value))
    return bytes(builder.Finish())


def read_flexbuffer_map(data):
    """Decode a FlexBuffer map written by `flexbuffer_map` into a dict."""
    return flexbuffers.Loads(bytes(np.asarray(data, dtype=np.uint8)))


# Cleaning up ---------------------------------------------------------------

def drop_unused_opcodes(model):
    """Remove operator codes no operator uses (renumbering the others)."""
    used = sorted({int(op.opcodeIndex) for sg in model.subgraphs
                   for op in sg.operators})
    remap = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op.opcodeIndex = remap[int(op.opcodeIndex)]


def prune(model):
    """Drop tensors no operator or graph input/output uses, then buffers no
    tensor or metadata uses, renumbering every reference (signatures too).

    Buffer 0 (the empty sentinel the schema reserves) always stays.
    """
    for subgraph in model.subgraphs:
        used = set(int(i) for i in subgraph.inputs) | set(int(i) for i in subgraph.outputs)
        for op in subgraph.operators:
            used.update(int(i) for i in op.inputs if i >= 0)
            used.update(int(i) for i in op.outputs)
            if op.intermediates is not None:
                used.update(int(i) for i in op.intermediates)
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}
        subgraph.tensors = [subgraph.tensors[i] for i in order]

        def renumber(indices):
            return np.asarray([remap[int(i)] if i >= 0 else -1 for i in indices],
                              dtype=np.int32)

        subgraph.inputs = renumber(subgraph.inputs)
        subgraph.outputs = renumber(subgraph.outputs)
        for op in subgraph.operators:
            op.inputs = renumber(op.inputs)
            op.outputs = renumber(op.outputs)
            if op.intermediates is not None:
                op.intermediates = renumber(op.intermediates)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex != model.subgraphs.index(subgraph):
                continue
            for item in list(signature.inputs or []) + list(signature.outputs or []):
                item.tensorIndex = remap[int(item.tensorIndex)]
    used_buffers = {0}
    for subgraph in model.subgraphs:
        used_buffers.update(int(t.buffer) for t in subgraph.tensors)
    for entry in model.metadata or []:
        used_buffers.add(int(entry.buffer))
    order = sorted(used_buffers)
    remap = {old: new for new, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = remap[int(tensor.buffer)]
    for entry in model.metadata or []:
        entry.buffer = remap[int(entry.buffer)]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [remap[int(b)] for b in model.metadataBuffer
                                if int(b) in remap]
