"""The Arduino example LatencyTable: its bundled model header is what `hads
latency header` writes for DS-CNN S, it cross-compiles for a Cortex-M4F
(skips without arm-none-eabi-g++), and built for the host (with a
test-local Arduino.h: Serial to stdout, micros from the clock) it prints a
CSV that `hads latency import` reads back into a table."""

import io
import shutil
import subprocess

import pytest

from hads_keras import latency_probe, models
from hads_keras.export import arduino

EXAMPLE = arduino.LIBRARY_DIR / "examples" / "LatencyTable"
HEADER_OPTIONS = {"points": 9, "minimum": 4, "multiple_of": 4, "repeats": 5, "arduino": True}
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti"]

# What the sketch takes from the Arduino core.
ARDUINO_H = """#pragma once
#include <cstdint>
struct SerialPort {
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  void print(const char* text);
  void print(long value);
  void print(unsigned long value);
  void println(long value);
};
extern SerialPort Serial;
unsigned long micros();
void delay(unsigned long ms);
"""
HOST_CORE = """#include "Arduino.h"
#include <chrono>
#include <cstdio>
SerialPort Serial;
void SerialPort::print(const char* text) { std::fputs(text, stdout); }
void SerialPort::print(long value) { std::printf("%ld", value); }
void SerialPort::print(unsigned long value) { std::printf("%lu", value); }
void SerialPort::println(long value) { std::printf("%ld\\n", value); }
unsigned long micros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}
void delay(unsigned long) {}
void setup();
int main() { setup(); return 0; }
"""


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    """The library's src/ (as installed), the sketch as the IDE compiles it
    (.ino -> .cpp), and the test-local core header."""
    root = tmp_path_factory.mktemp("latency_example")
    src = arduino.write_library(root / "libraries") / "src"
    core = root / "core"
    core.mkdir()
    (core / "Arduino.h").write_text(ARDUINO_H)
    (core / "core.cpp").write_text(HOST_CORE)
    folder = root / "LatencyTable"
    shutil.copytree(EXAMPLE, folder)
    cpp = folder / "LatencyTable.ino.cpp"
    cpp.write_text((folder / "LatencyTable.ino").read_text())
    return {"src": src, "core": core, "folder": folder, "cpp": cpp}


def test_the_bundled_header_is_up_to_date():
    model = models.get_model("ds_cnn", "s")
    expected = latency_probe.header_text(model, **HEADER_OPTIONS)
    assert (EXAMPLE / "hads_probe_model.h").read_text() == expected, (
        "regenerate arduino/examples/LatencyTable/hads_probe_model.h with "
        "hads_keras.latency_probe.write_header(models.get_model('ds_cnn', 's'), "
        f"path, **{HEADER_OPTIONS})")


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None,
                    reason="arm-none-eabi-g++ not installed")
@pytest.mark.parametrize("std", ["gnu++14", "gnu++17"])
def test_the_example_cross_compiles_for_cortex_m4(sketch, std, tmp_path):
    for source in (sketch["cpp"], sketch["src"] / "tflm_ops" / "hads_latency_probe.cpp"):
        proc = subprocess.run(
            ["arm-none-eabi-g++", *CORTEX_M4, *WARNINGS, f"-std={std}",
             f"-I{sketch['src']}", f"-I{sketch['core']}", f"-I{sketch['folder']}",
             "-c", str(source), "-o", str(tmp_path / (source.stem + ".o"))],
            capture_output=True, text=True)
        assert proc.returncode == 0, f"{source.name}:\n{proc.stderr}"


@pytest.mark.skipif(shutil.which("g++") is None, reason="no host C++ compiler")
def test_on_the_host_it_prints_a_csv_that_reads_back_into_a_table(sketch, tmp_path):
    src = sketch["src"] / "tflm_ops"
    sources = [sketch["cpp"], sketch["core"] / "core.cpp", src / "hads_latency_probe.cpp",
               src / "hads_kernels.cpp", src / "hads_kernels_dsp.cpp"]
    binary = tmp_path / "latency_table"
    proc = subprocess.run(["g++", "-std=gnu++14", "-O1", *WARNINGS, f"-I{sketch['src']}",
                           f"-I{sketch['core']}", f"-I{sketch['folder']}",
                           *map(str, sources), "-o", str(binary)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    output = subprocess.run([str(binary)], capture_output=True, text=True, check=True,
                            timeout=300).stdout
    assert "timer=micros" in output and "layer,in_width,out_width,us" in output
    model = models.get_model("ds_cnn", "s")
    table = latency_probe.read_csv(io.StringIO(output), model, target="host-sketch")
    assert table.unit == "us"
    assert table.layers["ds1_pointwise"].axes[0].tolist() == [
        4, 12, 20, 28, 32, 40, 48, 56, 64]
    assert table.layers["ds1_pointwise"].values.shape == (9, 9)
    loaded = latency_probe.latency.LatencyTable.load(table.save(tmp_path / "t.json"))
    assert loaded.to_dict() == table.to_dict()
