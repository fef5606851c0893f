"""In the real TFLite Micro (a host build named by HADS_TFLM_DIR, see
README.md; skipped otherwise):

* the nested model's arena, with the HADS operators reading their tables in
  place from the model, is at most 1.05x the arena of the materialized full
  model (builtin operators), both measured with the recording allocator in
  the same build (`hads_keras.export.tflm_host.arena_usage`); tables in the
  narrow layout of older exports are copied into the arena instead and
  still run;
* the C++ integrity check (tflm_ops/hads_integrity.cc) accepts the
  unmodified model and catches a flipped byte in a weight buffer and in a
  HADS table, as the Python `verify_crc` does.
"""

import pathlib
import re
import subprocess

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import test_tflm_interpreter as tt
from hads_keras.export import arduino, flatbuffer, metadata, tflm_host
from hads_keras.export.materialize import materialize


def _tree():
    try:
        found = tflm_host.tflm_tree()
    except ValueError as e:
        pytest.skip(str(e))
    if found is None:
        pytest.skip(f"set {tflm_host.TFLM_DIR_ENV} to a tflite-micro tree built "
                    f"with `{tflm_host.MAKE_COMMAND}` (tests/native/README.md)")
    return found


def example_model():
    """The library's bundled DS-CNN (4 subnetworks), as the exporter wrote it."""
    header = (arduino.LIBRARY_DIR / "src" / arduino.EXAMPLE_MODEL_HEADER).read_text()
    body = re.search(r"g_hads_model\[\] = \{(.*?)\};", header, re.S).group(1)
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))


def narrow_tables(model_bytes):
    """The model with its HADS tables re-encoded with the smallest element
    widths (the layout of exports before the tables were read in place)."""
    model = flatbuffer.load(model_bytes, "test")
    for op in model.subgraphs[0].operators:
        if op.customOptions is None:
            continue
        entries = flatbuffer.read_flexbuffer_map(op.customOptions)
        op.customOptions = np.frombuffer(tt.narrow_flexbuffer_map(entries),
                                         np.uint8)
    metadata.remove_entry(model, metadata.CRC_KEY)
    return flatbuffer.save(model)


def test_nested_arena_is_within_5_percent_of_the_materialized_full_model():
    tree = pathlib.Path(str(_tree()[0]))
    nested = example_model()
    got = tflm_host.arena_usage(nested, tree)
    full = tflm_host.arena_usage(materialize(nested, 0), tree)
    ratio = got["arena_used_bytes"] / full["arena_used_bytes"]
    print(f"\nnested {got}\nmaterialized full {full}\nratio {ratio:.3f}")
    assert got["persistent_buffer_bytes"] <= full["persistent_buffer_bytes"], (
        "the HADS operators copied tables into the arena")
    assert ratio <= 1.05, (got, full)


def test_tables_in_the_narrow_layout_are_copied_and_still_allocate():
    tree = pathlib.Path(str(_tree()[0]))
    nested = example_model()
    in_place = tflm_host.arena_usage(nested, tree)
    copied = tflm_host.arena_usage(narrow_tables(nested), tree)
    # Every entry of a table stored narrower than int32 lands in the arena
    # as 4 bytes (widths and shifts fit in a byte; the multipliers never do,
    # so they stay in place).
    model = flatbuffer.load(nested, "test")
    entries = sum(len(v) for op in model.subgraphs[0].operators if op.customOptions
                  is not None for k, v in flatbuffer.read_flexbuffer_map(
                      op.customOptions).items()
                  if k in ("in_channels", "out_channels", "output_shift"))
    extra = copied["persistent_buffer_bytes"] - in_place["persistent_buffer_bytes"]
    assert extra >= 4 * entries


INTEGRITY_MAIN = r"""
#include <cstdio>
#include <vector>
#include "tflm_ops/hads_integrity.h"
int main(int argc, char** argv) {
  std::FILE* f = std::fopen(argv[1], "rb");
  std::vector<unsigned char> d;
  int c;
  while ((c = std::fgetc(f)) != EOF) d.push_back(static_cast<unsigned char>(c));
  std::fclose(f);
  std::printf("%d\n", static_cast<int>(hads::VerifyModelChecksum(d.data(), d.size())));
  return 0;
}
"""


@pytest.fixture(scope="module")
def integrity_tool(tmp_path_factory):
    tree, library = _tree()
    work = tmp_path_factory.mktemp("integrity")
    (work / "main.cc").write_text(INTEGRITY_MAIN)
    binary = work / "verify"
    cmd = (["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror",
            "-Wno-unused-parameter", *tflm_host.DEFINES] +
           [f"-I{p}" for p in tflm_host.include_dirs(tree, library)] +
           [str(work / "main.cc"), str(tflm_host.TFLM_OPS_DIR / "hads_integrity.cc"),
            "-o", str(binary)])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return binary


def _verify(tool, data, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(bytes(data))
    return int(subprocess.run([str(tool), str(path)], capture_output=True,
                              text=True, check=True).stdout)


def test_cpp_integrity_check(integrity_tool, tmp_path):
    nested = example_model()
    assert _verify(integrity_tool, nested, tmp_path) == 0  # kOk
    model = schema.Model.GetRootAs(nested, 0)
    base = np.frombuffer(nested, np.uint8).__array_interface__["data"][0]
    weights = max((model.Buffers(i) for i in range(model.BuffersLength())),
                  key=lambda b: b.DataLength()).DataAsNumpy()
    ops = model.Subgraphs(0)
    table = next(ops.Operators(i).CustomOptionsAsNumpy() for i in
                 range(ops.OperatorsLength()) if ops.Operators(i).CustomOptionsLength())
    for arr in (weights, table):
        at = arr.__array_interface__["data"][0] - base + arr.size // 2
        corrupt = bytearray(nested)
        corrupt[at] ^= 0x04
        assert _verify(integrity_tool, corrupt, tmp_path) == 1  # kMismatch
        assert not metadata.verify_crc(bytes(corrupt))
    assert _verify(integrity_tool, materialize(nested, 0), tmp_path) == 2  # none
    assert _verify(integrity_tool, nested[:100], tmp_path) == 3  # bad model
