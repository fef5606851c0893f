"""End-to-end runs in the real TFLite Micro interpreter (`tflite::MicroInterpreter`).

TFLite Micro cannot be downloaded in CI, so these tests are skipped unless
the environment variable ``HADS_TFLM_DIR`` names a TFLite Micro source tree
whose library was built by its own Makefile::

    cd $HADS_TFLM_DIR
    make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite
    HADS_TFLM_DIR=$PWD pytest tests/native/test_tflm_interpreter.py

(see tests/native/README.md for building the tree offline). The tests compile
``tests/native/tflm_runner.cc`` (and, for the nested models, ``tflm_ops/*.cc``)
against the tree and its ``gen/*/lib/libtensorflow-microlite.a``, run models
in it and compare the int8 outputs bit for bit with ``ai_edge_litert``'s
interpreter using TFLite's reference kernels (``BUILTIN_REF``):

* a plain builtin int8 model (conv, depthwise conv, pooling, dense) proves
  the harness and the library end to end;
* a nested model with ``HADS_FULLY_CONNECTED`` operators, written by hand
  from a converted Dense model following docs/nested_tflite_format.md, must
  give at subnetwork 0 the converted model's outputs and at subnetwork 1 the
  outputs of the converted model whose inactive units are zeroed (the
  zero-padded layout of the narrower subnetwork); an out-of-range index must
  make ``Invoke`` fail with a message.
"""

import glob
import math
import os
import pathlib
import subprocess

import numpy as np
import pytest

TFLM_DIR_ENV = "HADS_TFLM_DIR"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER_SOURCE = REPO_ROOT / "tests" / "native" / "tflm_runner.cc"
TFLM_OPS_DIR = REPO_ROOT / "tflm_ops"
LIBRARY_NAME = "libtensorflow-microlite.a"
MAKE_COMMAND = "make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite"

# Defines the Makefile compiles the library with that change struct layouts
# (TfLiteTensor / TfLiteEvalTensor) or the kernels: code linked against the
# library must use the same ones.
TFLM_DEFINES = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON"]

# TFLite schema enum values used to write the nested model.
_CUSTOM = 32
_FULLY_CONNECTED = 9
_INT32 = 2


def _tflm_tree():
    """(tree, library) from $HADS_TFLM_DIR, or skips the test saying why."""
    root = os.environ.get(TFLM_DIR_ENV)
    if not root:
        pytest.skip(
            f"real TFLite Micro run disabled: set {TFLM_DIR_ENV} to a tflite-micro "
            f"source tree whose library is built with `{MAKE_COMMAND}` "
            "(see tests/native/README.md)")
    tree = pathlib.Path(root)
    header = tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h"
    if not header.is_file():
        pytest.skip(f"{TFLM_DIR_ENV}={root} is not a tflite-micro tree "
                    f"({header} is missing)")
    libraries = sorted(glob.glob(str(tree / "gen" / "*" / "lib" / LIBRARY_NAME)))
    if not libraries:
        pytest.skip(f"{TFLM_DIR_ENV}={root} has no gen/*/lib/{LIBRARY_NAME}; "
                    f"build it there with `{MAKE_COMMAND}`")
    if len(libraries) > 1:
        pytest.skip(f"{TFLM_DIR_ENV}={root} holds several builds {libraries}; "
                    "keep one (make ... clean) so the test knows which to use")
    return tree, pathlib.Path(libraries[0])


def _compile_runner(out_dir, with_hads_ops):
    """Compiles tflm_runner (optionally with tflm_ops/*.cc) against the tree."""
    tree, library = _tflm_tree()
    downloads = tree / "tensorflow" / "lite" / "micro" / "tools" / "make" / "downloads"
    genfiles = library.parent.parent / "genfiles"
    includes = [REPO_ROOT, tree, downloads, downloads / "gemmlowp",
                downloads / "flatbuffers" / "include", downloads / "kissfft",
                downloads / "ruy", genfiles]
    sources = [RUNNER_SOURCE]
    defines = list(TFLM_DEFINES)
    if with_hads_ops:
        sources += sorted(TFLM_OPS_DIR.glob("*.cc"))
        defines.append("-DHADS_RUNNER_WITH_HADS_OPS=1")
    binary = pathlib.Path(out_dir) / ("tflm_runner_hads" if with_hads_ops
                                      else "tflm_runner")
    command = (["g++", "-std=c++17", "-O1", "-fno-rtti", "-fno-exceptions",
                "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"] +
               defines + [f"-I{path}" for path in includes] +
               [str(s) for s in sources] + [str(library), "-o", str(binary)])
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"compiling the TFLite Micro runner failed:\n{' '.join(command)}\n"
        f"{result.stderr[-4000:]}")
    return binary


@pytest.fixture(scope="module")
def plain_runner(tmp_path_factory):
    return _compile_runner(tmp_path_factory.mktemp("tflm"), with_hads_ops=False)


@pytest.fixture(scope="module")
def hads_runner(tmp_path_factory):
    _tflm_tree()
    if not (TFLM_OPS_DIR / "hads_ops.cc").is_file():
        pytest.skip("tflm_ops/hads_ops.cc is not there yet: nothing registers "
                    "the HADS operators")
    return _compile_runner(tmp_path_factory.mktemp("tflm"), with_hads_ops=True)


def run_tflm(runner, model_bytes, samples, work_dir, subnetworks=None):
    """Runs `samples` (int8 [n, ...]) through the model in MicroInterpreter.

    Returns the int8 outputs [n, output_size]; with `subnetworks`, a dict
    subnetwork -> outputs. Fails the test with the runner's message when it
    returns non-zero.
    """
    work_dir = pathlib.Path(work_dir)
    model_path = work_dir / "model.tflite"
    input_path = work_dir / "input.bin"
    prefix = work_dir / "output"
    model_path.write_bytes(model_bytes)
    input_path.write_bytes(np.ascontiguousarray(samples, np.int8).tobytes())
    args = [str(runner), str(model_path), str(input_path), str(prefix)]
    args += [str(k) for k in (subnetworks or [])]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"tflm_runner failed ({result.returncode}):\n{result.stdout}\n"
        f"{result.stderr}")
    n = len(samples)

    def load(path):
        return np.fromfile(path, dtype=np.int8).reshape(n, -1)

    if subnetworks is None:
        return load(f"{prefix}.bin")
    return {k: load(f"{prefix}_k{k}.bin") for k in subnetworks}


def run_reference(model_bytes, samples):
    """Int8 outputs [n, output_size] of TFLite's reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interpreter = Interpreter(
        model_content=bytes(model_bytes),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    output_detail = interpreter.get_output_details()[0]
    outputs = []
    for sample in samples:
        interpreter.set_tensor(input_detail["index"],
                               sample.reshape(input_detail["shape"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"]).reshape(-1))
    return np.stack(outputs)


def convert_int8(model, input_shape, seed=0):
    """Full-integer (int8 in and out) TFLite flatbuffer of a Keras model."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(32):
            yield [rng.normal(size=(1,) + tuple(input_shape)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def random_int8(shape, seed):
    return np.random.default_rng(seed).integers(-128, 128, size=shape,
                                                dtype=np.int8)


def test_plain_builtin_model_matches_reference_kernels(plain_runner, tmp_path):
    """Conv/depthwise/pool/dense int8 model: MicroInterpreter == TFLite ref."""
    import keras
    keras.utils.set_random_seed(1)
    shape = (8, 8, 2)
    model = keras.Sequential([
        keras.Input(shape, batch_size=1),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            bias_initializer="random_normal"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu6"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(6, bias_initializer="random_normal"),
    ])
    model_bytes = convert_int8(model, shape)
    samples = random_int8((8,) + shape, seed=2)

    micro = run_tflm(plain_runner, model_bytes, samples, tmp_path)
    reference = run_reference(model_bytes, samples)

    assert micro.shape == (8, 6)
    np.testing.assert_array_equal(micro, reference)
    # Different samples give different outputs: the comparison is not vacuous.
    assert len({row.tobytes() for row in micro}) == len(samples)


# --- nested model with HADS custom operators, written by hand -------------


def quantize_multiplier(real_multiplier):
    """TFLite's QuantizeMultiplier: (int32 multiplier, shift), shift>0 = left."""
    if real_multiplier == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    q_fixed = int(math.floor(fraction * (1 << 31) + 0.5))  # std::round, x > 0
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _fc_tables(model, op, num_subnetworks):
    """Per-subnetwork multiplier/shift/bias rows (identical: no BN here)."""
    graph = model.subgraphs[0]
    x, w = (graph.tensors[i] for i in op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    out_features = w.shape[0]
    w_scales = np.broadcast_to(np.asarray(w.quantization.scale, np.float64),
                               (out_features,))
    pairs = [quantize_multiplier(float(np.float32(x.quantization.scale[0])) *
                                 float(s) /
                                 float(np.float32(out.quantization.scale[0])))
             for s in w_scales.astype(np.float32)]
    bias = np.zeros(out_features, np.int32)  # bias input -1: no bias
    if op.inputs[2] >= 0:
        b = graph.tensors[op.inputs[2]]
        bias = np.frombuffer(bytes(model.buffers[b.buffer].data), np.int32)
    return ([m for m, _ in pairs] * num_subnetworks,
            [s for _, s in pairs] * num_subnetworks,
            [int(v) for v in bias] * num_subnetworks)


def _flexbuffer_map(entries):
    """FlexBuffer map; lists become typed int vectors, as C++ fbb.Vector does."""
    from flatbuffers import flexbuffers
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in entries.items():
            fbb.Key(key)
            if isinstance(value, bool):
                fbb.Bool(value)
            elif isinstance(value, list):
                fbb.TypedVectorFromElements(value, flexbuffers.Type.INT)
            else:
                fbb.Int(value)
    return bytes(fbb.Finish())


def _load(model_bytes):
    from ai_edge_litert import schema_py_generated as schema
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))


def _save(model):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def make_nested_fc_model(model_bytes, widths):
    """Rewrites every FULLY_CONNECTED as HADS_FULLY_CONNECTED.

    `widths[i]` lists, per subnetwork, the active output units of the i-th
    fully connected layer (the last one is the classifier: never sliced).
    """
    from ai_edge_litert import schema_py_generated as schema
    model = _load(model_bytes)
    graph = model.subgraphs[0]
    fc_ops = [op for op in graph.operators
              if model.operatorCodes[op.opcodeIndex].builtinCode == _FULLY_CONNECTED]
    assert len(fc_ops) == len(widths)
    num_subnetworks = len(widths[0])

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = _CUSTOM
    code.customCode = "HADS_FULLY_CONNECTED"
    code.version = 1
    model.operatorCodes.append(code)
    custom_index = len(model.operatorCodes) - 1

    buffer = schema.BufferT()
    model.buffers.append(buffer)
    subnetwork = schema.TensorT()
    subnetwork.shape = np.array([1], np.int32)
    subnetwork.type = _INT32
    subnetwork.buffer = len(model.buffers) - 1
    subnetwork.name = "subnetwork"
    graph.tensors.append(subnetwork)
    subnetwork_index = len(graph.tensors) - 1
    graph.inputs = np.append(graph.inputs, subnetwork_index).astype(np.int32)

    in_widths = [[graph.tensors[fc_ops[0].inputs[0]].shape[-1]] * num_subnetworks]
    in_widths += widths[:-1]
    for op, ins, outs in zip(fc_ops, in_widths, widths):
        multipliers, shifts, biases = _fc_tables(model, op, num_subnetworks)
        options = op.builtinOptions
        op.opcodeIndex = custom_index
        op.inputs = np.append(op.inputs[:3], subnetwork_index).astype(np.int32)
        op.customOptions = np.frombuffer(_flexbuffer_map({
            "version": 1,
            "num_subnetworks": num_subnetworks,
            "in_channels": [int(v) for v in ins],
            "out_channels": [int(v) for v in outs],
            "fused_activation_function": int(options.fusedActivationFunction),
            "output_multiplier": multipliers,
            "output_shift": shifts,
            "bias": biases,
            "in_spatial": 1,
            "keep_num_dims": bool(options.keepNumDims),
        }), np.uint8)
        op.customOptionsFormat = 0  # FLEXBUFFERS
        op.builtinOptionsType = 0
        op.builtinOptions = None
    return _save(model)


def zero_inactive_units(model_bytes, layer, active):
    """The builtin model with units >= `active` of FC `layer` zeroed.

    Weights and bias of an inactive unit are 0, so it outputs the output zero
    point: the zero-padded layout of the narrower subnetwork that the nested
    format prescribes (its consumer then adds (zp - zp) * w = 0).
    """
    model = _load(model_bytes)
    graph = model.subgraphs[0]
    fc_ops = [op for op in graph.operators
              if model.operatorCodes[op.opcodeIndex].builtinCode == _FULLY_CONNECTED]
    w = graph.tensors[fc_ops[layer].inputs[1]]
    weights = np.array(model.buffers[w.buffer].data, np.uint8).view(np.int8)
    weights = weights.reshape(w.shape)
    weights[active:] = 0
    model.buffers[w.buffer].data = weights.reshape(-1).view(np.uint8)
    if fc_ops[layer].inputs[2] >= 0:
        b = graph.tensors[fc_ops[layer].inputs[2]]
        bias = np.array(model.buffers[b.buffer].data, np.uint8).view(np.int32)
        bias[active:] = 0
        model.buffers[b.buffer].data = bias.view(np.uint8)
    return _save(model)


@pytest.fixture(scope="module")
def dense_model_bytes():
    import keras
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((16,), batch_size=1),
        # Non-zero biases, so that the converter keeps the bias tensors.
        keras.layers.Dense(12, activation="relu",
                           bias_initializer=keras.initializers.RandomNormal(
                               stddev=0.5)),
        keras.layers.Dense(5, bias_initializer="ones"),
    ])
    return convert_int8(model, (16,), seed=4)


def test_hand_made_nested_fc_model_matches_reference(hads_runner,
                                                     dense_model_bytes,
                                                     tmp_path):
    """HADS_FULLY_CONNECTED in MicroInterpreter == TFLite ref, per subnetwork."""
    nested = make_nested_fc_model(dense_model_bytes, widths=[[12, 6], [5, 5]])
    samples = random_int8((8, 16), seed=5)

    micro = run_tflm(hads_runner, nested, samples, tmp_path, subnetworks=[0, 1])

    full = run_reference(dense_model_bytes, samples)
    half = run_reference(zero_inactive_units(dense_model_bytes, 0, 6), samples)
    np.testing.assert_array_equal(micro[0], full)
    np.testing.assert_array_equal(micro[1], half)
    assert not np.array_equal(full, half)  # the subnetworks really differ


def test_subnetwork_out_of_range_fails_invoke(hads_runner, dense_model_bytes,
                                              tmp_path):
    nested = make_nested_fc_model(dense_model_bytes, widths=[[12, 6], [5, 5]])
    (tmp_path / "model.tflite").write_bytes(nested)
    (tmp_path / "input.bin").write_bytes(random_int8((16,), seed=6).tobytes())
    result = subprocess.run(
        [str(hads_runner), str(tmp_path / "model.tflite"),
         str(tmp_path / "input.bin"), str(tmp_path / "out"), "2"],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert "Invoke failed" in result.stderr
    assert not (tmp_path / "out_k2.bin").exists()
