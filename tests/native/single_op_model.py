"""Single-operator TFLite models with exactly the given weights, for tests.

The native tests compare the HADS kernels with TFLite's reference kernels.
The reference must see *exactly* the int8 weights, per-channel scales, zero
points and bias of a subnetwork, which the TFLite converter cannot be told
to produce. So this module writes the flatbuffer directly with the schema's
object API (``ModelT`` / ``SubGraphT`` / ``TensorT`` / ``OperatorT`` /
``BufferT``) and runs it with the builtin *reference* op resolver.

Functions return ``bytes`` of a ``.tflite`` model with one subgraph, one
operator, input tensor 0 and output tensor 1 (weights and bias are
constants).
"""

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

_ACTIVATION = {
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1,
    "RELU6": schema.ActivationFunctionType.RELU6,
}
_PADDING = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}
_TYPE = {
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.float32): schema.TensorType.FLOAT32,
}


def _quant(scale, zero_point, dim=0):
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, np.float32))]
    zp = np.atleast_1d(np.asarray(zero_point, np.int64))
    if zp.size == 1 and len(q.scale) > 1:
        zp = np.repeat(zp, len(q.scale))
    q.zeroPoint = [int(z) for z in zp]
    q.quantizedDimension = dim
    return q


class _ModelBuilder:
    """Collects tensors and buffers of a one-operator model."""

    def __init__(self):
        self.tensors = []
        self.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel

    def tensor(self, name, shape, dtype, data=None, quant=None):
        t = schema.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = _TYPE[np.dtype(dtype)]
        if data is None:
            t.buffer = 0
        else:
            buf = schema.BufferT()
            raw = np.ascontiguousarray(np.asarray(data, dtype=dtype))
            assert tuple(raw.shape) == tuple(shape), (name, raw.shape, shape)
            buf.data = np.frombuffer(raw.tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        t.quantization = quant
        self.tensors.append(t)
        return len(self.tensors) - 1

    def finish(self, builtin_code, options_type, options, inputs):
        code = schema.OperatorCodeT()
        code.builtinCode = builtin_code
        code.deprecatedBuiltinCode = min(builtin_code, 127)
        code.version = 1
        op = schema.OperatorT()
        op.opcodeIndex = 0
        op.inputs = list(inputs)
        op.outputs = [1]
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        sub = schema.SubGraphT()
        sub.tensors = self.tensors
        sub.inputs = [0]
        sub.outputs = [1]
        sub.operators = [op]
        sub.name = "main"
        model = schema.ModelT()
        model.version = 3
        model.operatorCodes = [code]
        model.subgraphs = [sub]
        model.buffers = self.buffers
        model.description = "hads_keras tests: single operator"
        fbb = flatbuffers.Builder(1024)
        fbb.Finish(model.Pack(fbb), file_identifier=b"TFL3")
        return bytes(fbb.Output())


def _io_tensors(mb, x_shape, out_shape, dtype, q):
    if q is None:
        mb.tensor("input", x_shape, dtype)
        mb.tensor("output", out_shape, dtype)
    else:
        mb.tensor("input", x_shape, dtype,
                  quant=_quant(q["input_scale"], q["input_zero_point"]))
        mb.tensor("output", out_shape, dtype,
                  quant=_quant(q["output_scale"], q["output_zero_point"]))


def _weights_and_bias(mb, weights, bias, q, dim, bias_len):
    """Adds the filter and (optional) bias tensors; returns their indices."""
    dtype = weights.dtype
    if q is None:
        w = mb.tensor("weights", weights.shape, dtype, weights)
        b = -1 if bias is None else mb.tensor("bias", (bias_len,),
                                                np.float32, bias)
        return w, b
    w_scale = np.atleast_1d(np.asarray(q["weight_scale"], np.float32))
    w = mb.tensor("weights", weights.shape, np.int8, weights,
                  quant=_quant(w_scale, 0, dim))
    if bias is None:
        return w, -1
    # Bias scale = input scale * weight scale, as the converter writes it
    # (TFLite checks it for per-tensor fully connected).
    b_scale = np.float32(q["input_scale"]) * w_scale
    b = mb.tensor("bias", (bias_len,), np.int32, bias,
                  quant=_quant(b_scale, 0, 0))
    return w, b


def fully_connected(weights, bias, input_shape, activation="NONE", q=None,
                    keep_num_dims=False):
    """FULLY_CONNECTED with ``weights`` [out, in] (int8 or float32).

    Args:
      weights: numpy int8 (quantized model) or float32 array [out, in].
      bias: int32 (quantized) / float32 array [out], or None.
      input_shape: e.g. (batches, in).
      activation: fused activation name.
      q: None for float; for int8 a dict with ``input_scale``,
        ``input_zero_point``, ``weight_scale`` (scalar: per tensor, or one per
        output channel), ``output_scale``, ``output_zero_point``.
    """
    out = weights.shape[0]
    mb = _ModelBuilder()
    dtype = np.int8 if q is not None else np.float32
    out_shape = (int(np.prod(input_shape[:-1])), out)
    _io_tensors(mb, input_shape, out_shape, dtype, q)
    w, b = _weights_and_bias(mb, weights, bias, q, 0, out)
    opts = schema.FullyConnectedOptionsT()
    opts.fusedActivationFunction = _ACTIVATION[activation]
    opts.keepNumDims = keep_num_dims
    return mb.finish(schema.BuiltinOperator.FULLY_CONNECTED,
                     schema.BuiltinOptions.FullyConnectedOptions, opts,
                     [0, w, b])


def _out_size(padding, size, k, stride):
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size + stride - k) // stride


def conv2d(weights, bias, input_shape, strides=(1, 1), padding="SAME",
           activation="NONE", q=None):
    """CONV_2D with ``weights`` [out, kh, kw, in]; input NHWC.

    ``q`` as in :func:`fully_connected` (weight scales per output channel).
    """
    n, h, w_, _ = input_shape
    out, kh, kw, _ = weights.shape
    out_shape = (n, _out_size(padding, h, kh, strides[0]),
                 _out_size(padding, w_, kw, strides[1]), out)
    mb = _ModelBuilder()
    dtype = np.int8 if q is not None else np.float32
    _io_tensors(mb, input_shape, out_shape, dtype, q)
    wi, b = _weights_and_bias(mb, weights, bias, q, 0, out)
    opts = schema.Conv2DOptionsT()
    opts.padding = _PADDING[padding]
    opts.strideH, opts.strideW = strides
    opts.dilationHFactor = opts.dilationWFactor = 1
    opts.fusedActivationFunction = _ACTIVATION[activation]
    return mb.finish(schema.BuiltinOperator.CONV_2D,
                     schema.BuiltinOptions.Conv2DOptions, opts, [0, wi, b])


def depthwise_conv2d(weights, bias, input_shape, depth_multiplier=1,
                     strides=(1, 1), padding="SAME", activation="NONE",
                     q=None):
    """DEPTHWISE_CONV_2D with ``weights`` [1, kh, kw, in * M]; input NHWC."""
    n, h, w_, _ = input_shape
    _, kh, kw, out = weights.shape
    out_shape = (n, _out_size(padding, h, kh, strides[0]),
                 _out_size(padding, w_, kw, strides[1]), out)
    mb = _ModelBuilder()
    dtype = np.int8 if q is not None else np.float32
    _io_tensors(mb, input_shape, out_shape, dtype, q)
    wi, b = _weights_and_bias(mb, weights, bias, q, 3, out)
    opts = schema.DepthwiseConv2DOptionsT()
    opts.padding = _PADDING[padding]
    opts.strideH, opts.strideW = strides
    opts.dilationHFactor = opts.dilationWFactor = 1
    opts.depthMultiplier = depth_multiplier
    opts.fusedActivationFunction = _ACTIVATION[activation]
    return mb.finish(schema.BuiltinOperator.DEPTHWISE_CONV_2D,
                     schema.BuiltinOptions.DepthwiseConv2DOptions, opts,
                     [0, wi, b])


def run_reference(model_content, x):
    """Runs the model on ``x`` with TFLite's builtin *reference* kernels."""
    interp = Interpreter(
        model_content=model_content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def hads_operator(custom_code, options, weights, bias, input_shape,
                  output_shape, q, weight_dim=0, subnetwork_type=np.int32):
    """A nested model with one HADS custom operator (format of
    docs/nested_tflite_format.md): inputs ``input`` and ``subnetwork``
    (int32 [1]), constant int8 ``weights`` with per-channel scales
    ``q["weight_scale"]`` on ``weight_dim``, int32 ``bias`` (or None), and
    the FlexBuffer ``options`` bytes as custom options.

    ``q`` as in :func:`fully_connected`. TFLite's own interpreter cannot run
    it (no HADS kernels); the TFLite Micro runner with tflm_ops can.
    """
    mb = _ModelBuilder()
    _io_tensors(mb, input_shape, output_shape, np.int8, q)
    w, b = _weights_and_bias(mb, weights, bias, q, weight_dim,
                             output_shape[-1])
    sub = mb.tensor("subnetwork", (1,), subnetwork_type)
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_code
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs = [0, w, b, sub]
    op.outputs = [1]
    op.customOptions = np.frombuffer(bytes(options), dtype=np.uint8)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    graph = schema.SubGraphT()
    graph.tensors = mb.tensors
    graph.inputs = [0, sub]
    graph.outputs = [1]
    graph.operators = [op]
    graph.name = "main"
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.subgraphs = [graph]
    model.buffers = mb.buffers
    model.description = "hads_keras tests: one HADS operator"
    fbb = flatbuffers.Builder(1024)
    fbb.Finish(model.Pack(fbb), file_identifier=b"TFL3")
    return bytes(fbb.Output())
