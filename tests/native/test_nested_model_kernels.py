"""The portable HADS kernels on real nested models, bit for bit.

For each family (DNN, CNN with Flatten, DS-CNN with BN and a depth
multiplier), trained on the demo data and exported with
`hads_keras.export.tflite_nested`, and for every subnetwork k:

* the materialized model (`export.materialize(nested, k)`, builtin
  operators only) runs in ai_edge_litert's interpreter with the builtin
  *reference* kernels, keeping every intermediate tensor;
* every HADS operator of the nested model runs through the portable kernels
  (`tflm_ops/hads_kernels.cc`, built by the kernel tests' ctypes helpers)
  on the full-size buffers: the full int8 weights of the nested file, the
  tables of its custom options (row k chosen by `SelectSubnetwork`), its
  input being the reference's input tensor zero-padded to full width with
  *random* values in the inactive channels;
* the kernel's active output prefix must equal the reference's tensor bit
  for bit, and its inactive channels must hold the output zero point.

Fully connected: ai_edge_litert's FULLY_CONNECTED requantizes with single
rounding where TFLite's reference_integer_ops, TFLite Micro and the HADS
kernels use double rounding (see test_hads_kernels_vs_tflite.py). There the
kernel must equal TFLite's integer formula with double rounding
(int8_reference.fc_formula) on the materialized layer, and ai_edge_litert's
tensor must equal it wherever the two roundings agree.
"""

import pathlib
import sys

import numpy as np
import pytest

import hads_kernels_ctypes as hk
from int8_reference import fc_formula

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from test_export_fixtures import FAMILIES, digits, exported, exported_reduced  # noqa: E402

from hads_keras.export import flatbuffer, materialize  # noqa: E402
from hads_keras.export.materialize import active_input_channels  # noqa: E402


def _reference_tensors(model_bytes, sample):
    """name -> value of every tensor after one reference-kernel run."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interpreter = Interpreter(
        model_content=model_bytes,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], sample)
    interpreter.invoke()
    values = {}
    for detail in interpreter.get_tensor_details():
        try:
            values[detail["name"]] = interpreter.get_tensor(detail["index"]).copy()
        except ValueError:
            pass  # tensors without data (none expected after invoke)
    return values


class _Op:
    """One HADS operator of the nested model, decoded."""

    def __init__(self, model, op):
        graph = model.subgraphs[0]
        self.name = flatbuffer.op_name(model, op)
        self.options = flatbuffer.read_flexbuffer_map(op.customOptions)
        self.x = graph.tensors[op.inputs[0]]
        self.y = graph.tensors[op.outputs[0]]
        self.weights = np.ascontiguousarray(
            flatbuffer.tensor_data(model, graph.tensors[op.inputs[1]]))
        self.x_name = flatbuffer.tensor_name(self.x)
        self.y_name = flatbuffer.tensor_name(self.y)
        self.in_zp = int(flatbuffer.scales(self.x)[1][0])
        self.out_scale, out_zp = flatbuffer.scales(self.y)
        self.out_zp = int(out_zp[0])
        num = int(self.options["num_subnetworks"])
        full_out = int(self.y.shape[-1])
        table = lambda key: np.ascontiguousarray(
            np.asarray(self.options[key], np.int32).reshape(num, full_out))
        self.multiplier = table("output_multiplier")
        self.shift = table("output_shift")
        self.bias = table("bias")
        self.in_channels = np.ascontiguousarray(self.options["in_channels"], np.int32)
        self.out_channels = np.ascontiguousarray(self.options["out_channels"], np.int32)
        self.full_out = full_out
        # An input concatenated from segments (None: a prefix).
        self.segments = None
        if "in_segment_offsets" in self.options:
            self.segments = (
                np.ascontiguousarray(self.options["in_segment_offsets"], np.int32),
                np.ascontiguousarray(self.options["in_segment_channels"], np.int32))

    def full_input(self, x_ref, k, rng):
        """The reference input spread to full width (its active channels:
        the prefix, or every segment's), garbage everywhere else."""
        full = np.asarray(self.x.shape)
        garbage = rng.integers(-128, 128, size=tuple(full), dtype=np.int8)
        spatial = int(self.options.get("in_spatial", 1))
        channels = int(full[-1]) // spatial
        active = active_input_channels(self.options, k, channels)
        if self.name == "HADS_FULLY_CONNECTED" and len(full) == 2 \
                and x_ref.shape[-1] != len(active):
            view = garbage.reshape(full[0], spatial, channels)
            view[:, :, active] = x_ref.reshape(full[0], spatial, len(active))
            return np.ascontiguousarray(view.reshape(tuple(full)))
        garbage[..., active] = x_ref
        return garbage

    def run(self, kernels, x_full, k):
        spatial = int(self.options.get("in_spatial", 1))
        full_in = (self.weights.shape[1] // spatial if self.name == "HADS_FULLY_CONNECTED"
                   else int(self.x.shape[-1]))
        tables = kernels.tables(self.in_channels, self.out_channels, self.multiplier,
                                self.shift, self.bias, full_in, self.full_out)
        depth_multiplier = int(self.options.get("depth_multiplier", 0))
        assert kernels.validate_tables(tables, depth_multiplier) == hk.OK
        if self.segments is not None:
            assert kernels.validate_segment_tables(
                tables, kernels.segment_tables(*self.segments)) == hk.OK
        status, active = kernels.select(tables, k)
        assert status == hk.OK
        act_range = kernels.activation_range_int8(
            int(self.options["fused_activation_function"]), float(self.out_scale[0]),
            self.out_zp)
        mult, shift, bias = (np.ascontiguousarray(t[k]) for t in
                             (self.multiplier, self.shift, self.bias))
        params = kernels.quantized_params(self.in_zp, self.out_zp, act_range,
                                          mult, shift, bias)
        out = np.zeros(tuple(int(d) for d in self.y.shape), np.int8)
        a, o = active.in_channels, active.out_channels
        if self.name == "HADS_FULLY_CONNECTED":
            spatial = int(self.options["in_spatial"])
            features = int(np.prod(self.x.shape[1:]))
            shape = hk.FullyConnectedShape(
                batches=int(np.prod(self.x.shape)) // features, in_spatial=spatial,
                in_channels=features // spatial, out_channels=self.full_out)
            if self.segments is not None:
                self._run_segments(kernels, "fc", shape, params, k, o, x_full, out)
            else:
                kernels.fully_connected(shape, params, a, o, x_full, self.weights, out)
        else:
            n, h, w, c = (int(d) for d in self.x.shape)
            kh, kw = self.weights.shape[1:3]
            shape = kernels.make_conv_shape(
                n, (h, w), c, (kh, kw), self.full_out,
                (int(self.options["stride_h"]), int(self.options["stride_w"])),
                int(self.options["padding"]), max(depth_multiplier, 1))
            assert (shape.out_height, shape.out_width) == tuple(self.y.shape[1:3])
            if self.segments is not None:
                kind = "conv" if self.name == "HADS_CONV_2D" else "dw"
                self._run_segments(kernels, kind, shape, params, k, o, x_full, out)
            elif self.name == "HADS_CONV_2D":
                kernels.conv2d(shape, params, a, o, x_full, self.weights, out)
            else:
                kernels.depthwise_conv2d(shape, params, a, x_full, self.weights, out)
        return out, o

    def output_channels(self, k):
        """The output channels subnetwork k computes: a prefix, or behind a
        concatenation a depthwise layer's segments (channel c feeds outputs
        c*M .. c*M+M-1)."""
        o = int(self.out_channels[k])
        if self.name != "HADS_DEPTHWISE_CONV_2D" or self.segments is None:
            return np.arange(o)
        m = int(self.options["depth_multiplier"])
        inputs = active_input_channels(self.options, k, self.full_out // m)
        return (inputs[:, None] * m + np.arange(m)).reshape(-1)

    def _run_segments(self, kernels, kind, shape, params, k, active_out, x_full, out):
        offsets, channels = self.segments
        active = np.ascontiguousarray(channels.reshape(-1, len(offsets))[k])
        status = kernels.segments_status(kind, shape, params, offsets, active,
                                         active_out, x_full, self.weights, out)
        assert status == hk.OK, kernels.status_string(status)

    def fc_formulas(self, x_ref, k, act_range):
        """(double, single) rounding results of TFLite's int8 FC formula on
        the physically sliced layer of subnetwork k."""
        a, o = int(self.in_channels[k]), int(self.out_channels[k])
        spatial = int(self.options["in_spatial"])
        channels = self.weights.shape[1] // spatial
        active = active_input_channels(self.options, k, channels)
        w_k = self.weights[:o].reshape(o, spatial, channels)[:, :, active]
        w_k = w_k.reshape(o, spatial * a)
        x_k = x_ref.reshape(-1, spatial * a)
        q = {"input_zero_point": self.in_zp, "output_zero_point": self.out_zp}
        rows = (self.multiplier[k, :o], self.shift[k, :o])
        return tuple(fc_formula(x_k, w_k, self.bias[k, :o], q, *rows, act_range,
                                single=single) for single in (False, True))


def check_operator(kernels, op, values, k, rng, what):
    """Runs HADS operator `op` at subnetwork k through the portable kernels
    on full-size buffers (random values in the inactive input channels) and
    asserts its active output equals the reference tensor in `values` (for
    fully connected: TFLite's double-rounding formula) and its inactive
    channels the output zero point. Returns the fully connected formulas
    (double, single rounding), else None."""
    x_ref, y_ref = values[op.x_name], values[op.y_name]
    out, active = op.run(kernels, op.full_input(x_ref, k, rng), k)
    assert y_ref.shape[-1] == active, what
    formulas = None
    if op.name == "HADS_FULLY_CONNECTED":
        act_range = kernels.activation_range_int8(
            int(op.options["fused_activation_function"]),
            float(op.out_scale[0]), op.out_zp)
        formulas = op.fc_formulas(x_ref, k, act_range)
        np.testing.assert_array_equal(
            out[..., :active].reshape(formulas[0].shape), formulas[0],
            err_msg=what)
    else:
        channels = op.output_channels(k)
        np.testing.assert_array_equal(out[..., channels], y_ref, err_msg=what)
        inactive = np.setdiff1d(np.arange(out.shape[-1]), channels)
        assert np.all(out[..., inactive] == op.out_zp), what
        return formulas
    assert np.all(out[..., active:] == op.out_zp), what
    return formulas


@pytest.mark.parametrize("family", FAMILIES + ("ds_cnn_reduced",))
def test_hads_kernels_equal_materialized_model(kernels, family):
    # ds_cnn_reduced: a largest subnetwork under budget (only its units kept).
    nested_bytes = (exported_reduced()[1] if family == "ds_cnn_reduced"
                    else exported(family)[1])
    model = flatbuffer.load(nested_bytes)
    ops = [_Op(model, op) for op in model.subgraphs[0].operators
           if flatbuffer.op_name(model, op).startswith("HADS_")]
    assert {op.name for op in ops} >= (
        {"HADS_FULLY_CONNECTED"} if family == "dnn" else
        {"HADS_CONV_2D", "HADS_FULLY_CONNECTED"} if family == "cnn" else
        {"HADS_CONV_2D", "HADS_DEPTHWISE_CONV_2D"})
    x_test = digits()[2]
    graph = model.subgraphs[0]
    (in_scale,), (in_zp,) = flatbuffer.scales(graph.tensors[graph.inputs[0]])
    rng = np.random.default_rng(0)
    checked = 0
    num = int(ops[0].options["num_subnetworks"])
    for k in range(num):
        reference_model = materialize(nested_bytes, k)
        for sample in x_test[:3]:
            q = np.clip(np.round(sample / in_scale) + in_zp, -128, 127)
            values = _reference_tensors(reference_model, q[None].astype(np.int8))
            for op in ops:
                what = f"{family} k={k} {op.y_name}"
                formulas = check_operator(kernels, op, values, k, rng, what)
                if formulas is not None:  # LiteRT's FC rounds once
                    double, single = formulas
                    np.testing.assert_array_equal(
                        values[op.y_name].reshape(double.shape),
                        np.where(double != single, single, double), err_msg=what)
                checked += 1
    assert checked == num * 3 * len(ops)
