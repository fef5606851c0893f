"""The whole HADS Arduino library compiled as the Arduino IDE builds it, and
an example sketch linked into a Cortex-M4F image, against the real
Chirale_TensorFLowLite 2.0.0 (the library `depends=` names).

Skips unless ``HADS_CHIRALE_DIR`` names a checkout of
spaziochirale/Chirale_TensorFlowLite (its 2.0.0 tag) and
``arm-none-eabi-g++`` is installed::

    HADS_CHIRALE_DIR=/path/to/Chirale_TensorFlowLite \\
    HADS_CHIRALE_BUILD_DIR=/path/to/cache \\
    pytest tests/test_arduino_chirale_build.py -s

What the Arduino builder does, and so the test: only each library's `src/`
on the include path (`-I HADS/src -I Chirale_TensorFLowLite/src`), every
.c/.cpp under both `src/` folders compiled (recursively, so the HADS glue
and the operator sources generated from tflm_ops/ too), C++ as gnu++14 (the
mbed core of the Nano 33 BLE), -Os, for Cortex-M4F (`-mcpu=cortex-m4 -mthumb
-mfloat-abi=hard -mfpu=fpv4-sp-d16`), with `ARDUINO` and `ARDUINO_ARCH_MBED`
defined. No Arduino core is needed: a test-local `Arduino.h` declares what
the sketch and Chirale's Arduino glue use (Serial, micros, millis, delay,
pins), defined in a small stub source, plus newlib's nosys stubs. The
sketch AdaptiveInference (with the bundled example model) must link: every
HADS and TFLite Micro symbol resolves.

Chirale's objects (by default those the sketch links, see
`_chirale_sources`; `HADS_CHIRALE_ALL=1` for all ~215) are cached under
``HADS_CHIRALE_BUILD_DIR`` (default: a folder under the system's temp dir)
keyed by the flags and each file's modification time.
"""

import concurrent.futures
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from hads_keras.export import arduino

CHIRALE_ENV = "HADS_CHIRALE_DIR"
BUILD_ENV = "HADS_CHIRALE_BUILD_DIR"
CXX = "arm-none-eabi-g++"
CC = "arm-none-eabi-gcc"
HEADERS = pathlib.Path(__file__).parent / "data" / "chirale_tflite_2.0.0_headers.txt"

CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
COMMON = CPU + ["-Os", "-g0", "-ffunction-sections", "-fdata-sections",
                "-DARDUINO=10819", "-DARDUINO_ARCH_MBED"]
CXXFLAGS = ["-std=gnu++14", "-fno-exceptions", "-fno-rtti",
            "-fno-threadsafe-statics"]
CFLAGS = ["-std=gnu11"]

# What the sketch and Chirale's Arduino glue take from the core.
ARDUINO_H = r"""
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#define INPUT 0
#define OUTPUT 1
#define INPUT_PULLUP 2
#define LOW 0
#define HIGH 1
#ifdef __cplusplus
// The mbed core's Arduino.h brings ArduinoCore-API's arduino::RingBufferN
// (Chirale's system_setup.cpp uses it); Chirale ships the same class.
#include "tensorflow/lite/micro/system_ArduinoRingBuffer.h"
using namespace arduino;
class StubSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  int read() { return -1; }  // no input
  size_t print(const char* s);
  size_t print(char c);
  size_t print(int v);
  size_t print(unsigned int v);
  size_t print(long v);
  size_t print(unsigned long v);
  size_t print(double v, int digits = 2);
  template <typename T> size_t println(T v) { return print(v) + println(); }
  size_t println(double v, int digits) { return print(v, digits) + println(); }
  size_t println() { return print("\n"); }
};
extern StubSerial Serial;
extern "C" {
#endif
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
void pinMode(int pin, int mode);
int digitalRead(int pin);
void digitalWrite(int pin, int value);
#ifdef __cplusplus
}
#endif
"""

# Serial writes to stdout (newlib; semihosting when run under QEMU with
# rdimon, discarded with nosys), time from a counter.
ARDUINO_STUB = r"""
#include "Arduino.h"
#include <stdio.h>
StubSerial Serial;
size_t StubSerial::print(const char* s) { return printf("%s", s); }
size_t StubSerial::print(char c) { return printf("%c", c); }
size_t StubSerial::print(int v) { return printf("%d", v); }
size_t StubSerial::print(unsigned int v) { return printf("%u", v); }
size_t StubSerial::print(long v) { return printf("%ld", v); }
size_t StubSerial::print(unsigned long v) { return printf("%lu", v); }
size_t StubSerial::print(double v, int digits) { return printf("%.*f", digits, v); }
static unsigned long g_us = 0;
extern "C" unsigned long millis(void) { return (g_us += 1000) / 1000; }
extern "C" unsigned long micros(void) { return g_us += 10; }
extern "C" void delay(unsigned long ms) { g_us += ms * 1000; }
extern "C" void delayMicroseconds(unsigned int us) { g_us += us; }
extern "C" void pinMode(int, int) {}
extern "C" int digitalRead(int) { return HIGH; }
extern "C" void digitalWrite(int, int) {}
void setup();
void loop();
int main() {
  setup();
  loop();
  return 0;
}
"""


def _chirale():
    root = os.environ.get(CHIRALE_ENV)
    if not root:
        pytest.skip(f"set {CHIRALE_ENV} to a Chirale_TensorFlowLite 2.0.0 checkout")
    if shutil.which(CXX) is None:
        pytest.skip(f"{CXX} not installed")
    src = pathlib.Path(root) / "src"
    if not (src / "Chirale_TensorFlowLite.h").is_file():
        pytest.fail(f"{CHIRALE_ENV}={root} has no src/Chirale_TensorFlowLite.h")
    return src


# The HADS library's own code is held to warnings-as-errors (TFLite Micro's
# headers leave unused parameters).
HADS_WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]


def _compile(source, obj, includes, extra=()):
    flags = (CXXFLAGS if source.suffix == ".cpp" else CFLAGS) + list(extra)
    compiler = CXX if source.suffix == ".cpp" else CC
    cmd = [compiler, *COMMON, *flags, *[f"-I{i}" for i in includes],
           "-c", str(source), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return source, cmd, proc


def _compile_all(sources, out_dir, includes, key_root, key_extra=""):
    """Objects of `sources` under `out_dir`, reusing up-to-date ones (keyed
    by the file, its modification time, the flags and `key_extra`)."""
    objects, todo = [], []
    for source in sources:
        stamp = f"{source}:{source.stat().st_mtime_ns}:{' '.join(COMMON)}:{key_extra}"
        digest = hashlib.sha1(stamp.encode()).hexdigest()[:12]
        rel = source.relative_to(key_root).with_suffix("")
        obj = out_dir / f"{rel.as_posix().replace('/', '__')}.{digest}.o"
        objects.append(obj)
        if not obj.is_file():
            todo.append((source, obj))
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = int(os.environ.get("HADS_BUILD_JOBS", os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(_compile, s, o, [str(i) for i in includes])
                   for s, o in todo]
        for future in futures:
            source, cmd, proc = future.result()
            assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
    return objects


def _sources(src):
    return sorted(p for p in src.rglob("*") if p.suffix in (".c", ".cpp"))


# What the example sketch links from Chirale_TensorFLowLite: the TFLite Micro
# runtime (interpreter, allocators, planners, flatbuffer parsing, logging
# through Serial) and the builtin kernels its model uses besides the HADS
# operators (MEAN). The Arduino IDE compiles all ~215 sources; the linker
# keeps only these, so by default only these are compiled (minutes on a
# busy 2-core machine instead of an hour). HADS_CHIRALE_ALL=1 compiles
# every source, as the IDE does.
_LINKED_DIRS = ("tensorflow/lite/core/", "tensorflow/lite/c/",
                "tensorflow/lite/schema/", "tensorflow/lite/micro/arena_allocator/",
                "tensorflow/lite/micro/memory_planner/",
                "tensorflow/lite/micro/tflite_bridge/", "peripherals/")
_LINKED_FILES = ("tensorflow/lite/kernels/kernel_util.cpp",
                 "tensorflow/lite/kernels/internal/quantization_util.cpp",
                 "tensorflow/lite/kernels/internal/portable_tensor_utils.cpp",
                 "tensorflow/lite/kernels/internal/tensor_utils.cpp",
                 "tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cpp",
                 "tensorflow/lite/micro/kernels/kernel_util.cpp",
                 "tensorflow/lite/micro/kernels/micro_tensor_utils.cpp",
                 "tensorflow/lite/micro/kernels/reduce.cpp",
                 "tensorflow/lite/micro/kernels/reduce_common.cpp")
# Test scaffolding of TFLite Micro, never linked into a sketch.
_NOT_LINKED = ("all_ops_resolver.cpp", "test_helpers.cpp", "test_helper_custom_ops.cpp",
               "mock_micro_graph.cpp", "fake_micro_context.cpp")


def _chirale_sources(src):
    everything = _sources(src)
    if os.environ.get("HADS_CHIRALE_ALL") == "1":
        return everything
    chosen = []
    for path in everything:
        rel = path.relative_to(src).as_posix()
        top = rel.startswith("tensorflow/lite/micro/") and rel.count("/") == 3
        if (rel in _LINKED_FILES or rel.startswith(_LINKED_DIRS) or top) and \
                path.name not in _NOT_LINKED:
            chosen.append(path)
    return chosen


def test_recorded_headers_exist_in_the_checkout():
    # The list tests/test_arduino_includes.py checks against is Chirale's.
    src = _chirale()
    names = [l.strip() for l in HEADERS.read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert [n for n in names if not (src / n).is_file()] == []


def test_library_compiles_and_example_links(tmp_path):
    chirale_src = _chirale()
    build = pathlib.Path(os.environ.get(BUILD_ENV) or
                         pathlib.Path(tempfile.gettempdir()) / "hads_chirale_build")
    stub = tmp_path / "core"
    stub.mkdir()
    (stub / "Arduino.h").write_text(ARDUINO_H)
    (stub / "Wire.h").write_text("#pragma once\n#include \"Arduino.h\"\n")
    (stub / "arduino_stub.cpp").write_text(ARDUINO_STUB)
    hads_src = arduino.write_library(tmp_path / "libraries") / "src"
    sketch = tmp_path / "sketch"
    sketch.mkdir()
    example = arduino.LIBRARY_DIR / "examples" / "AdaptiveInference"
    # The IDE compiles the .ino as C++ with the sketch folder on the path.
    (sketch / "AdaptiveInference.ino.cpp").write_text(
        '#include "Arduino.h"\n' + (example / "AdaptiveInference.ino").read_text())
    shutil.copy(example / "hads_model.h", sketch / "hads_model.h")

    core_inc = [stub]
    libs_inc = [hads_src, chirale_src]
    # Chirale (cached) and the stub core.
    chirale_objs = _compile_all(
        _chirale_sources(chirale_src), build / "chirale", core_inc + [chirale_src],
        chirale_src, key_extra=hashlib.sha1(ARDUINO_H.encode()).hexdigest())
    # HADS: every source, warnings as errors for the library's own code.
    hads_objs = []
    for source in _sources(hads_src):
        obj = tmp_path / "hads" / (source.relative_to(hads_src).as_posix()
                                   .replace("/", "__") + ".o")
        obj.parent.mkdir(exist_ok=True)
        _, cmd, proc = _compile(source, obj, [str(i) for i in core_inc + libs_inc],
                                HADS_WARNINGS)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
        hads_objs.append(obj)
    assert any("hads_ops" in o.name for o in hads_objs)
    sketch_objs = []
    for source in (sketch / "AdaptiveInference.ino.cpp", stub / "arduino_stub.cpp"):
        obj = tmp_path / (source.name + ".o")
        _, cmd, proc = _compile(source, obj,
                                [str(i) for i in [sketch] + core_inc + libs_inc])
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"
        sketch_objs.append(obj)

    # Link: the Arduino builder archives each library and links the sketch
    # against the archives (so unused library objects drop out).
    archives = []
    for name, objs in (("HADS", hads_objs), ("Chirale", chirale_objs)):
        archive = tmp_path / f"lib{name}.a"
        subprocess.run(["arm-none-eabi-ar", "rcs", str(archive), *map(str, objs)],
                       check=True)
        archives.append(archive)
    image = tmp_path / "AdaptiveInference.elf"
    cmd = [CXX, *CPU, "--specs=nosys.specs", "-Wl,--gc-sections",
           "-Wl,--no-undefined", *map(str, sketch_objs),
           "-Wl,--start-group", *map(str, archives), "-lm", "-Wl,--end-group",
           "-o", str(image)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-6000:]}"
    symbols = subprocess.run(["arm-none-eabi-nm", "-C", str(image)],
                             capture_output=True, text=True, check=True).stdout
    for needed in ("hads::Register_HADS_FULLY_CONNECTED()",
                   "hads::Register_HADS_CONV_2D()",
                   "hads::Register_HADS_DEPTHWISE_CONV_2D()",
                   "tflite::MicroInterpreter::Invoke()",
                   "hads::NestedModel::invoke()"):
        assert needed in symbols, needed
    size = subprocess.run(["arm-none-eabi-size", str(image)], capture_output=True,
                          text=True, check=True).stdout
    print(f"\n{' '.join(cmd)}\n{size}")
