"""Cross-compiles the board-independent code of the Arduino library for a
Cortex-M4F (the Arduino Nano 33 BLE's nRF52840), warnings as errors.

"Board-independent" is every `.cpp` of the library as installed (its src/,
operator sources generated from tflm_ops/ included) that includes (directly
or through the library's own headers) neither TFLite Micro nor the Arduino
core: the portable kernels and the subnetwork selector. The TFLite Micro
glue needs the TFLite Micro headers, which CI does not have
(tests/test_arduino_chirale_build.py builds everything against a real
Chirale_TensorFLowLite when one is given).

Needs Debian's `gcc-arm-none-eabi`, `libnewlib-arm-none-eabi` and
`libstdc++-arm-none-eabi-newlib`; skips when `arm-none-eabi-g++` is absent.
"""

import pathlib
import re
import shutil
import subprocess

import pytest

from hads_keras.export import arduino

CXX = shutil.which("arm-none-eabi-g++")
SIZE = shutil.which("arm-none-eabi-size")
FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
         "-Os", "-Wall", "-Wextra", "-Werror",
         # What Arduino cores add for C++: no exceptions, no RTTI.
         "-fno-exceptions", "-fno-rtti"]
# The Arduino mbed core (Nano 33 BLE) builds C++ as gnu++14, the ESP32 core
# as gnu++17: the portable code must build with both.
STANDARDS = ("gnu++14", "gnu++17")

pytestmark = pytest.mark.skipif(
    CXX is None, reason="arm-none-eabi-g++ not installed (apt-get install "
    "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)")

_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.MULTILINE)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """The src/ folder of the library as the zip installs it."""
    return arduino.write_library(tmp_path_factory.mktemp("libraries")) / "src"


def _needs_board_or_tflm(path, src, seen=None):
    """True if `path` includes TFLite Micro or Arduino headers, transitively."""
    seen = set() if seen is None else seen
    if path in seen:
        return False
    seen.add(path)
    for inc in _INCLUDE.findall(path.read_text()):
        if inc.startswith(("tensorflow/", "Arduino", "Chirale")):
            return True
        local = src / inc if (src / inc).is_file() else path.parent / inc
        if local.is_file() and _needs_board_or_tflm(local, src, seen):
            return True
    return False


def portable_sources(src):
    return sorted(p for p in src.rglob("*.cpp") if not _needs_board_or_tflm(p, src))


def test_the_portable_sources_are_the_expected_ones(src):
    names = [p.name for p in portable_sources(src)]
    assert "hads_kernels.cpp" in names and "hads_subnetworks.cpp" in names
    assert "HADS.cpp" not in names  # needs TFLite Micro


@pytest.mark.parametrize("std", STANDARDS)
def test_cross_compiles_for_cortex_m4_without_warnings(std, src, tmp_path):
    sizes = {}
    for source in portable_sources(src):
        obj = tmp_path / (source.stem + ".o")
        proc = subprocess.run([CXX, *FLAGS, f"-std={std}", f"-I{src}", "-c",
                               str(source), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{source.name} ({std}):\n{proc.stderr}"
        if SIZE:
            out = subprocess.run([SIZE, str(obj)], capture_output=True,
                                 text=True, check=True).stdout
            text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
            sizes[source.name] = (text, data, bss)
            # Flash only: no initialized or zeroed RAM in the portable code.
            assert data == 0 and bss == 0, (source.name, out)
    print(f"arm-none-eabi-size ({std}, -Os), text/data/bss bytes: {sizes}")
    if SIZE:
        # Code size of the kernels stays small next to the 1 MB flash.
        assert sum(t for t, _, _ in sizes.values()) < 16 * 1024, sizes


def test_a_broken_source_fails_the_build(tmp_path):
    # The check can fail: an unused variable is an error with these flags.
    bad = tmp_path / "bad.cpp"
    bad.write_text("int f(int x) { int unused = 1; return x; }\n")
    proc = subprocess.run([CXX, *FLAGS, "-std=gnu++14", "-c", str(bad), "-o",
                           str(tmp_path / "bad.o")], capture_output=True, text=True)
    assert proc.returncode != 0 and "unused" in proc.stderr
