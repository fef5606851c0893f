"""The Arduino library `HADS` (arduino/): metadata, layout, zip, sources.

Checks `library.properties` against the Arduino library specification, 1.5
format (https://arduino.github.io/arduino-cli/latest/library-specification/),
the folder layout the IDE and the Library Manager expect, the zip that
"Sketch > Include Library > Add .ZIP Library" installs, that the operator
sources are generated from tflm_ops/ (no committed copies), and that every
`#include` of the library resolves under the Arduino builder's include path
(the library's own src/ and the src/ of its dependency
Chirale_TensorFLowLite 2.0.0, whose headers the library uses are recorded in
tests/data/chirale_tflite_2.0.0_headers.txt).
"""

import pathlib
import re
import zipfile

import pytest

from hads_keras.export import arduino

LIB = arduino.LIBRARY_DIR

# Fields the specification lists as required for the Library Manager.
REQUIRED = ("name", "version", "author", "maintainer", "sentence",
            "paragraph", "category", "url")
CATEGORIES = ("Display", "Communication", "Signal Input/Output", "Sensors",
              "Device Control", "Timing", "Data Storage", "Data Processing",
              "Other")
# Library names: letters, digits, space, '_', '.', '-'; no leading digit,
# no leading/trailing space (spec "name" field).
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9 _.\-]*(?<! )$")
# Semantic version, as the Library Manager indexer requires (it also accepts
# "1.2" / "1", which it normalizes).
SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                       r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# One dependency: a library name, optionally a version constraint.
DEPEND_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9 _.\-]*?)\s*"
                       r"(\((?P<constraint>[<>=!^~ ]*[0-9][^()]*)\))?$")
ARCH_RE = re.compile(r"^(\*|[a-z0-9_]+)$")


def parse_properties(text):
    """key=value lines (the format of library.properties); errors name the line."""
    props = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"library.properties line {n}: no '=' in {line!r}")
        key, value = line.split("=", 1)
        if key in props:
            raise ValueError(f"library.properties line {n}: duplicate {key!r}")
        props[key.strip()] = value.strip()
    return props


def check_properties(props, library_dir):
    """Returns a list of problems (empty when the file follows the spec)."""
    problems = [f"missing field {f!r}" for f in REQUIRED if not props.get(f)]
    name = props.get("name", "")
    if name and (not NAME_RE.match(name) or len(name) > 63):
        problems.append(f"name {name!r}: use letters, digits, space, _ . -, "
                        "no leading digit, at most 63 characters")
    if props.get("version") and not SEMVER_RE.match(props["version"]):
        problems.append(f"version {props['version']!r} is not semver (x.y.z)")
    if props.get("category") and props["category"] not in CATEGORIES:
        problems.append(f"category {props['category']!r} not one of {CATEGORIES}")
    url = props.get("url", "")
    if url and not re.match(r"^https?://\S+$", url):
        problems.append(f"url {url!r} is not an http(s) URL")
    for arch in props.get("architectures", "*").split(","):
        if not ARCH_RE.match(arch.strip()):
            problems.append(f"architecture {arch!r} is malformed")
    for dep in filter(None, (d.strip() for d in props.get("depends", "").split(","))):
        if not DEPEND_RE.match(dep):
            problems.append(f"depends entry {dep!r} is malformed")
    for inc in filter(None, (i.strip() for i in props.get("includes", "").split(","))):
        if not (library_dir / "src" / inc).is_file():
            problems.append(f"includes={inc} but src/{inc} does not exist")
    if props.get("sentence", "") and len(props["sentence"]) > 200:
        problems.append("sentence is longer than one short sentence")
    return problems


@pytest.fixture(scope="module")
def props():
    return parse_properties((LIB / "library.properties").read_text("utf-8"))


def test_library_properties_follow_the_specification(props):
    assert check_properties(props, LIB) == []
    assert props["name"] == "HADS"
    assert props["category"] == "Data Processing"
    assert props["includes"] == "HADS.h"


def test_depends_on_the_chirale_tensorflow_lite_micro_library(props):
    # The Library Manager name is spelled "TensorFLowLite" (capital L twice).
    deps = [DEPEND_RE.match(d.strip()).group("name")
            for d in props["depends"].split(",")]
    assert deps == ["Chirale_TensorFLowLite"]
    # Only boards that library supports (its library.properties, 2.0.0).
    assert set(props["architectures"].split(",")) <= {
        "mbed_nano", "esp32", "mbed_nicla", "mbed_portenta", "mbed_giga"}
    assert "mbed_nano" in props["architectures"].split(",")  # Nano 33 BLE


@pytest.mark.parametrize("text, bad", [
    ("name=HADS\n", "missing field 'version'"),
    ("name=1HADS\nversion=1.0.0\n", "name '1HADS'"),
    ("name=HADS\nversion=v1\n", "version 'v1'"),
    ("name=HADS\ncategory=AI\n", "category 'AI'"),
    ("name=HADS\ndepends=Foo (1.0\n", "depends entry"),
    ("name=HADS\nincludes=Missing.h\n", "src/Missing.h"),
    ("name=HADS\nurl=github.com/x\n", "url"),
])
def test_the_properties_check_catches_mistakes(text, bad):
    problems = check_properties(parse_properties(text), LIB)
    assert any(bad in p for p in problems), problems


def test_folder_layout():
    # 1.5 format: sources under src/ (compiled recursively), examples/<X>/<X>.ino.
    assert (LIB / "src" / "HADS.h").is_file()
    assert (LIB / "keywords.txt").is_file()
    assert (LIB / "README.md").is_file()
    assert not list(LIB.glob("*.cpp")) and not list(LIB.glob("*.h")), \
        "1.5 libraries keep sources in src/, not the root"
    assert not (LIB / "utility").exists()  # 1.0-format folder, not mixed in
    for example in arduino.EXAMPLES:
        folder = LIB / "examples" / example
        assert (folder / f"{example}.ino").is_file()
        assert (folder / arduino.MODEL_HEADER).is_file(), \
            f"{example} needs the model header it includes"
    # The Arduino builder compiles .c/.cpp/.S only: no .cc may hide in src/.
    assert not list((LIB / "src").rglob("*.cc"))


def test_keywords_txt_format():
    for n, line in enumerate((LIB / "keywords.txt").read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) >= 2, f"keywords.txt line {n}: use a TAB separator"
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", fields[0]), line
        assert fields[1] in ("KEYWORD1", "KEYWORD2", "KEYWORD3", "LITERAL1",
                             "LITERAL2"), line


def _tracked_files(folder):
    """Files of `folder` in git (the committed library), or None outside git."""
    import subprocess
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=folder,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return [folder / n for n in proc.stdout.split("\0") if n]


def test_no_committed_copy_of_tflm_ops():
    # One copy of every source: the library's operator sources are generated
    # (git-ignored src/tflm_ops/), nothing committed under arduino/ repeats
    # a file of tflm_ops/.
    tracked = _tracked_files(LIB)
    if tracked is None:
        pytest.skip("not a git checkout")
    originals = {p.read_bytes().strip() for p in arduino._portable_sources(
        arduino.TFLM_OPS_DIR)}
    for path in tracked:
        rel = path.relative_to(LIB)
        assert rel.parts[:2] != ("src", arduino.GENERATED_DIR), rel
        text = path.read_bytes()
        assert arduino.GENERATED_MARK.encode() not in text, rel
        assert text.strip() not in originals, f"{rel} repeats a tflm_ops/ file"


def test_generation_takes_every_source_of_tflm_ops():
    generated = arduino.generated_sources()
    expected = {"tflm_ops/hads_kernels.h", "tflm_ops/hads_kernels.cpp",
                "tflm_ops/hads_ops.h", "tflm_ops/hads_ops.cpp",
                "tflm_ops/hads_flexbuffers.h"}
    assert expected <= set(generated)
    assert not [n for n in generated if "fuzz" in n or n.endswith(".cc")]
    for name, text in generated.items():
        assert text.startswith(arduino.GENERATED_MARK), name


def test_sync_detects_and_repairs_a_stale_copy(tmp_path):
    ops = tmp_path / "tflm_ops"
    (ops / "cortex_m").mkdir(parents=True)
    (ops / "fuzz").mkdir()
    (ops / "k.h").write_text("int k();\n")
    (ops / "k.cc").write_text('#include "tflm_ops/k.h"\nint k() { return 1; }\n')
    (ops / "cortex_m" / "k_dsp.cc").write_text('#include "../k.h"\n')
    (ops / "k_test.cc").write_text("// not shipped\n")
    (ops / "fuzz" / "f.cc").write_text("// not shipped\n")
    (ops / "BUILD").write_text("# not shipped\n")
    lib = tmp_path / "arduino"
    (lib / "src" / "tflm_ops").mkdir(parents=True)
    (lib / "src" / "HADS.h").write_text("// hand-written, not touched\n")
    (lib / "src" / "tflm_ops" / "old.cpp").write_text(arduino.GENERATED_MARK + " from x\n")
    assert arduino.stale_sources(lib, ops) == [
        "tflm_ops/cortex_m/k_dsp.cpp", "tflm_ops/k.cpp", "tflm_ops/k.h",
        "tflm_ops/old.cpp"]
    with pytest.raises(RuntimeError, match="python -m hads_keras.export.arduino sync"):
        arduino.sync_sources(lib, ops, check=True)
    arduino.sync_sources(lib, ops)
    assert arduino.stale_sources(lib, ops) == []
    assert sorted(p.relative_to(lib / "src").as_posix()
                  for p in (lib / "src").rglob("*") if p.is_file()) == [
        "HADS.h", "tflm_ops/cortex_m/k_dsp.cpp", "tflm_ops/k.cpp", "tflm_ops/k.h"]
    # Includes are left as they are: src/ is on the include path.
    assert '#include "tflm_ops/k.h"' in (lib / "src" / "tflm_ops" / "k.cpp").read_text()
    (ops / "k.cc").write_text("int k() { return 2; }\n")  # original changes
    assert arduino.stale_sources(lib, ops) == ["tflm_ops/k.cpp"]


def test_library_zip_has_the_layout_the_ide_installs(tmp_path):
    path = arduino.library_zip(tmp_path / "HADS.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
        tops = {n.split("/", 1)[0] for n in names}
        assert tops == {"HADS"}, "one top folder, named like the library"
        assert "HADS/library.properties" in names
        assert zf.getinfo("HADS/").is_dir() and zf.getinfo("HADS/src/").is_dir()
        assert "HADS/src/HADS.h" in names
        for example in arduino.EXAMPLES:
            assert f"HADS/examples/{example}/{example}.ino" in names
        generated = arduino.generated_sources()
        for name, text in generated.items():
            assert zf.read(f"HADS/src/{name}").decode() == text
        # Nothing but the generated files under src/tflm_ops (a stale synced
        # copy is not packed), and the examples' shared model is there.
        assert {n[len("HADS/src/"):] for n in names if n.startswith(
            "HADS/src/tflm_ops/") and not n.endswith("/")} == set(generated)
        assert f"HADS/src/{arduino.EXAMPLE_MODEL_HEADER}" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")
                    or "/." in n]
        inside = parse_properties(zf.read("HADS/library.properties").decode())
    assert check_properties(inside, LIB) == []


def test_library_zip_names_the_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="library.properties"):
        arduino.library_zip(tmp_path / "x.zip", library_dir=tmp_path)
