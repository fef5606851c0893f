"""One int8 `.tflite` holding every subnetwork, with HADS custom operators.

Follows docs/nested_tflite_format.md. Steps:

1. Convert the full network (subnetwork 0, its BN statistics folded) to a
   full-integer int8 model with the stock converter.
2. Match its FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D operators with
   the Keras layers (Conv1D becomes CONV_2D on a height-1 image): by kind
   and weight shape, and where several layers qualify (branches of a
   residual block may come out in another order) by the int8 weights, which
   are the layer's kernel quantized per output channel.
3. Rewrite each operator that touches a sliced group as the CUSTOM
   operator `HADS_*`: its FlexBuffer options carry the builtin options and,
   per subnetwork, the active widths and the requantization multiplier,
   shift and int32 bias of every output channel. The int8 weights stay
   those of the full network, stored once.
4. Add the int32 model input `subnetwork`, fed to every HADS operator.
   Element-wise merges (ADD, MUL, ...) stay builtin operators on full-size
   tensors: the HADS operators write the output zero point (real 0) into
   inactive channels, and an int8 ADD or MUL of two zero-point values gives
   the output zero point, so inactive channels stay 0; in any case no active
   channel ever reads an inactive one.
5. Store the plan and the labels as metadata.

Per-subnetwork BatchNormalization statistics: folding subnetwork k's
statistics gives weights `W_k = W_0 * a_k` with
`a_k[c] = sqrt(var_0[c] + eps) / sqrt(var_k[c] + eps)` and bias
`b_k[c] = (b[c] - mean_k[c]) * gamma[c] / sqrt(var_k[c] + eps) + beta[c]`.
The int8 weights `q = W_0 / s_w` are kept; subnetwork k's effective weight
scale is `float32(s_w[c] * a_k[c])` (rounded to float32 as a TFLite file
would store it, so that `materialize` can write a standard model with the
very same multipliers), from which the multiplier is computed exactly as
TFLite does, and its bias is quantized with `s_in * that scale`.
"""

import dataclasses
import json

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hads_keras.export import batchnorm_tables
from hads_keras.export import flatbuffer
from hads_keras.export import metadata as metadata_lib
from hads_keras.export import quantization as qz

FORMAT_VERSION = 1
SUBNETWORK_INPUT = "subnetwork"

# Builtin operator -> (Keras kind, HADS custom code).
HADS_OPS = {
    "FULLY_CONNECTED": ("dense", "HADS_FULLY_CONNECTED"),
    "CONV_2D": ("conv2d", "HADS_CONV_2D"),
    "DEPTHWISE_CONV_2D": ("depthwise", "HADS_DEPTHWISE_CONV_2D"),
}
CUSTOM_TO_BUILTIN = {custom: builtin for builtin, (_, custom) in HADS_OPS.items()}


@dataclasses.dataclass
class LayerInfo:
    """What the exporter needs of one Dense/Conv2D/DepthwiseConv2D layer.

    `in_widths` are active input channels per position (None: not sliced),
    `out_widths` active output channels (None: not sliced); `bn_factors`
    and `bn_bias` ([S, out] each) are set when a BatchNormalization with
    per-subnetwork statistics folds into the layer. `in_segments`, for an
    input concatenated from several groups: `(offsets, widths)`, the first
    channel of every segment and, per subnetwork, its active channels.
    """

    name: str
    kind: str
    kernel_shape: tuple
    in_widths: list = None
    out_widths: list = None
    in_spatial: int = 1
    depth_multiplier: int = 1
    bn_factors: np.ndarray = None
    bn_bias: np.ndarray = None
    in_segments: tuple = None

    @property
    def sliced(self):
        return self.in_widths is not None or self.out_widths is not None


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def layer_infos(network, analysis, plan):
    """What the rewrite needs of the Keras network.

    Returns:
        (`LayerInfo` of every Dense/Conv2D/DepthwiseConv2D in network order,
        `batchnorm_tables.BatchNormRows` of every BatchNormalization with
        per-subnetwork statistics that the converter cannot fold into its
        layer: it does not directly follow a Dense/Conv2D/DepthwiseConv2D
        without activation).
    """
    from hads_keras import _keras_compat

    functional = _keras_compat.as_functional(network)
    consumers = {}
    for node in _keras_compat.ordered_nodes(functional):
        for tensor in node.input_tensors:
            producer = _producer(tensor)
            if producer is not None:
                consumers.setdefault(producer.name, []).append(node.operation)

    infos, standalone = {}, []
    for name, wiring in analysis.wiring.items():
        if wiring.kind == "batchnorm":
            continue
        layer = network.get_layer(name)
        info = LayerInfo(name, wiring.kind, tuple(layer.get_weights()[0].shape),
                         in_spatial=wiring.in_spatial)
        _set_input_widths(info, analysis, plan, wiring)
        if wiring.kind == "depthwise":
            info.depth_multiplier = int(layer.depth_multiplier)
            if info.in_widths is not None:
                info.out_widths = [w * info.depth_multiplier for w in info.in_widths]
        elif not analysis[wiring.out_group].fixed:
            info.out_widths = list(plan.widths(wiring.out_group))
        infos[name] = info
    for fixed_layer in analysis.fixed_layers:
        layer = network.get_layer(fixed_layer.layer)
        kind = {"Conv2D": "conv2d", "Conv1D": "conv1d", "Dense": "dense"}.get(
            type(layer).__name__)
        if kind is not None:  # grouped convolutions kept whole: builtin, unsliced
            infos[fixed_layer.layer] = LayerInfo(
                fixed_layer.layer, kind, tuple(layer.get_weights()[0].shape))

    for name, wiring in analysis.wiring.items():
        if wiring.kind != "batchnorm":
            continue
        bn = network.get_layer(name)
        producer = _producer(bn.input)
        foldable = (producer is not None and producer.name in infos
                    and len(consumers.get(producer.name, [])) == 1
                    and getattr(producer.activation, "__name__", "") == "linear")
        mean = np.asarray(bn.moving_mean.numpy(), np.float64)
        var = np.asarray(bn.moving_variance.numpy(), np.float64)
        if mean.ndim == 1:
            mean, var = mean[None], var[None]
        if not wiring.varies:
            # No sliced layer feeds it: every subnetwork uses row 0 (as in
            # call and extract_subnetwork); the converter folds it as is.
            continue
        if not foldable:
            if not (np.array_equal(mean, mean[:1].repeat(len(mean), 0)) and
                    np.array_equal(var, var[:1].repeat(len(var), 0))):
                standalone.append(batchnorm_tables.rows_of(bn))
            continue
        eps = float(bn.epsilon)
        gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else 1.0
        beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else 0.0
        layer = network.get_layer(producer.name)
        channels = mean.shape[1]
        bias = (np.asarray(layer.bias.numpy(), np.float64)
                if getattr(layer, "use_bias", False) else np.zeros(channels))
        info = infos[producer.name]
        info.bn_factors = np.sqrt(var[:1] + eps) / np.sqrt(var + eps)
        info.bn_bias = (bias - mean) * gamma / np.sqrt(var + eps) + beta
    return list(infos.values()), standalone


def _set_input_widths(info, analysis, plan, wiring):
    """`in_widths` (and for a concatenated input `in_segments`) of a layer."""
    from hads_keras.training import segment_widths_of
    widths = [segment_widths_of(analysis, plan, s) for s in wiring.in_segments]
    if all(w is None for w in widths):
        return  # no sliced group feeds it
    if not wiring.segmented:
        info.in_widths = widths[0]
        return
    per_subnetwork = [[w[k] if w is not None else s.channels
                       for s, w in zip(wiring.in_segments, widths)]
                      for k in range(plan.num_subnetworks)]
    info.in_segments = ([s.offset for s in wiring.in_segments], per_subnetwork)
    info.in_widths = [sum(row) for row in per_subnetwork]


def _tflite_weight_shape(info):
    k = info.kernel_shape
    if info.kind == "dense":
        return (k[-1], int(np.prod(k[:-1])))
    if info.kind == "conv2d":
        return (k[3], k[0], k[1], k[2])
    if info.kind == "conv1d":
        return (k[2], 1, k[0], k[1])
    return (1, k[0], k[1], k[2] * k[3])


def _tflite_layout(info, kernel):
    """A Keras kernel in the layout of the converter's weights tensor."""
    if info.kind == "dense":
        return kernel.reshape(-1, kernel.shape[-1]).T
    if info.kind == "conv2d":
        return kernel.transpose(3, 0, 1, 2)
    if info.kind == "conv1d":
        return kernel.transpose(2, 0, 1)[:, None]
    return kernel.reshape(1, kernel.shape[0], kernel.shape[1], -1)


def _weight_distance(info, kernel, q):
    """How far int8 weights `q` are from `kernel` quantized per output
    channel (a folded BN rescales each output channel, possibly by a
    negative factor: compare magnitudes relative to each channel's max)."""
    axis = 3 if info.kind == "depthwise" else 0
    w = np.abs(_tflite_layout(info, np.asarray(kernel, np.float64)))
    q = np.abs(q.astype(np.float64))
    other = tuple(i for i in range(w.ndim) if i != axis)
    w = w / np.maximum(w.max(axis=other, keepdims=True), 1e-30)
    q = q / np.maximum(q.max(axis=other, keepdims=True), 1e-30)
    return float(np.mean(np.abs(w - q)))


def match_operators(model, subgraph, ops, infos, network):
    """The `LayerInfo` of every converter operator (same order as `ops`)."""
    if len(ops) != len(infos):
        raise ValueError(
            f"The converted model has {len(ops)} FULLY_CONNECTED/CONV_2D/"
            f"DEPTHWISE_CONV_2D operators but the Keras model has "
            f"{len(infos)} Dense/Conv/DepthwiseConv2D layers "
            f"({[i.name for i in infos]}); the converter split or merged "
            "layers in a way the exporter cannot follow.")
    left = list(infos)
    matched = []
    for index, op in enumerate(ops):
        name = flatbuffer.op_name(model, op)
        kinds = ("conv2d", "conv1d") if name == "CONV_2D" else (HADS_OPS[name][0],)
        shape = tuple(int(d) for d in subgraph.tensors[op.inputs[1]].shape)
        candidates = [i for i in left if i.kind in kinds
                      and _tflite_weight_shape(i) == shape]
        if not candidates:
            raise ValueError(
                f"Operator {index} ({name}, weights {shape}) matches no "
                f"remaining Keras layer ({[(i.name, i.kind) for i in left]}); "
                "the converter changed the graph in a way the exporter cannot "
                "follow.")
        if len(candidates) > 1:
            q = flatbuffer.tensor_data(model, subgraph.tensors[op.inputs[1]])
            candidates.sort(key=lambda i: _weight_distance(
                i, network.get_layer(i.name).get_weights()[0], q))
        matched.append(candidates[0])
        left.remove(candidates[0])
    return matched


def _check_weights(info, op_name, weights_shape):
    expected = _tflite_weight_shape(info)
    if tuple(int(d) for d in weights_shape) != expected:
        raise ValueError(
            f"Layer '{info.name}' ({info.kind}, weights {expected}) does not "
            f"match the converter's {op_name} (weights "
            f"{tuple(int(d) for d in weights_shape)}); the converter changed "
            "the graph in a way the exporter cannot follow.")


def _subnetwork_tables(model, subgraph, op, info, num):
    """Multiplier, shift and bias rows [num, out] of one operator."""
    x = subgraph.tensors[op.inputs[0]]
    w = subgraph.tensors[op.inputs[1]]
    y = subgraph.tensors[op.outputs[0]]
    s_in = flatbuffer.scales(x)[0][0]
    s_w = flatbuffer.scales(w)[0]
    s_out = flatbuffer.scales(y)[0][0]
    full_out = int(w.shape[3] if info.kind == "depthwise" else w.shape[0])
    bias_index = op.inputs[2] if len(op.inputs) > 2 else -1
    bias0 = (flatbuffer.tensor_data(model, subgraph.tensors[bias_index]).astype(np.int64)
             if bias_index >= 0 else np.zeros(full_out, np.int64))

    if info.kind == "dense" and s_w.size == 1:
        real0 = np.full(full_out, qz.effective_scale_per_tensor_fc(s_in, s_w[0], s_out))
    else:
        real0 = qz.effective_scales_per_channel(
            s_in, np.broadcast_to(s_w, (full_out,)), s_out)
    mult0, shift0 = qz.quantize_multipliers(real0)
    mult = np.repeat(mult0[None], num, 0)
    shift = np.repeat(shift0[None], num, 0)
    bias = np.repeat(bias0[None], num, 0)
    if info.bn_factors is not None:
        for k in range(1, num):
            active = output_channels(info, k, full_out)
            scale_k = (np.broadcast_to(s_w, (full_out,)).astype(np.float64)
                       * info.bn_factors[k]).astype(np.float32)
            real = qz.effective_scales_per_channel(s_in, scale_k, s_out)
            m, s = qz.quantize_multipliers(real[active])
            mult[k, active], shift[k, active] = m, s
            bias_scale = float(np.float32(s_in)) * scale_k[active].astype(np.float64)
            bias[k, active] = np.round(info.bn_bias[k, active] / bias_scale)
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        raise ValueError(f"Layer '{info.name}': a per-subnetwork bias overflows int32.")
    return mult.astype(np.int32), shift.astype(np.int32), bias.astype(np.int32)


def output_channels(info, k, full_out):
    """Indices of the output channels subnetwork k computes: a prefix, or
    for a depthwise layer reading a concatenation every segment's active
    channels times the depth multiplier (channel c feeds c*M .. c*M+M-1)."""
    if info.kind != "depthwise" or info.in_segments is None:
        return np.arange((info.out_widths or [full_out] * (k + 1))[k])
    offsets, widths = info.in_segments
    m = info.depth_multiplier
    return np.concatenate([np.arange(o * m, (o + w) * m)
                           for o, w in zip(offsets, widths[k])])


def _options(model, subgraph, op, info, op_name, num):
    w = subgraph.tensors[op.inputs[1]]
    full_out = int(w.shape[3] if info.kind == "depthwise" else w.shape[0])
    if info.kind == "dense":
        full_in = int(w.shape[1]) // info.in_spatial
    elif info.kind in ("conv2d", "conv1d"):
        full_in = int(w.shape[3])
    else:
        full_in = full_out // info.depth_multiplier
    in_channels = info.in_widths or [full_in] * num
    out_channels = info.out_widths or [full_out] * num
    mult, shift, bias = _subnetwork_tables(model, subgraph, op, info, num)
    builtin = op.builtinOptions
    options = {
        "version": FORMAT_VERSION,
        "num_subnetworks": num,
        "in_channels": list(in_channels),
        "out_channels": list(out_channels),
        "fused_activation_function": int(builtin.fusedActivationFunction),
        "output_multiplier": mult.reshape(-1),
        "output_shift": shift.reshape(-1),
        "bias": bias.reshape(-1),
    }
    if info.in_segments is not None:
        offsets, widths = info.in_segments
        options["in_segment_offsets"] = list(offsets)
        options["in_segment_channels"] = [w for row in widths for w in row]
    if info.kind == "dense":
        options["in_spatial"] = info.in_spatial
        options["keep_num_dims"] = bool(builtin.keepNumDims)
    else:
        options["padding"] = int(builtin.padding)
        options["stride_w"] = int(builtin.strideW)
        options["stride_h"] = int(builtin.strideH)
        options["dilation_w_factor"] = int(builtin.dilationWFactor)
        options["dilation_h_factor"] = int(builtin.dilationHFactor)
        if options["dilation_w_factor"] != 1 or options["dilation_h_factor"] != 1:
            raise ValueError(
                f"Layer '{info.name}': dilated convolutions are not supported "
                "by the HADS operators; use dilation_rate=1.")
        if info.kind == "depthwise":
            options["depth_multiplier"] = info.depth_multiplier
    return options


TABLE_KEYS = ("in_channels", "out_channels", "output_multiplier",
              "output_shift", "bias")
# Tables of an operator reading a concatenation (only there).
SEGMENT_KEYS = ("in_segment_offsets", "in_segment_channels")


def in_place_table_problems(model_bytes):
    """Why some HADS table could not be read in place on the device.

    The operators read every table of their custom options straight from the
    model (flash) when it is a FlexBuffer typed vector of 4-byte signed ints
    at a 4-byte aligned address in the file (the file itself is 16-byte
    aligned in memory); otherwise they copy it into the arena. Returns a
    list of messages, empty when every table is read in place.
    """
    from flatbuffers import flexbuffers
    data = bytes(model_bytes)
    base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
    model = schema.Model.GetRootAs(data, 0)
    problems = []
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for i in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            custom = code.CustomCode()
            name = custom.decode() if custom else ""
            if name not in {c for _, c in HADS_OPS.values()}:
                continue
            options = op.CustomOptionsAsNumpy()
            start = options.__array_interface__["data"][0] - base
            root = flexbuffers.GetRoot(options.tobytes()).AsMap
            keys = flexbuffers.Loads(options.tobytes())
            for key in TABLE_KEYS + tuple(k for k in SEGMENT_KEYS if k in keys):
                ref = root[key]
                where = f"operator {i} ({name}) table '{key}'"
                if not ref.IsTypedVector:
                    problems.append(f"{where} is not a typed vector")
                    continue
                vec = ref.AsTypedVector
                if vec.ElementType != flexbuffers.Type.INT or vec._byte_width != 4:
                    problems.append(f"{where} is not int32")
                elif (start + vec._buf._offset) % 4:
                    problems.append(f"{where} is not 4-byte aligned in the file")
    return problems


def rewrite_nested(int8_bytes, infos, num_subnetworks, plan_json, labels=None,
                   network=None, batchnorms=()):
    """Turn the converter's int8 model of the full network into the nested one.

    Args:
        int8_bytes: the full network's full-integer `.tflite`.
        infos: `layer_infos(...)`, in network order.
        num_subnetworks: S.
        plan_json: the dict stored as `hads_plan` (gets `operators` added).
        labels: optional list of class labels.
        network: the Keras network the infos describe; when given, operators
            are matched to layers by weights (see `match_operators`), else
            by order.
        batchnorms: `BatchNormRows` of the standalone BatchNormalizations
            with per-subnetwork statistics (`layer_infos`); their MUL + ADD
            get per-subnetwork rows (`batchnorm_tables.install`).
    """
    model = flatbuffer.load(int8_bytes, "the converted full network")
    if len(model.subgraphs) != 1:
        raise ValueError(
            f"The converted model has {len(model.subgraphs)} subgraphs; the "
            "nested exporter supports single-subgraph models.")
    subgraph = model.subgraphs[0]
    ops = [op for op in subgraph.operators
           if flatbuffer.op_name(model, op) in HADS_OPS]
    if network is None:  # chain models: the converter keeps the layer order
        if len(ops) != len(infos):
            match_operators(model, subgraph, ops, infos, None)  # raises
        matched = infos
    else:
        matched = match_operators(model, subgraph, ops, infos, network)

    selector = flatbuffer.add_tensor(model, subgraph, SUBNETWORK_INPUT, [1],
                                     schema.TensorType.INT32)
    subgraph.inputs = np.append(subgraph.inputs, selector).astype(np.int32)
    operators = []
    for index, (op, info) in enumerate(zip(ops, matched)):
        name = flatbuffer.op_name(model, op)
        kind, custom = HADS_OPS[name]
        if kind != info.kind and not (kind == "conv2d" and info.kind == "conv1d"):
            raise ValueError(
                f"Operator {index} is {name} but layer '{info.name}' is a "
                f"{info.kind}; the converter reordered layers.")
        _check_weights(info, name, subgraph.tensors[op.inputs[1]].shape)
        if not info.sliced and (info.bn_factors is None or num_subnetworks == 1):
            continue  # identical in every subnetwork: stays builtin
        options = _options(model, subgraph, op, info, name, num_subnetworks)
        inputs = list(op.inputs[:3]) + [-1] * (3 - len(op.inputs[:3]))
        op.inputs = np.asarray(inputs + [selector], np.int32)
        op.opcodeIndex = flatbuffer.opcode_index(model, custom=custom)
        op.builtinOptionsType = schema.BuiltinOptions.NONE
        op.builtinOptions = None
        op.customOptions = np.frombuffer(flatbuffer.flexbuffer_map(options), np.uint8)
        op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        operators.append({"layer": info.name, "operator": custom,
                          "in_channels": [int(v) for v in options["in_channels"]],
                          "out_channels": [int(v) for v in options["out_channels"]]})
    if not operators:
        raise ValueError("The plan slices no layer: nothing to nest.")
    tables = batchnorm_tables.install(model, subgraph, selector, batchnorms)
    flatbuffer.drop_unused_opcodes(model)
    plan_json = dict(plan_json, operators=operators)
    if tables:
        plan_json["batchnorm_tables"] = tables
    metadata_lib.set_entry(model, metadata_lib.PLAN_KEY, json.dumps(plan_json))
    if labels is not None:
        labels = [str(label) for label in labels]
        if any("\n" in label for label in labels):
            raise ValueError("labels: a class label may not contain a newline.")
        metadata_lib.set_entry(model, metadata_lib.LABELS_KEY, "\n".join(labels))
    flatbuffer.prune(model)
    nested = metadata_lib.add_crc(flatbuffer.save(model))  # last: covers every byte
    problems = in_place_table_problems(nested)
    if problems:  # the writer's layout changed: the device would copy them
        raise ValueError("nested export: HADS tables would be copied into the "
                         "arena on the device: " + "; ".join(problems))
    return nested


def tflite_nested(model, path=None, representative_data=None, labels=None,
                  latency_table=None):
    """Export a nested model as one int8 `.tflite` with HADS operators.

    Args:
        model: a `NestedModel` (`hads_keras.apply(model, plan)`).
        path: where to write the file, or None to only return the bytes.
        representative_data: calibration samples `[N, *input_shape]` (run
            through the full network).
        labels: optional class labels, stored as metadata.
        latency_table: optional `LatencyTable` (or its file): each
            subnetwork's latency at the plan's widths goes into the
            metadata (`metadata.subnetwork_latency`; without it, the plan's
            own latency costs, when it was solved with one).

    Returns:
        The nested model's bytes.
    """
    from hads_keras import _keras_compat
    from hads_keras import graph as graph_lib
    from hads_keras.costs import subnetwork_costs
    from hads_keras.export.convert import keras_to_tflite
    from hads_keras.extract import extract_subnetwork

    plan = getattr(model, "plan", None)
    if plan is None:
        raise ValueError(
            f"Model '{getattr(model, 'name', model)}' has no plan: the nested "
            "export needs a NestedModel (hads_keras.apply(model, plan)).")
    network = _keras_compat.unwrap(model)
    analysis = graph_lib.analyze(network)
    plan.check_matches(analysis)
    infos, batchnorms = layer_infos(network, analysis, plan)
    full = extract_subnetwork(model, 0)
    int8_bytes = keras_to_tflite(full, representative_data, int8=True, int8_io=True)
    plan_json = plan.to_dict()
    plan_json["costs"] = subnetwork_costs(network, plan)
    latency = metadata_lib.subnetwork_latency(model, plan, latency_table)
    if latency is not None:
        for cost, value in zip(plan_json["costs"], latency[0]):
            cost["latency"] = value
        plan_json["info"] = dict(plan_json.get("info", {}), latency=latency[1])
    nested = rewrite_nested(int8_bytes, infos, plan.num_subnetworks, plan_json,
                            labels, network=network, batchnorms=batchnorms)
    # Every subnetwork must materialize: this checks that the operators
    # between HADS operators keep the channel layout (clear errors if not).
    from hads_keras.export.materialize import materialize
    for k in range(plan.num_subnetworks):
        materialize(nested, k)
    if path is not None:
        with open(path, "wb") as f:
            f.write(nested)
    return nested
