"""Every `#include` of the Arduino library resolves as the Arduino builder
compiles it: with only the library's own `src/` and the `src/` of its
dependency Chirale_TensorFLowLite 2.0.0 on the include path.

The dependency is not in CI, so its layout is recorded: the headers of it
that the library uses, in tests/data/chirale_tflite_2.0.0_headers.txt
(checked against a real checkout by tests/test_arduino_chirale_build.py).
Each source of the generated library (`hads_keras.export.arduino.
write_library`, what the zip installs) is run through the real
preprocessor (`-E`, so `__has_include` and comments count as the compiler
sees them) against empty stand-ins for those headers; every file it pulls
in must be the library's, a recorded one, or the toolchain's. This caught
`#include "flatbuffers/flexbuffers.h"`, a path that exists only in the
upstream TFLite Micro layout.
"""

import pathlib
import shutil
import subprocess

import pytest

from hads_keras.export import arduino

HEADERS = pathlib.Path(__file__).parent / "data" / "chirale_tflite_2.0.0_headers.txt"
# (compiler, flags): the host compiler always; the Cortex-M4F one when
# installed, with the Arduino mbed core's language (gnu++14).
# The builder defines ARDUINO (its version) and the core's architecture.
ARDUINO_DEFINES = ["-DARDUINO=10819", "-DARDUINO_ARCH_MBED"]
COMPILERS = [("g++", ["-std=gnu++14", *ARDUINO_DEFINES]),
             ("arm-none-eabi-g++", ["-std=gnu++14", *ARDUINO_DEFINES,
                                    "-mcpu=cortex-m4", "-mthumb",
                                    "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"])]


def recorded_headers():
    return [line.strip() for line in HEADERS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("arduino_layout")
    library = arduino.write_library(root / "libraries")
    dependency = root / "libraries" / "Chirale_TensorFLowLite" / "src"
    for name in recorded_headers():
        (dependency / name).parent.mkdir(parents=True, exist_ok=True)
        (dependency / name).write_text(f"// empty stand-in for {name}\n")
    return library / "src", dependency


def _dependencies(compiler, flags, source, include_dirs):
    cmd = [compiler, *flags, "-E", "-M", *[f"-I{d}" for d in include_dirs],
           "-x", "c++", str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{source.name}: {' '.join(cmd)}\n{proc.stderr}"
    text = proc.stdout.replace("\\\n", " ")
    return [pathlib.Path(p) for p in text.split(":", 1)[1].split()]


@pytest.mark.parametrize("compiler,flags", COMPILERS, ids=[c for c, _ in COMPILERS])
def test_every_include_resolves_under_the_arduino_layout(layout, compiler, flags):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    src, dependency = layout
    sources = sorted(p for p in src.rglob("*") if p.suffix in (".h", ".cpp", ".c"))
    assert any(p.name == "hads_ops.cpp" for p in sources)
    used = set()
    for source in sources:
        for dep in _dependencies(compiler, flags, source, [src, dependency]):
            dep = dep.resolve()
            if dependency.resolve() in dep.parents:
                used.add(dep.relative_to(dependency.resolve()).as_posix())
            else:
                # Anything else must be the library's own or the toolchain's.
                assert (src.resolve() in dep.parents or
                        not str(dep).startswith(str(src.parents[2].resolve()))), dep
    # The glue found TFLite Micro's flatbuffers where Chirale keeps them.
    assert "third_party/flatbuffers/include/flatbuffers/flexbuffers.h" in used
    # Every recorded header is still needed (the list stays exact).
    assert used == set(recorded_headers())


def test_an_include_outside_the_layout_is_caught(layout, tmp_path):
    src, dependency = layout
    bad = tmp_path / "bad.cpp"
    bad.write_text('#include "flatbuffers/flexbuffers.h"\n')
    proc = subprocess.run(["g++", "-E", "-M", f"-I{src}", f"-I{dependency}",
                           str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "flatbuffers/flexbuffers.h" in proc.stderr
