"""Nested model -> the standard TFLite model of one subnetwork.

`materialize(nested_bytes, k)` replaces every HADS operator by its builtin
operator on physically sliced int8 weights (the nested model's own, cut to
the active prefix, or behind a concatenation to the active prefix of every
segment), with subnetwork k's int32 bias and with weight scales
chosen so that TFLite derives exactly the requantization multipliers and
shifts stored in the options; a GATHER of a per-subnetwork table (a
standalone BatchNormalization's scale or offset) becomes its constant row k. Activation tensors shrink to the active
channels; the builtin operators between HADS operators are kept, with their
shapes (and Flatten reshapes) adjusted. The result runs on any TFLite
runtime and computes bit for bit what the nested model computes at
subnetwork k: it is the reference for the C++ kernels.
"""

import json

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hads_keras.export import batchnorm_tables
from hads_keras.export import flatbuffer
from hads_keras.export import metadata as metadata_lib
from hads_keras.export import quantization as qz
from hads_keras.export.nested import CUSTOM_TO_BUILTIN, SUBNETWORK_INPUT

# Builtin operators that act on every channel on its own (or pool over
# space): the active prefix of the input is the active prefix of the output.
CHANNELWISE = {
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "PRELU",
    "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "GELU", "QUANTIZE", "DEQUANTIZE",
    "MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D", "MEAN", "REDUCE_MAX",
    "SUM", "PAD", "PADV2", "ABS",
}

# Element-wise operators of several inputs (residual ADD, squeeze-and-excite
# MUL, ...): sliced inputs must agree on the active width; the other inputs
# broadcast (one channel) or are per-channel constants, cut to the prefix.
ELEMENTWISE = {"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "DIV",
               "SQUARED_DIFFERENCE"}

# Shape operators that keep the channel axis last and untouched.
_KEEP_LAST_AXIS = {"EXPAND_DIMS", "SQUEEZE"}

# Operator versions written for the builtin operators (the int8 versions
# of the converter; TFLite Micro ignores versions).
_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4}


def _hads_ops(model):
    subgraph = model.subgraphs[0]
    return [op for op in subgraph.operators
            if flatbuffer.op_name(model, op) in CUSTOM_TO_BUILTIN]


def num_subnetworks(nested_bytes_or_model):
    """S of a nested model (from its HADS operators' options)."""
    model = nested_bytes_or_model
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = flatbuffer.load(model, "the nested model")
    ops = _hads_ops(model)
    if not ops:
        raise ValueError(
            "This .tflite model has no HADS operators; it is not a nested "
            "model written by hads_keras.export.tflite_nested.")
    return int(flatbuffer.read_flexbuffer_map(ops[0].customOptions)["num_subnetworks"])


def _neighbours(value, count=4):
    """float32 values around `value`, nearest first."""
    value = np.float32(value)
    out, up, down = [value], value, value
    for _ in range(count):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(0))
        out += [up, down]
    return out


def weight_scales_for(s_in, s_out, multipliers, shifts, layer):
    """Per-channel float32 weight scales that reproduce the multipliers.

    TFLite computes `double(s_in) * double(s_w) / double(s_out)` and
    decomposes it; the exporter computed the stored multipliers the same way
    from float32 scales, so such a float32 scale exists: find it next to
    the real value the multiplier stands for.
    """
    found = np.zeros(len(multipliers), np.float32)
    for c, (m, s) in enumerate(zip(multipliers, shifts)):
        m, s = int(m), int(s)
        if m == 0:
            raise ValueError(f"{layer}: output channel {c} has a zero multiplier.")
        real = m * 2.0 ** (s - 31)
        guess = real * float(np.float32(s_out)) / float(np.float32(s_in))
        for candidate in _neighbours(guess):
            real_c = qz.effective_scales_per_channel(s_in, [candidate], s_out)[0]
            if qz.quantize_multiplier(real_c) == (m, s):
                found[c] = candidate
                break
        else:
            raise ValueError(
                f"{layer}: no float32 weight scale gives multiplier {m}, "
                f"shift {s} for output channel {c}; the options were not "
                "computed the way hads_keras.export writes them.")
    return found


class _Materializer:
    """Rewrites one nested `ModelT` in place for subnetwork `k`."""

    def __init__(self, model, k):
        self.model = model
        self.graph = model.subgraphs[0]
        self.k = k
        self.width = {}  # tensor index -> active size of its last axis

    def run(self, num_subnetworks):
        selector = [int(i) for i in self.graph.inputs
                    if flatbuffer.tensor_name(self.graph.tensors[i]) == SUBNETWORK_INPUT]
        if selector:
            batchnorm_tables.select_rows(self.model, selector[0], self.k,
                                         num_subnetworks)
        for op in self.graph.operators:
            name = flatbuffer.op_name(self.model, op)
            if name in CUSTOM_TO_BUILTIN:
                self._hads(op, name)
            else:
                self._builtin(op, name)
        for index, active in self.width.items():
            tensor = self.graph.tensors[index]
            tensor.shape = np.asarray(list(tensor.shape[:-1]) + [active], np.int32)
            if tensor.shapeSignature is not None and len(tensor.shapeSignature):
                tensor.shapeSignature = np.asarray(
                    list(tensor.shapeSignature[:-1]) + [active], np.int32)
        for index in self.graph.outputs:
            if int(index) in self.width:
                raise ValueError("A model output is sliced; the plan must "
                                 "keep the classifier output whole.")

    def _active_input(self, index, full, expected, op_label):
        got = self.width.get(int(index), full)
        if got != expected:
            raise ValueError(
                f"{op_label}: its input has {got} active channels in "
                f"subnetwork {self.k} but the operator expects {expected}.")

    def _hads(self, op, custom):
        model, graph, k = self.model, self.graph, self.k
        options = flatbuffer.read_flexbuffer_map(op.customOptions)
        label = f"{custom} (output '{flatbuffer.tensor_name(graph.tensors[op.outputs[0]])}')"
        if int(options.get("version", 0)) != 1:
            raise ValueError(f"{label}: unsupported format version "
                             f"{options.get('version')}.")
        num = int(options["num_subnetworks"])
        a = int(options["in_channels"][k])
        o = int(options["out_channels"][k])
        x = graph.tensors[op.inputs[0]]
        w = graph.tensors[op.inputs[1]]
        y = graph.tensors[op.outputs[0]]
        weights = flatbuffer.tensor_data(model, w)
        full_out = weights.shape[3] if custom == "HADS_DEPTHWISE_CONV_2D" else weights.shape[0]
        if custom == "HADS_DEPTHWISE_CONV_2D":   # channel c -> outputs c*M .. c*M+M-1
            m = int(options["depth_multiplier"])
            out_index = (active_input_channels(options, k, full_out // m)[:, None] * m
                         + np.arange(m)).reshape(-1)
        else:
            out_index = np.arange(o)
        rows = lambda key: np.asarray(options[key], np.int64).reshape(num, full_out)[k, out_index]
        mult, shift, bias = rows("output_multiplier"), rows("output_shift"), rows("bias")
        s_in, s_out = flatbuffer.scales(x)[0][0], flatbuffer.scales(y)[0][0]
        w_scales, _ = flatbuffer.scales(w)

        if custom == "HADS_FULLY_CONNECTED":
            spatial = int(options["in_spatial"])
            full_in = weights.shape[1] // spatial
            channels = active_input_channels(options, k, full_in)
            weights = weights[:o].reshape(o, spatial, full_in)[:, :, channels].reshape(o, spatial * a)
            full_x = int(x.shape[-1])
            self._active_input(op.inputs[0], full_x,
                               a if full_x == full_in else spatial * a, label)
            dim = 0
        elif custom == "HADS_CONV_2D":
            weights = weights[:o, :, :, active_input_channels(options, k, weights.shape[3])]
            self._active_input(op.inputs[0], int(x.shape[-1]), a, label)
            dim = 0
        else:
            weights = weights[..., out_index]
            self._active_input(op.inputs[0], int(x.shape[-1]), a, label)
            dim = 3
        per_tensor_real = (qz.effective_scale_per_tensor_fc(s_in, w_scales[0], s_out)
                           if custom == "HADS_FULLY_CONNECTED" and w_scales.size == 1
                           else None)
        per_tensor = per_tensor_real is not None and (
            np.all(mult == qz.quantize_multiplier(per_tensor_real)[0]) and
            np.all(shift == qz.quantize_multiplier(per_tensor_real)[1]))
        if per_tensor:
            new_scales = w_scales  # per tensor, as the converter wrote it
            bias_scales = np.float32(np.float32(s_in) * w_scales[0])
        else:
            new_scales = weight_scales_for(s_in, s_out, mult, shift, label)
            bias_scales = (np.float32(s_in) * new_scales).astype(np.float32)
        name = flatbuffer.tensor_name(w)
        w_index = flatbuffer.add_tensor(
            model, graph, f"{name}/sub{k}", weights.shape, schema.TensorType.INT8,
            np.ascontiguousarray(weights),
            flatbuffer.quantization(new_scales, 0, dim))
        b_index = -1
        if op.inputs[2] >= 0 or np.any(bias):
            b_index = flatbuffer.add_tensor(
                model, graph, f"{name}/bias/sub{k}", [o], schema.TensorType.INT32,
                bias.astype(np.int32), flatbuffer.quantization(bias_scales, 0, 0))
        op.inputs = np.asarray([op.inputs[0], w_index, b_index], np.int32)
        builtin = CUSTOM_TO_BUILTIN[custom]
        op.opcodeIndex = flatbuffer.opcode_index(
            model, builtin=getattr(schema.BuiltinOperator, builtin),
            version=_VERSIONS[builtin])
        op.customOptions = None
        op.customOptionsFormat = 0
        act = int(options["fused_activation_function"])
        if custom == "HADS_FULLY_CONNECTED":
            opts = schema.FullyConnectedOptionsT()
            opts.keepNumDims = bool(options["keep_num_dims"])
            op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        else:
            if custom == "HADS_CONV_2D":
                opts = schema.Conv2DOptionsT()
                op.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
            else:
                opts = schema.DepthwiseConv2DOptionsT()
                opts.depthMultiplier = int(options["depth_multiplier"])
                op.builtinOptionsType = schema.BuiltinOptions.DepthwiseConv2DOptions
            opts.padding = int(options["padding"])
            opts.strideW, opts.strideH = int(options["stride_w"]), int(options["stride_h"])
            opts.dilationWFactor = int(options["dilation_w_factor"])
            opts.dilationHFactor = int(options["dilation_h_factor"])
        opts.fusedActivationFunction = act
        op.builtinOptions = opts
        if o != int(y.shape[-1]):
            self.width[int(op.outputs[0])] = o

    def _concatenation(self, op, label):
        """Channel concatenation of sliced tensors: the narrow tensors side by
        side, which is the packed layout the HADS operator after it reads
        (its segment tables say where each segment starts in full size)."""
        graph = self.graph
        y = graph.tensors[op.outputs[0]]
        axis = int(op.builtinOptions.axis)
        if axis not in (-1, len(y.shape) - 1):
            raise ValueError(f"{label} concatenates sliced tensors along axis "
                             f"{axis}, not the channels.")
        self.width[int(op.outputs[0])] = sum(
            self.width.get(int(i), int(graph.tensors[i].shape[-1])) for i in op.inputs)

    def _elementwise(self, op, name, label):
        graph = self.graph
        y = graph.tensors[op.outputs[0]]
        full = int(y.shape[-1])
        actives = {self.width[int(i)] for i in op.inputs if int(i) in self.width}
        if len(actives) != 1:
            raise ValueError(f"{label}: its inputs have different active widths "
                             f"{sorted(actives)} in subnetwork {self.k}.")
        active = actives.pop()
        inputs = np.array(op.inputs, np.int32)
        for position, index in enumerate(inputs):
            index = int(index)
            if index < 0 or index in self.width:
                continue
            tensor = graph.tensors[index]
            size = int(tensor.shape[-1]) if len(tensor.shape) else 1
            if size == 1:
                continue  # broadcasts
            try:
                data = flatbuffer.tensor_data(self.model, tensor)
            except ValueError:  # a computed tensor, not a constant
                data = None
            if data is None or size != full:
                raise ValueError(
                    f"{label}: input '{flatbuffer.tensor_name(tensor)}' has all "
                    f"{size} channels active while another input has {active} "
                    f"in subnetwork {self.k}; the groups of an element-wise "
                    "merge must be sliced alike.")
            quant = tensor.quantization
            if quant is not None and quant.scale is not None and len(quant.scale) == full:
                quant = flatbuffer.quantization(quant.scale[:active],
                                                quant.zeroPoint[:active],
                                                quant.quantizedDimension)
            inputs[position] = flatbuffer.add_tensor(
                self.model, graph, f"{flatbuffer.tensor_name(tensor)}/sub{self.k}",
                list(tensor.shape[:-1]) + [active], tensor.type,
                np.ascontiguousarray(data[..., :active]), quant)
        op.inputs = inputs
        self.width[int(op.outputs[0])] = active

    def _builtin(self, op, name):
        graph = self.graph
        sliced = [int(i) for i in op.inputs if int(i) in self.width]
        if not sliced:
            return
        label = f"{name} (output '{flatbuffer.tensor_name(graph.tensors[op.outputs[0]])}')"
        if name in ELEMENTWISE:
            self._elementwise(op, name, label)
            return
        if name == "CONCATENATION":
            self._concatenation(op, label)
            return
        x_index = int(op.inputs[0])
        if sliced != [x_index] or len(op.outputs) != 1:
            raise ValueError(
                f"{label} reads a sliced activation in a way the HADS export "
                "cannot slice (only its first input may be sliced).")
        x = graph.tensors[x_index]
        y = graph.tensors[op.outputs[0]]
        active = self.width[x_index]
        if name in CHANNELWISE:
            rank = len(x.shape)
            if name in ("MEAN", "REDUCE_MAX", "SUM"):
                axes = flatbuffer.tensor_data(self.model, graph.tensors[op.inputs[1]])
                if any(int(v) % rank == rank - 1 for v in np.atleast_1d(axes)):
                    raise ValueError(f"{label} reduces over channels of a sliced tensor.")
            if name in ("PAD", "PADV2"):
                pads = flatbuffer.tensor_data(self.model, graph.tensors[op.inputs[1]])
                if np.any(pads[-1] != 0):
                    raise ValueError(f"{label} pads the channels of a sliced tensor.")
            if int(y.shape[-1]) != int(x.shape[-1]):
                raise ValueError(f"{label} changes the channel count of a sliced tensor.")
            self.width[int(op.outputs[0])] = active
        elif name in _KEEP_LAST_AXIS:
            if int(y.shape[-1]) != int(x.shape[-1]) or len(y.shape) == 0:
                raise ValueError(f"{label} moves the channel axis of a sliced tensor.")
            if name == "EXPAND_DIMS":
                axis = int(np.atleast_1d(flatbuffer.tensor_data(
                    self.model, graph.tensors[op.inputs[1]]))[0])
                if axis == -1 or axis == len(x.shape):
                    raise ValueError(f"{label} adds an axis after the channels.")
            self.width[int(op.outputs[0])] = active
        elif name == "RESHAPE":
            full_in, full_out = int(x.shape[-1]), int(y.shape[-1])
            if full_in == full_out:
                new = active
            elif full_out == int(np.prod(x.shape[1:])) and len(y.shape) == 2:
                new = full_out // full_in * active  # a Flatten of NHWC
            else:
                raise ValueError(
                    f"{label} regroups the channels of a sliced tensor "
                    f"({list(x.shape)} -> {list(y.shape)}); only Flatten and "
                    "reshapes that keep the channel axis are supported.")
            self.width[int(op.outputs[0])] = new
            shape = [int(d) for d in y.shape[:-1]] + [new]
            if len(op.inputs) > 1 and op.inputs[1] >= 0:
                op.inputs = np.array(op.inputs, np.int32)  # may be read-only
                op.inputs[1] = flatbuffer.add_tensor(
                    self.model, graph, f"{flatbuffer.tensor_name(y)}/shape",
                    [len(shape)], schema.TensorType.INT32, np.asarray(shape, np.int32))
            if isinstance(op.builtinOptions, schema.ReshapeOptionsT) and \
                    op.builtinOptions.newShape is not None:
                op.builtinOptions.newShape = np.asarray(shape, np.int32)
        else:
            raise ValueError(
                f"{label} reads a sliced activation, and the HADS export does "
                f"not know whether {name} keeps channels apart. Supported "
                f"between HADS layers: "
                f"{sorted(CHANNELWISE | ELEMENTWISE | _KEEP_LAST_AXIS | {'RESHAPE'})}.")


def active_input_channels(options, k, full_in):
    """Indices of the input channels a HADS operator reads in subnetwork k:
    the prefix `in_channels[k]`, or behind a concatenation the active prefix
    of every segment (`in_segment_offsets`, `in_segment_channels`)."""
    if "in_segment_offsets" not in options:
        return np.arange(int(options["in_channels"][k]))
    offsets = [int(v) for v in options["in_segment_offsets"]]
    count = len(offsets)
    widths = np.asarray(options["in_segment_channels"], np.int64).reshape(-1, count)[k]
    return np.concatenate([np.arange(o, o + int(w)) for o, w in zip(offsets, widths)])


def materialize(nested_bytes, k):
    """The standard TFLite model computing subnetwork `k` of a nested model.

    Args:
        nested_bytes: bytes of a model written by `tflite_nested`.
        k: subnetwork index, 0 = full network.

    Returns:
        Bytes of a `.tflite` model with builtin operators only, no
        `subnetwork` input, sliced weights and activations.

    Raises:
        ValueError: for a model that is not nested, or `k` out of range.
    """
    model = flatbuffer.load(nested_bytes, "materialize: the nested model")
    num = num_subnetworks(model)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"materialize: subnetwork index must be an int, got {k!r}.")
    if not 0 <= k < num:
        raise ValueError(
            f"materialize: subnetwork index {k} is out of range; this nested "
            f"model has {num} subnetworks (0 = full network ... {num - 1}).")
    _Materializer(model, int(k)).run(num)
    graph = model.subgraphs[0]
    graph.inputs = np.asarray(
        [i for i in graph.inputs
         if flatbuffer.tensor_name(graph.tensors[i]) != SUBNETWORK_INPUT], np.int32)
    flatbuffer.drop_unused_opcodes(model)
    metadata_lib.remove_entry(model, metadata_lib.PLAN_KEY)
    metadata_lib.remove_entry(model, metadata_lib.CRC_KEY)  # of the nested file
    metadata_lib.set_entry(model, metadata_lib.MATERIALIZED_KEY, json.dumps(
        {"subnetwork": int(k), "num_subnetworks": num}))
    flatbuffer.prune(model)
    return flatbuffer.save(model)
