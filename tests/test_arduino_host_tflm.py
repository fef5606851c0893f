"""The Arduino library and its examples, built as host programs against the
real TFLite Micro.

No board and no Arduino IDE here, and TFLite Micro cannot be downloaded in
CI, so these tests skip unless ``HADS_TFLM_DIR`` names a tflite-micro source
tree whose library was built by its own Makefile (the convention of
tests/native/test_tflm_interpreter.py)::

    cd $HADS_TFLM_DIR
    make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite
    HADS_TFLM_DIR=$PWD pytest tests/test_arduino_host_tflm.py

They compile the library exactly as the Arduino builder would (every .cpp of
the library as installed, `hads_keras.export.arduino.write_library`, so the
operator sources generated from tflm_ops/ included) with a tiny stand-in for
the Arduino core (Serial, micros, delay, pins), then

* run the nested DNN of tests/test_arduino_sketch.py (with a SOFTMAX after
  the last HADS operator) through hads::NestedModel for every subnetwork,
  revisiting them and invoking twice per select(), and compare the int8
  outputs bit for bit with the materialized subnetwork run by TFLite's
  reference kernels (ai_edge_litert, BUILTIN_REF); check select() refuses
  a bad index and selectForBudget() picks the largest subnetwork within a
  budget;
* build the two example sketches with a model header from write_sketch()
  and run setup() and loop(): AdaptiveInference must print one row per
  subnetwork with the reference's top class, BudgetDriven must switch
  between subnetworks as its simulated battery drains.
"""

import glob
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

from hads_keras.export import arduino

import test_arduino_sketch as models

REPO = pathlib.Path(__file__).resolve().parents[1]
TFLM_DIR_ENV = "HADS_TFLM_DIR"
MAKE = "make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite"
DEFINES = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON"]

# What the sketches use of the Arduino core, on the host.
ARDUINO_SHIM = r"""
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#define INPUT_PULLUP 2
#define LOW 0
#define HIGH 1
struct HostSerial {
  void begin(long) {}
  explicit operator bool() const { return true; }
  void print(const char* s) { std::printf("%s", s); }
  void print(char c) { std::printf("%c", c); }
  void print(int v) { std::printf("%d", v); }
  void print(unsigned int v) { std::printf("%u", v); }
  void print(long v) { std::printf("%ld", v); }
  void print(unsigned long v) { std::printf("%lu", v); }
  void print(double v, int digits = 2) { std::printf("%.*f", digits, v); }
  template <typename T> void println(T v) { print(v); std::printf("\n"); }
  void println() { std::printf("\n"); }
};
inline HostSerial Serial;
inline unsigned long micros() {
  using namespace std::chrono;
  return static_cast<unsigned long>(duration_cast<microseconds>(
      steady_clock::now().time_since_epoch()).count());
}
inline void delay(unsigned long) {}
inline void pinMode(int, int) {}
inline int digitalRead(int) { return HIGH; }
"""

SKETCH_MAIN = r"""
#include <cstdlib>
void setup();
void loop();
int main(int argc, char** argv) {
  setup();
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 1;
  for (int i = 0; i < rounds; ++i) loop();
  return 0;
}
"""

# Library API check: prints the int8 output of every subnetwork, then what
# select / selectForBudget return for edge cases.
API_MAIN = r"""
#include <cstdio>
#include <HADS.h>
#include "hads_model.h"

HadsOpResolver resolver;
alignas(16) uint8_t arena[kHadsArenaSize];

int main() {
  const tflite::Model* model = tflite::GetModel(g_hads_model);
  if (HadsModelAddOps(resolver) != kTfLiteOk) return 2;
  tflite::MicroInterpreter interpreter(model, resolver, arena, kHadsArenaSize);
  hads::NestedModel nested;
  hads::Result r = nested.select(0);
  std::printf("before_begin %d %d\n", static_cast<int>(r), nested.current());
  r = nested.begin(model, interpreter, g_hads_cost_table);
  if (r != hads::Result::kOk) {
    std::printf("begin failed: %s\n", hads::ResultString(r));
    return 3;
  }
  std::printf("arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  // Every subnetwork, in an order that revisits them, and each one twice
  // without select() in between: TFLite Micro may reuse the input tensors'
  // memory during Invoke, so the input is refilled and invoke() rewrites
  // the subnetwork index.
#ifndef HADS_ORDER
#define HADS_ORDER {2, 0, 2, 1, 0, 1}
#endif
  const int order[] = HADS_ORDER;
  for (int k : order) {
    if (nested.select(k) != hads::Result::kOk) return 4;
    std::printf("slot %d\n", interpreter.input(nested.subnetworkInputIndex())->data.i32[0]);
    for (int again = 0; again < 2; ++again) {
      std::memcpy(nested.input()->data.int8, g_hads_sample, sizeof(g_hads_sample));
      if (nested.invoke() != hads::Result::kOk) return 5;
      const TfLiteTensor* out = nested.output();
      std::printf("out %d", k);
      for (size_t i = 0; i < out->bytes; ++i) std::printf(" %d", out->data.int8[i]);
      std::printf("\n");
    }
  }
  std::printf("select_bad %d %d current %d\n",
              static_cast<int>(nested.select(nested.count())),
              static_cast<int>(nested.select(-1)), nested.current());
  const uint32_t m1 = nested.macs(1);
  const int fit = static_cast<int>(nested.selectForBudget(m1));
  const int fit_k = nested.current();
  const int below = static_cast<int>(nested.selectForBudget(m1 - 1));
  const int below_k = nested.current();
  std::printf("budget %d %d %d %d\n", fit, fit_k, below, below_k);
  const int nofit = static_cast<int>(nested.selectForBudget(0));
  std::printf("budget_nofit %d current %d\n", nofit, nested.current());
  return 0;
}
"""


def _tflm():
    root = os.environ.get(TFLM_DIR_ENV)
    if not root:
        pytest.skip(f"real TFLite Micro run disabled: set {TFLM_DIR_ENV} to a "
                    f"tflite-micro tree built with `{MAKE}`")
    tree = pathlib.Path(root)
    libs = sorted(glob.glob(str(tree / "gen" / "*" / "lib" /
                                "libtensorflow-microlite.a")))
    if len(libs) != 1:
        pytest.skip(f"{TFLM_DIR_ENV}={root}: need exactly one "
                    f"gen/*/lib/libtensorflow-microlite.a (found {libs}); `{MAKE}`")
    return tree, pathlib.Path(libs[0])


def _build(work, main_source, extra_sources=(), name="prog"):
    tree, lib = _tflm()
    src = work / "libraries" / arduino.LIBRARY_NAME / "src"
    if not src.is_dir():
        arduino.write_library(work / "libraries")
    dl = tree / "tensorflow" / "lite" / "micro" / "tools" / "make" / "downloads"
    includes = [work, src, tree, dl / "gemmlowp", dl / "flatbuffers" / "include",
                dl / "kissfft", dl / "ruy", lib.parent.parent / "genfiles"]
    (work / "Arduino_host.h").write_text(ARDUINO_SHIM)
    main = work / f"{name}_main.cpp"
    main.write_text(main_source)
    sources = sorted(src.rglob("*.cpp")) + [main] + list(extra_sources)
    binary = work / name
    cmd = (["g++", "-std=c++17", "-O1", "-fno-rtti", "-fno-exceptions",
            "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", *DEFINES,
            "-include", str(work / "Arduino_host.h")] +
           [f"-isystem{p}" if p not in (work, src) else f"-I{p}" for p in includes])
    for src in sources:  # .ino files are C++
        cmd += ["-x", "c++", str(src)] if src.suffix == ".ino" else [str(src)]
    cmd += ["-x", "none", str(lib), "-o", str(binary)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
    return binary


def _reference(k, sample):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interp = Interpreter(model_content=models.build_materialized_dnn(k, softmax=True),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"],
                      sample.reshape(1, -1).astype(np.int8))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(-1)


SAMPLE = np.random.default_rng(19).integers(-128, 128, models.IN).astype(np.int8)


def _write_model_header(folder, example="AdaptiveInference"):
    # With a SOFTMAX after the last HADS operator, TFLite Micro may reuse the
    # `subnetwork` input's memory for the softmax output.
    ino = arduino.write_sketch(models.build_nested_dnn(labels=list("abcd"),
                                                       softmax=True),
                               folder, sample=SAMPLE, sample_label=1,
                               example=example)
    return ino


def test_library_matches_reference_kernels_for_every_subnetwork(tmp_path):
    _write_model_header(tmp_path / "Api")
    binary = _build(tmp_path / "Api", API_MAIN, name="api")
    out = subprocess.run([str(binary)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    print(out.stdout)
    assert lines[0] == "before_begin 1 -1"  # kNotStarted, nothing selected
    order = [2, 0, 2, 1, 0, 1]
    # select() wrote the index straight into the model's input tensor.
    assert [l for l in lines if l.startswith("slot ")] == [f"slot {k}" for k in order]
    rows = [l.split() for l in lines if l.startswith("out ")]
    assert [int(r[1]) for r in rows] == [k for k in order for _ in range(2)]
    for row in rows:
        k = int(row[1])
        got = np.array([int(v) for v in row[2:]], np.int8)
        np.testing.assert_array_equal(got, _reference(k, SAMPLE),
                                      err_msg=f"subnetwork {k}")
    # Bad index: kOutOfRange (3) twice, selection unchanged (last k = 1).
    assert "select_bad 3 3 current 1" in lines
    # Budget = MACs of subnetwork 1 -> 1; one less -> 2; 0 -> kNoFit (4).
    assert "budget 0 1 0 2" in lines
    assert "budget_nofit 4 current 2" in lines


def test_adaptive_inference_example_runs(tmp_path):
    ino = _write_model_header(tmp_path / "Adaptive")
    binary = _build(tmp_path / "Adaptive", SKETCH_MAIN, [ino], name="adaptive")
    out = subprocess.run([str(binary), "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout)
    rows = [l.split("\t") for l in out.stdout.splitlines()
            if re.match(r"^\d+\t", l)]
    assert [int(r[0]) for r in rows] == list(range(len(models.HIDDEN_WIDTHS)))
    for k, row in enumerate(rows):
        assert int(row[1]) == models.dnn_costs()[k][0]
        top = int(np.argmax(_reference(k, SAMPLE)))
        assert row[4] == "abcd"[top], (k, row)
    assert "expected: b" in out.stdout


def test_budget_driven_example_switches_subnetworks(tmp_path):
    ino = _write_model_header(tmp_path / "Budget", example="BudgetDriven")
    binary = _build(tmp_path / "Budget", SKETCH_MAIN, [ino], name="budget")
    out = subprocess.run([str(binary), "30"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout)
    rows = [l.split("\t") for l in out.stdout.splitlines()
            if re.match(r"^\d+\t[\d.]+\t\d+\t", l)]
    assert len(rows) == 30
    chosen = {int(r[2]) for r in rows}
    assert len(chosen) >= 2, "the budget never changed the subnetwork"
    for r in rows:
        assert int(r[3]) == models.dnn_costs()[int(r[2])][0]


def test_bundled_example_model_matches_materialize(tmp_path):
    """The examples' model (made by the real exporter) in the real TFLite
    Micro with the library == hads_keras.export.materialize(k) in TFLite
    Micro's builtin kernels, bit for bit, and within one step of TFLite's
    reference kernels, for every subnetwork."""
    from hads_keras import export
    import test_arduino_sketch as sketch_tests
    header = (arduino.LIBRARY_DIR / "src" / arduino.EXAMPLE_MODEL_HEADER).read_text()
    model = bytes(sketch_tests.header_array(header, "g_hads_model"))
    sample = np.array(sketch_tests.header_array(header, "g_hads_sample"), np.int8)
    work = tmp_path / "Bundled"
    work.mkdir()
    (work / arduino.MODEL_HEADER).write_text(header)
    main = API_MAIN.replace("#define HADS_ORDER {2, 0, 2, 1, 0, 1}",
                            "#define HADS_ORDER {3, 0, 2, 1, 3}")
    binary = _build(work, main, name="bundled")
    out = subprocess.run([str(binary)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout)
    rows = [l.split() for l in out.stdout.splitlines() if l.startswith("out ")]
    assert {int(r[1]) for r in rows} == set(range(arduino.NestedModelInfo(model)
                                                  .num_subnetworks))
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    for row in rows:
        k = int(row[1])
        interp = Interpreter(model_content=export.materialize(model, k),
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], sample.reshape(detail["shape"]))
        interp.invoke()
        reference = interp.get_tensor(interp.get_output_details()[0]["index"])
        # Bit for bit against TFLite Micro's own builtin kernels (the PyPI
        # runtime) on the materialized model; TFLite's reference fully
        # connected kernel rounds once instead of twice, so it may differ by
        # one step (tests/native/README.md, "Fully connected rounding").
        from tflite_micro import runtime
        micro = runtime.Interpreter.from_bytes(export.materialize(model, k))
        micro.set_input(sample.reshape(micro.get_input_details(0)["shape"]), 0)
        micro.invoke()
        expected = np.asarray(micro.get_output(0)).reshape(-1)
        got = np.array([int(v) for v in row[2:]], np.int8)
        np.testing.assert_array_equal(got, expected, err_msg=f"subnetwork {k}")
        assert np.max(np.abs(got.astype(int) - reference.reshape(-1))) <= 1, k
    used = int(re.search(r"arena_used (\d+)", out.stdout).group(1))
    assert used <= int(re.search(r"kHadsArenaSize = (\d+)", header).group(1))
