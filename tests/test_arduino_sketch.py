"""`hads_keras.export.arduino.write_sketch`: nested .tflite -> Arduino sketch.

The nested models here are written by hand with the TFLite schema's object
API, following docs/nested_tflite_format.md, so the test does not depend on
the Keras exporter: a 2-layer int8 DNN (8 -> 6 -> 4, hidden widths 6/4/2 for
3 subnetworks) and a small conv/depthwise model whose MACs are counted by
hand. `build_nested_dnn` and `build_materialized_dnn` are also used by the
real-TFLite-Micro host test (tests/test_arduino_host_tflm.py).
"""

import math
import re

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from flatbuffers import flexbuffers

from hads_keras.export import arduino

# ---------------------------------------------------------------------------
# A tiny nested model, written by hand.

IN, HIDDEN, CLASSES = 8, 6, 4
HIDDEN_WIDTHS = (6, 4, 2)  # subnetworks 0 (full), 1, 2
S_IN, ZP_IN = 0.05, -3
S_W = 0.002
S_H, ZP_H = 0.08, -128  # ReLU output
S_OUT, ZP_OUT = 0.1, 5


def quantize_multiplier(m):
    """TFLite's QuantizeMultiplier (frexp, round half away from zero)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(math.floor(abs(q) * (1 << 31) + 0.5)) * (1 if q > 0 else -1)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _multiplier(s_in, s_w, s_out):
    m = float(np.float32(s_in)) * float(np.float32(s_w)) / float(np.float32(s_out))
    return quantize_multiplier(m)


def dnn_weights(seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-127, 128, (HIDDEN, IN)).astype(np.int8)
    b1 = rng.integers(-300, 300, HIDDEN).astype(np.int32)
    w2 = rng.integers(-127, 128, (CLASSES, HIDDEN)).astype(np.int8)
    b2 = rng.integers(-300, 300, CLASSES).astype(np.int32)
    return w1, b1, w2, b2


class _Builder:
    def __init__(self):
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.buffers = [schema.BufferT()]
        self.model.operatorCodes = []
        self.model.metadata = []
        self.sg = schema.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []
        self.sg.inputs, self.sg.outputs = [], []
        self.model.subgraphs = [self.sg]
        self._codes = {}

    def buffer(self, data):
        b = schema.BufferT()
        b.data = np.frombuffer(bytes(data), np.uint8).tolist()
        self.model.buffers.append(b)
        return len(self.model.buffers) - 1

    def tensor(self, name, shape, ttype, data=None, scale=None, zp=0):
        t = schema.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = ttype
        t.buffer = 0 if data is None else self.buffer(data)
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(scale)], [int(zp)]
            t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def opcode(self, builtin, custom=None):
        key = (builtin, custom)
        if key not in self._codes:
            c = schema.OperatorCodeT()
            c.builtinCode = builtin
            c.deprecatedBuiltinCode = min(builtin, 127)
            c.customCode = custom
            c.version = 1
            self.model.operatorCodes.append(c)
            self._codes[key] = len(self.model.operatorCodes) - 1
        return self._codes[key]

    def op(self, opcode, inputs, outputs, custom_options=None, builtin=None):
        o = schema.OperatorT()
        o.opcodeIndex = opcode
        o.inputs, o.outputs = list(inputs), list(outputs)
        if custom_options is not None:
            o.customOptions = list(custom_options)
            o.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        if builtin is not None:
            o.builtinOptionsType, o.builtinOptions = builtin
        self.sg.operators.append(o)

    def metadata(self, name, text):
        m = schema.MetadataT()
        m.name = name
        m.buffer = self.buffer(text.encode())
        self.model.metadata.append(m)

    def bytes(self):
        b = flatbuffers.Builder(1024)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _hads_fc_options(in_widths, out_widths, full_out, mult, shift, bias, act):
    s = len(in_widths)
    padded_bias = []
    for k in range(s):  # per subnetwork: the full bias, one row per k
        padded_bias += [int(v) for v in bias] + [0] * (full_out - len(bias))
    return flexbuffers.Dumps({
        "version": 1,
        "num_subnetworks": s,
        "in_channels": [int(v) for v in in_widths],
        "out_channels": [int(v) for v in out_widths],
        "fused_activation_function": act,
        "output_multiplier": [mult] * (s * full_out),
        "output_shift": [shift] * (s * full_out),
        "bias": padded_bias,
        "in_spatial": 1,
        "keep_num_dims": False,
    })


def build_nested_dnn(labels=None, softmax=False, seed=0):
    """The nested DNN: HADS_FULLY_CONNECTED x2 reading input `subnetwork`."""
    w1, b1, w2, b2 = dnn_weights(seed)
    mb = _Builder()
    INT8, INT32 = schema.TensorType.INT8, schema.TensorType.INT32
    x = mb.tensor("input", [1, IN], INT8, scale=S_IN, zp=ZP_IN)
    sub = mb.tensor("subnetwork", [1], INT32)
    tw1 = mb.tensor("w1", [HIDDEN, IN], INT8, w1.tobytes(), scale=S_W)
    tb1 = mb.tensor("b1", [HIDDEN], INT32, b1.tobytes(), scale=S_IN * S_W)
    h = mb.tensor("hidden", [1, HIDDEN], INT8, scale=S_H, zp=ZP_H)
    tw2 = mb.tensor("w2", [CLASSES, HIDDEN], INT8, w2.tobytes(), scale=S_W)
    tb2 = mb.tensor("b2", [CLASSES], INT32, b2.tobytes(), scale=S_H * S_W)
    y = mb.tensor("logits", [1, CLASSES], INT8, scale=S_OUT, zp=ZP_OUT)
    s = len(HIDDEN_WIDTHS)
    fc = mb.opcode(schema.BuiltinOperator.CUSTOM, "HADS_FULLY_CONNECTED")
    m1, sh1 = _multiplier(S_IN, S_W, S_H)
    mb.op(fc, [x, tw1, tb1, sub], [h], _hads_fc_options(
        [IN] * s, HIDDEN_WIDTHS, HIDDEN, m1, sh1, b1,
        schema.ActivationFunctionType.RELU))
    m2, sh2 = _multiplier(S_H, S_W, S_OUT)
    mb.op(fc, [h, tw2, tb2, sub], [y], _hads_fc_options(
        HIDDEN_WIDTHS, [CLASSES] * s, CLASSES, m2, sh2, b2,
        schema.ActivationFunctionType.NONE))
    out = y
    if softmax:
        p = mb.tensor("probs", [1, CLASSES], INT8, scale=1 / 256, zp=-128)
        opts = schema.SoftmaxOptionsT()
        opts.beta = 1.0
        mb.op(mb.opcode(schema.BuiltinOperator.SOFTMAX), [y], [p],
              builtin=(schema.BuiltinOptions.SoftmaxOptions, opts))
        out = p
    mb.sg.inputs, mb.sg.outputs = [x, sub], [out]
    if labels:
        mb.metadata("hads_labels", "\n".join(labels) + "\n")
    return mb.bytes()


def build_materialized_dnn(k, seed=0, softmax=False):
    """Subnetwork k as a plain builtin int8 model (the reference)."""
    w1, b1, w2, b2 = dnn_weights(seed)
    hk = HIDDEN_WIDTHS[k]
    mb = _Builder()
    INT8, INT32 = schema.TensorType.INT8, schema.TensorType.INT32
    x = mb.tensor("input", [1, IN], INT8, scale=S_IN, zp=ZP_IN)
    tw1 = mb.tensor("w1", [hk, IN], INT8, w1[:hk].tobytes(), scale=S_W)
    tb1 = mb.tensor("b1", [hk], INT32, b1[:hk].tobytes(), scale=S_IN * S_W)
    h = mb.tensor("hidden", [1, hk], INT8, scale=S_H, zp=ZP_H)
    tw2 = mb.tensor("w2", [CLASSES, hk], INT8,
                    np.ascontiguousarray(w2[:, :hk]).tobytes(), scale=S_W)
    tb2 = mb.tensor("b2", [CLASSES], INT32, b2.tobytes(), scale=S_H * S_W)
    y = mb.tensor("logits", [1, CLASSES], INT8, scale=S_OUT, zp=ZP_OUT)
    fc = mb.opcode(schema.BuiltinOperator.FULLY_CONNECTED)
    for (i, w, b, o, act) in ((x, tw1, tb1, h, schema.ActivationFunctionType.RELU),
                              (h, tw2, tb2, y, schema.ActivationFunctionType.NONE)):
        opts = schema.FullyConnectedOptionsT()
        opts.fusedActivationFunction = act
        mb.op(fc, [i, w, b], [o],
              builtin=(schema.BuiltinOptions.FullyConnectedOptions, opts))
    out = y
    if softmax:
        out = mb.tensor("probs", [1, CLASSES], INT8, scale=1 / 256, zp=-128)
        opts = schema.SoftmaxOptionsT()
        opts.beta = 1.0
        mb.op(mb.opcode(schema.BuiltinOperator.SOFTMAX), [y], [out],
              builtin=(schema.BuiltinOptions.SoftmaxOptions, opts))
    mb.sg.inputs, mb.sg.outputs = [x], [out]
    return mb.bytes()


def dnn_costs():
    """Hand count: MACs and parameters (weights + biases) per subnetwork."""
    out = []
    for h in HIDDEN_WIDTHS:
        macs = IN * h + h * CLASSES
        out.append((macs, macs + h + CLASSES))
    return out


def build_nested_convnet():
    """conv 3x3 (1->4, 6x6 SAME) + depthwise 3x3 (4, VALID) + FC, widths 4/2."""
    mb = _Builder()
    INT8, INT32 = schema.TensorType.INT8, schema.TensorType.INT32
    widths = [4, 2]
    x = mb.tensor("image", [1, 6, 6, 1], INT8, scale=0.1)
    sub = mb.tensor("subnetwork", [1], INT32)
    wc = mb.tensor("wc", [4, 3, 3, 1], INT8, bytes(36), scale=0.1)
    a = mb.tensor("a", [1, 6, 6, 4], INT8, scale=0.1)
    wd = mb.tensor("wd", [1, 3, 3, 4], INT8, bytes(36), scale=0.1)
    d = mb.tensor("d", [1, 4, 4, 4], INT8, scale=0.1)
    r = mb.tensor("r", [1, 64], INT8, scale=0.1)
    shape = mb.tensor("shape", [2], INT32, np.array([1, 64], np.int32).tobytes())
    wf = mb.tensor("wf", [3, 64], INT8, bytes(192), scale=0.1)
    y = mb.tensor("y", [1, 3], INT8, scale=0.1)

    def opts(in_w, out_w, full_out, **extra):
        base = {"version": 1, "num_subnetworks": 2, "in_channels": in_w,
                "out_channels": out_w, "fused_activation_function": 0,
                "output_multiplier": [1 << 30] * (2 * full_out),
                "output_shift": [0] * (2 * full_out), "bias": [0] * (2 * full_out)}
        base.update(extra)
        return flexbuffers.Dumps(base)

    conv = dict(padding=0, stride_w=1, stride_h=1, dilation_w_factor=1,
                dilation_h_factor=1)
    mb.op(mb.opcode(schema.BuiltinOperator.CUSTOM, "HADS_CONV_2D"),
          [x, wc, -1, sub], [a], opts([1, 1], widths, 4, **conv))
    conv["padding"] = 1
    mb.op(mb.opcode(schema.BuiltinOperator.CUSTOM, "HADS_DEPTHWISE_CONV_2D"),
          [a, wd, -1, sub], [d], opts(widths, widths, 4, depth_multiplier=1, **conv))
    mb.op(mb.opcode(schema.BuiltinOperator.RESHAPE), [d, shape], [r])
    mb.op(mb.opcode(schema.BuiltinOperator.CUSTOM, "HADS_FULLY_CONNECTED"),
          [r, wf, -1, sub], [y], opts(widths, [3, 3], 3, in_spatial=16,
                                      keep_num_dims=False))
    mb.sg.inputs, mb.sg.outputs = [x, sub], [y]
    return mb.bytes()


def convnet_costs():
    out = []
    for w in (4, 2):
        conv = 6 * 6 * w * 9  # 6x6 outputs, w filters of 3x3x1
        dw = 4 * 4 * w * 9    # 4x4 outputs (VALID), w channels of 3x3
        fc = 16 * w * 3       # 16 positions x w channels -> 3
        out.append((conv + dw + fc, w * 9 + 9 * w + 16 * w * 3))  # no biases
    return out


# ---------------------------------------------------------------------------
# Reading the generated header back.

def header_array(header, name):
    m = re.search(rf"{name}\[\] = \{{(.*?)\}};", header, re.S)
    assert m, f"{name} not in header"
    return [int(v, 0) for v in re.findall(r"-?0x[0-9a-f]+|-?\d+", m.group(1))]


def header_costs(header):
    m = re.search(r"g_hads_costs\[\] = \{(.*?)\n\};", header, re.S)
    return [(int(a), int(b)) for a, b in re.findall(r"\{(\d+)u, (\d+)u, \d+u\}", m.group(1))]


# ---------------------------------------------------------------------------

def test_model_info_reads_the_nested_model():
    info = arduino.NestedModelInfo(build_nested_dnn())
    assert info.num_subnetworks == 3
    assert info.costs == dnn_costs()
    assert info.input_shape == [1, IN] and info.input_type == "INT8"
    assert info.builtin_ops == []
    assert arduino.NestedModelInfo(build_nested_convnet()).costs == convnet_costs()


def test_write_sketch_writes_a_complete_sketch_folder(tmp_path):
    model = build_nested_dnn(labels=["yes", "no", "up", 'say "hi"'], softmax=True)
    ino = arduino.write_sketch(model, tmp_path / "MySketch")
    assert ino == tmp_path / "MySketch" / "MySketch.ino"  # Arduino naming rule
    assert ino.read_text() == (arduino.LIBRARY_DIR / "examples" / "AdaptiveInference"
                               / "AdaptiveInference.ino").read_text()
    header = (tmp_path / "MySketch" / "hads_model.h").read_text()
    # The C array holds the model byte for byte.
    assert bytes(header_array(header, "g_hads_model")) == model
    assert f"g_hads_model_len = {len(model)}u" in header
    assert "alignas(16) const unsigned char g_hads_model[]" in header
    # The subnetwork table: hand-counted MACs/params, largest first.
    assert header_costs(header) == dnn_costs()
    assert "g_hads_cost_table = {3, g_hads_costs, hads::LatencyUnit::kNone}" in header
    # Labels from the model metadata, escaped for C.
    assert 'g_hads_num_labels = 4' in header and r'"say \"hi\""' in header
    # Exactly the operators used: SOFTMAX + the three HADS operators.
    assert "kHadsNumOps = 4;" in header
    assert "resolver.AddSoftmax()" in header
    assert "return hads::AddHadsOps(resolver);" in header
    assert "#define HADS_MODEL_HAS_SAMPLE 0" in header


def test_write_sketch_budget_example_labels_plan_and_sample(tmp_path):
    model = build_nested_dnn()
    sample = np.linspace(-1.0, 1.0, IN, dtype=np.float32)
    plan = {"subnetworks": [{"macs": m, "params": p} for m, p in dnn_costs()]}
    arduino.write_sketch(model, tmp_path / "Budget", plan=plan,
                         labels=["a", "b", "c", "d"], example="BudgetDriven",
                         sample=sample, sample_label=2)
    assert "selectForBudget" in (tmp_path / "Budget" / "Budget.ino").read_text()
    header = (tmp_path / "Budget" / "hads_model.h").read_text()
    expected = np.clip(np.round(sample / S_IN) + ZP_IN, -128, 127).astype(int)
    assert header_array(header, "g_hads_sample") == expected.tolist()
    assert "g_hads_sample_label = 2;" in header
    assert f"plan: {dnn_costs()[2][0]} MACs, {dnn_costs()[2][1]} params" in header


def test_write_sketch_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        arduino.write_sketch(b"not a model", tmp_path / "S")
    plain = build_materialized_dnn(0)
    with pytest.raises(ValueError, match="no input named 'subnetwork'"):
        arduino.write_sketch(plain, tmp_path / "S")
    with pytest.raises(ValueError, match="sketch folder name"):
        arduino.write_sketch(build_nested_dnn(), tmp_path / "my sketch!")
    with pytest.raises(ValueError, match="example="):
        arduino.write_sketch(build_nested_dnn(), tmp_path / "S", example="Blink")
    with pytest.raises(ValueError, match="sample has 3 values"):
        arduino.write_sketch(build_nested_dnn(), tmp_path / "S", sample=[1, 2, 3])
    plan = {"macs": [1, 2]}
    with pytest.raises(ValueError, match="plan lists 2 subnetworks"):
        arduino.write_sketch(build_nested_dnn(), tmp_path / "S", plan=plan)
    assert not (tmp_path / "S").exists()  # nothing half-written


def test_cli_writes_sketch_and_zip(tmp_path):
    model_path = tmp_path / "nested.tflite"
    model_path.write_bytes(build_nested_dnn())
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\n")
    assert arduino.main(["sketch", str(model_path), str(tmp_path / "Sk"),
                         "--labels", str(labels)]) == 0
    assert '"a", "b", "c", "d"' in (tmp_path / "Sk" / "hads_model.h").read_text()
    assert arduino.main(["zip", str(tmp_path / "HADS.zip")]) == 0
    assert (tmp_path / "HADS.zip").stat().st_size > 0
    assert arduino.main(["sync", "--check"]) == (1 if arduino.stale_sources() else 0)


def test_the_examples_share_one_model_header_that_matches_its_model():
    # One copy: each example's hads_model.h includes the library's shared
    # header, which must be what the exporter writes for the model it
    # embeds (table, resolver size), not hand-edited.
    for example in arduino.EXAMPLES:
        local = (arduino.LIBRARY_DIR / "examples" / example / "hads_model.h").read_text()
        assert f"#include <{arduino.EXAMPLE_MODEL_HEADER}>" in local
        assert "g_hads_model" not in local
    header = (arduino.LIBRARY_DIR / "src" / arduino.EXAMPLE_MODEL_HEADER).read_text()
    model = bytes(header_array(header, "g_hads_model"))
    info = arduino.NestedModelInfo(model)
    assert header_costs(header) == info.costs
    assert f"kHadsNumOps = {len(info.builtin_ops) + 3};" in header
    assert f"kHadsArenaSize = {info.arena_size};" in header
