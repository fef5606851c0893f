"""End-to-end runs in the real TFLite Micro interpreter (`tflite::MicroInterpreter`).

TFLite Micro cannot be downloaded in CI, so these tests are skipped unless
the environment variable ``HADS_TFLM_DIR`` names a TFLite Micro source tree
whose library was built by its own Makefile::

    cd $HADS_TFLM_DIR
    make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite
    HADS_TFLM_DIR=$PWD pytest tests/native/test_tflm_interpreter.py

(see tests/native/README.md, also for building the tree offline). The tests
compile ``tests/native/tflm_runner.cc`` with ``tflm_ops/*.cc`` against the
tree and its ``gen/*/lib/libtensorflow-microlite.a`` and run int8 models in
it:

* the nested models written by the exporter (``hads_keras.export``) for the
  three model families, every subnetwork k, against the materialized
  standard model of subnetwork k run with TFLite Micro's builtin kernels
  (bit for bit) and with TFLite's reference kernels in ``ai_edge_litert``
  (see below);
* a nested model written by hand from a converted Dense model, following
  docs/nested_tflite_format.md, against the converted model whose inactive
  units are zeroed (an independent reference: no exporter, no materialize);
* an out-of-range subnetwork index must make ``Invoke`` fail, and bad custom
  options (missing field, inconsistent tables) ``AllocateTensors``, with a
  message and no crash;
* a plain builtin model (conv, depthwise, pooling) against ``ai_edge_litert``
  bit for bit, and a plain Dense model against TFLite's integer arithmetic
  written out in numpy, which prove the harness and the library.

Fully connected layers: TFLite Micro's FULLY_CONNECTED (like the HADS
kernels) requantizes with TFLite's reference ``MultiplyByQuantizedMultiplier``
(double rounding), while ``ai_edge_litert`` 2.3 with ``BUILTIN_REF`` gives,
for the converter's Dense layers, single-rounding results
(``(acc * M + 2^(30 - shift)) >> (31 - shift)``): the two runtimes differ by
one step in a fraction of a percent of the outputs. Comparisons that involve
a fully connected layer in ``ai_edge_litert`` are therefore within 1.
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

# Defines the Makefile compiles the library with. TF_LITE_STATIC_MEMORY
# changes the layout of TfLiteTensor: code linked against the library must
# use the same.
TFLM_DEFINES = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON"]
# The Makefile's language and warning flags for TFLite Micro's own kernels,
# warnings made errors: the HADS glue is held to the same standard.
TFLM_FLAGS = ["-std=c++17", "-fno-rtti", "-fno-exceptions",
              "-fno-threadsafe-statics", "-Wnon-virtual-dtor", "-Wsign-compare",
              "-Wdouble-promotion", "-Wunused-variable", "-Wunused-function",
              "-Wswitch", "-Wvla", "-Wall", "-Wextra",
              "-Wmissing-field-initializers", "-Wstrict-aliasing",
              "-Wno-unused-parameter", "-Werror"]

# TFLite schema enum values used to write the hand-made nested model.
_CUSTOM = 32
_FULLY_CONNECTED = 9
_INT32 = 2

FAMILIES = ("dnn", "cnn", "ds_cnn")


def _tflm_tree():
    """(tree, library) from $HADS_TFLM_DIR, or skips the test saying why."""
    root = os.environ.get(TFLM_DIR_ENV)
    if not root:
        pytest.skip(
            f"real TFLite Micro run disabled: set {TFLM_DIR_ENV} to a "
            f"tflite-micro source tree whose library is built with "
            f"`{MAKE_COMMAND}` (see tests/native/README.md)")
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


def compile_runner(out_dir):
    """Compiles tflm_runner with tflm_ops/*.cc against the TFLite Micro tree."""
    tree, library = _tflm_tree()
    downloads = (tree / "tensorflow" / "lite" / "micro" / "tools" / "make" /
                 "downloads")
    genfiles = library.parent.parent / "genfiles"
    includes = [REPO_ROOT, tree, downloads, downloads / "gemmlowp",
                downloads / "flatbuffers" / "include", downloads / "kissfft",
                downloads / "ruy", genfiles]
    sources = [RUNNER_SOURCE] + sorted(TFLM_OPS_DIR.glob("*.cc"))
    binary = pathlib.Path(out_dir) / "tflm_runner"
    command = (["g++", "-O1"] + TFLM_FLAGS + TFLM_DEFINES +
               [f"-I{path}" for path in includes] +
               [str(s) for s in sources] +
               [str(library), "-o", str(binary)])
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"compiling the TFLite Micro runner failed:\n{' '.join(command)}\n"
        f"{result.stderr[-4000:]}")
    return binary


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return compile_runner(tmp_path_factory.mktemp("tflm"))


def run_tflm(runner, model_bytes, samples, work_dir, subnetworks=None):
    """Runs `samples` (int8 [n, ...]) through the model in MicroInterpreter.

    Returns the int8 outputs [n, output_size]; with `subnetworks`, a dict
    subnetwork -> outputs. Fails the test with the runner's message when it
    returns non-zero.
    """
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    model_path = work_dir / "model.tflite"
    input_path = work_dir / "input.bin"
    prefix = work_dir / "output"
    model_path.write_bytes(bytes(model_bytes))
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
    """Int8 outputs [n, output_size] of ai_edge_litert, reference kernels."""
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
        outputs.append(
            interpreter.get_tensor(output_detail["index"]).reshape(-1))
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


def _load(model_bytes):
    from ai_edge_litert import schema_py_generated as schema
    return schema.ModelT.InitFromObj(
        schema.Model.GetRootAsModel(bytes(model_bytes), 0))


def _save(model):
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _data_input(model_bytes):
    """The TensorT of the model's input other than `subnetwork`."""
    graph = _load(model_bytes).subgraphs[0]
    (tensor,) = [graph.tensors[i] for i in graph.inputs
                 if graph.tensors[i].name != b"subnetwork"]
    return tensor


# --- nested models from the exporter ---------------------------------------


@pytest.fixture(scope="module", params=FAMILIES)
def exported_family(request):
    """(family, nested .tflite bytes) of an untrained model of each family.

    Per-subnetwork batch normalization statistics are randomized, so every
    subnetwork has its own requantization tables.
    """
    _tflm_tree()  # skip before the TensorFlow work when disabled
    import families
    import hads_keras as hads
    from hads_keras import export
    family = request.param
    model = families.BUILDERS[family](hads=True, seed=0)
    nested = hads.apply(model, hads.Plan(families.PLANS[family]))
    families.randomize_batchnorm(nested.network, seed=0)
    representative = families.inputs_for(nested.network, n=32, seed=2)
    return family, export.tflite_nested(nested, None, representative)


def test_exported_nested_model_matches_materialized(runner, exported_family,
                                                    tmp_path):
    """Nested model at k in MicroInterpreter == materialized model k."""
    from hads_keras import export
    family, nested_bytes = exported_family
    num = export.num_subnetworks(nested_bytes)
    assert num == 4
    data_input = _data_input(nested_bytes)
    samples = random_int8((16,) + tuple(data_input.shape[1:]), seed=3)

    micro = run_tflm(runner, nested_bytes, samples, tmp_path / "nested",
                     subnetworks=list(range(num)))

    for k in range(num):
        standalone = export.materialize(nested_bytes, k)
        # Same int8 input encoding, so the same samples feed both models.
        materialized_input = _data_input(standalone).quantization
        assert list(materialized_input.scale) == list(data_input.quantization.scale)
        assert (list(materialized_input.zeroPoint) ==
                list(data_input.quantization.zeroPoint))
        builtin = run_tflm(runner, standalone, samples, tmp_path / f"m{k}")
        np.testing.assert_array_equal(
            micro[k], builtin,
            err_msg=f"{family}: subnetwork {k}, HADS ops vs builtin kernels")
        reference = run_reference(standalone, samples)
        diff = np.abs(micro[k].astype(np.int32) - reference)
        assert diff.max() <= 1, (family, k, diff.max())  # see module docstring
    # Subnetworks compute different functions: the comparison is not vacuous.
    assert len({micro[k].tobytes() for k in range(num)}) == num


# --- nested model written by hand --------------------------------------------


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


def _fc_ops(model):
    return [op for op in model.subgraphs[0].operators
            if model.operatorCodes[op.opcodeIndex].builtinCode == _FULLY_CONNECTED]


def _fc_tables(model, op, num_subnetworks):
    """Per-subnetwork multiplier/shift/bias rows (identical: no BN here)."""
    graph = model.subgraphs[0]
    x, w = (graph.tensors[i] for i in op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    out_features = w.shape[0]
    w_scales = np.broadcast_to(np.asarray(w.quantization.scale, np.float32),
                               (out_features,))
    pairs = [quantize_multiplier(float(np.float32(x.quantization.scale[0])) *
                                 float(s) /
                                 float(np.float32(out.quantization.scale[0])))
             for s in w_scales]
    bias = np.zeros(out_features, np.int32)  # bias input -1: no bias
    if op.inputs[2] >= 0:
        b = graph.tensors[op.inputs[2]]
        bias = np.frombuffer(bytes(model.buffers[b.buffer].data), np.int32)
    return ([m for m, _ in pairs] * num_subnetworks,
            [s for _, s in pairs] * num_subnetworks,
            [int(v) for v in bias] * num_subnetworks)


def narrow_flexbuffer_map(entries):
    """FlexBuffer map as C++ ``fbb.Vector`` writes it: int lists become typed
    vectors of the smallest element width (not the exporter's aligned int32
    layout), bools, strings and ints stay scalars."""
    from flatbuffers import flexbuffers
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in entries.items():
            fbb.Key(key)
            if isinstance(value, bool):
                fbb.Bool(value)
            elif isinstance(value, (list, tuple)):
                fbb.TypedVectorFromElements([int(v) for v in value],
                                            flexbuffers.Type.INT)
            elif isinstance(value, str):
                fbb.String(value)
            else:
                fbb.Int(int(value))
    return bytes(fbb.Finish())


def make_nested_fc_model(model_bytes, widths, edit_first_options=None):
    """Rewrites every FULLY_CONNECTED as HADS_FULLY_CONNECTED.

    `widths[i]` lists, per subnetwork, the active output units of the i-th
    fully connected layer (the last one is the classifier: never sliced).
    `edit_first_options(options)` may change the first operator's custom
    options dict before it is written (to make bad models).
    """
    from ai_edge_litert import schema_py_generated as schema
    model = _load(model_bytes)
    graph = model.subgraphs[0]
    fc_ops = _fc_ops(model)
    assert len(fc_ops) == len(widths)
    num_subnetworks = len(widths[0])

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = _CUSTOM
    code.customCode = "HADS_FULLY_CONNECTED"
    code.version = 1
    model.operatorCodes.append(code)
    custom_index = len(model.operatorCodes) - 1

    model.buffers.append(schema.BufferT())
    subnetwork = schema.TensorT()
    subnetwork.shape = np.array([1], np.int32)
    subnetwork.type = _INT32
    subnetwork.buffer = len(model.buffers) - 1
    subnetwork.name = "subnetwork"
    graph.tensors.append(subnetwork)
    subnetwork_index = len(graph.tensors) - 1
    graph.inputs = np.append(graph.inputs, subnetwork_index).astype(np.int32)

    first_in = graph.tensors[fc_ops[0].inputs[0]].shape[-1]
    in_widths = [[first_in] * num_subnetworks] + list(widths[:-1])
    for op, ins, outs in zip(fc_ops, in_widths, widths):
        multipliers, shifts, biases = _fc_tables(model, op, num_subnetworks)
        options = op.builtinOptions
        op.opcodeIndex = custom_index
        op.inputs = np.append(op.inputs[:3], subnetwork_index).astype(np.int32)
        options_map = {
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
        }
        if edit_first_options is not None and op is fc_ops[0]:
            edit_first_options(options_map)
        op.customOptions = np.frombuffer(narrow_flexbuffer_map(options_map), np.uint8)
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
    op = _fc_ops(model)[layer]
    w = graph.tensors[op.inputs[1]]
    weights = np.array(model.buffers[w.buffer].data, np.uint8).view(np.int8)
    weights = weights.reshape(w.shape)
    weights[active:] = 0
    model.buffers[w.buffer].data = weights.reshape(-1).view(np.uint8)
    if op.inputs[2] >= 0:
        b = graph.tensors[op.inputs[2]]
        bias = np.array(model.buffers[b.buffer].data, np.uint8).view(np.int32)
        bias[active:] = 0
        model.buffers[b.buffer].data = bias.view(np.uint8)
    return _save(model)


@pytest.fixture(scope="module")
def dense_model_bytes():
    _tflm_tree()  # skip before the TensorFlow work when disabled
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


def test_hand_made_nested_fc_model_matches_zeroed_builtin_model(
        runner, dense_model_bytes, tmp_path):
    """HADS_FULLY_CONNECTED == FULLY_CONNECTED on the zero-padded layout."""
    nested = make_nested_fc_model(dense_model_bytes, widths=[[12, 6], [5, 5]])
    samples = random_int8((64, 16), seed=5)

    micro = run_tflm(runner, nested, samples, tmp_path / "nested",
                     subnetworks=[0, 1])

    full = run_tflm(runner, dense_model_bytes, samples, tmp_path / "full")
    half = run_tflm(runner, zero_inactive_units(dense_model_bytes, 0, 6),
                    samples, tmp_path / "half")
    np.testing.assert_array_equal(micro[0], full)
    np.testing.assert_array_equal(micro[1], half)
    assert not np.array_equal(full, half)  # the subnetworks really differ


def test_subnetwork_out_of_range_fails_invoke(runner, dense_model_bytes,
                                              tmp_path):
    nested = make_nested_fc_model(dense_model_bytes, widths=[[12, 6], [5, 5]])
    (tmp_path / "model.tflite").write_bytes(nested)
    (tmp_path / "input.bin").write_bytes(random_int8((16,), seed=6).tobytes())
    result = subprocess.run(
        [str(runner), str(tmp_path / "model.tflite"),
         str(tmp_path / "input.bin"), str(tmp_path / "out"), "0", "2"],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert "Invoke failed on sample 0 for subnetwork 2" in result.stderr
    assert (tmp_path / "out_k0.bin").exists()  # subnetwork 0 ran
    assert not (tmp_path / "out_k2.bin").exists()


def _drop(key):
    return lambda options: options.pop(key)


def _set(key, value):
    return lambda options: options.__setitem__(key, value)


def _shorten(key):
    return lambda options: options.__setitem__(key, options[key][:-1])


@pytest.mark.parametrize("edit, message", [
    (_drop("in_channels"), "'in_channels' is missing"),
    (_drop("output_multiplier"), "'output_multiplier' is missing"),
    (_set("version", 2), "'version'"),
    (_shorten("bias"), "HADS_FULLY_CONNECTED"),
    (_shorten("out_channels"), "HADS_FULLY_CONNECTED"),
    (_set("out_channels", [13, 6]), "HADS_FULLY_CONNECTED"),  # > 12 units
    (_set("out_channels", [6, 12]), "HADS_FULLY_CONNECTED"),  # increasing
    (_set("in_channels", [17, 16]), "HADS_FULLY_CONNECTED"),  # > 16 inputs
    (_set("num_subnetworks", 3), "HADS_FULLY_CONNECTED"),  # tables for 2
    (_set("in_spatial", 5), "HADS_FULLY_CONNECTED"),  # 16 = 5 x C impossible
], ids=["no_in_channels", "no_multiplier", "version_2", "short_bias",
        "short_out_channels", "too_wide", "increasing", "too_wide_input",
        "num_subnetworks", "in_spatial"])
def test_bad_custom_options_fail_allocation(runner, dense_model_bytes,
                                            tmp_path, edit, message):
    """Prepare rejects bad options with a message; the runner exits cleanly."""
    nested = make_nested_fc_model(dense_model_bytes, widths=[[12, 6], [5, 5]],
                                  edit_first_options=edit)
    (tmp_path / "model.tflite").write_bytes(nested)
    (tmp_path / "input.bin").write_bytes(random_int8((16,), seed=8).tobytes())
    result = subprocess.run(
        [str(runner), str(tmp_path / "model.tflite"),
         str(tmp_path / "input.bin"), str(tmp_path / "out"), "0"],
        capture_output=True, text=True)
    assert result.returncode == 1, (result.returncode, result.stderr)
    # TFLite Micro's own message: the operator's Prepare said no.
    assert "HADS_FULLY_CONNECTED (number 0) failed to prepare" in result.stderr
    assert "AllocateTensors failed" in result.stderr
    assert message in result.stderr, result.stderr


# --- plain builtin models: the harness and the library ---------------------


def test_builtin_conv_model_matches_reference_kernels(runner, tmp_path):
    """Conv/depthwise/pool int8 model: MicroInterpreter == TFLite reference."""
    import keras
    keras.utils.set_random_seed(1)
    shape = (8, 8, 2)
    model = keras.Sequential([
        keras.Input(shape, batch_size=1),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            bias_initializer="random_normal"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu6",
                                     bias_initializer="random_normal"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Conv2D(3, 1, strides=1, bias_initializer="random_normal"),
        keras.layers.Flatten(),
    ])
    model_bytes = convert_int8(model, shape)
    samples = random_int8((32,) + shape, seed=2)

    micro = run_tflm(runner, model_bytes, samples, tmp_path)
    reference = run_reference(model_bytes, samples)

    assert micro.shape == (32, 3 * 3 * 3)
    np.testing.assert_array_equal(micro, reference)
    assert len({row.tobytes() for row in micro}) == len(samples)


def _rounding_divide_by_pot(x, exponent):
    """gemmlowp::RoundingDivideByPOT on int64 arrays (half away from zero)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def _multiply_by_quantized_multiplier(acc, multiplier, shift):
    """tflite::MultiplyByQuantizedMultiplier (double rounding), int64 arrays."""
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    product = (acc << left) * multiplier  # fits int64: |acc| < 2^31 here
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = product + nudge
    # Division truncating toward zero, as the C++ integer division does.
    high = np.where(high >= 0, high >> 31, -((-high) >> 31))
    return _rounding_divide_by_pot(high, right)


def test_builtin_dense_matches_tflite_integer_arithmetic(runner,
                                                         dense_model_bytes,
                                                         tmp_path):
    """FULLY_CONNECTED in MicroInterpreter == TFLite's int8 formula in numpy."""
    samples = random_int8((256, 16), seed=7)
    micro = run_tflm(runner, dense_model_bytes, samples, tmp_path)

    model = _load(dense_model_bytes)
    graph = model.subgraphs[0]
    x = samples.astype(np.int64)
    for op in _fc_ops(model):
        inp, w = (graph.tensors[i] for i in op.inputs[:2])
        out = graph.tensors[op.outputs[0]]
        weights = np.array(model.buffers[w.buffer].data, np.uint8).view(np.int8)
        weights = weights.reshape(w.shape).astype(np.int64)
        multipliers, shifts, bias = (np.asarray(v, np.int64) for v in
                                     _fc_tables(model, op, 1))
        acc = (x - inp.quantization.zeroPoint[0]) @ weights.T + bias
        y = _multiply_by_quantized_multiplier(acc, multipliers, shifts)
        y = y + out.quantization.zeroPoint[0]
        low = -128
        if op.builtinOptions.fusedActivationFunction == 1:  # RELU
            low = max(low, int(out.quantization.zeroPoint[0]))
        x = np.clip(y, low, 127)

    np.testing.assert_array_equal(micro, x)
    # ai_edge_litert's BUILTIN_REF agrees to one step (module docstring).
    reference = run_reference(dense_model_bytes, samples)
    assert np.abs(reference.astype(np.int32) - micro).max() <= 1
