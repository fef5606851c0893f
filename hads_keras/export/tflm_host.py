"""TFLite Micro arenas of nested models, measured in the real runtime.

The PyPI `tflite-micro` runtime (used by `checks.arena_size` for models of
builtin operators) cannot load the HADS operators: a custom operator must be
compiled against the headers of the exact TFLite Micro commit it runs in,
and the wheel ships none. So the arena of a nested model is measured by a
small host program built here from `tflm_ops/` and a tflite-micro source
tree whose library was built by its Makefile (named by ``HADS_TFLM_DIR``;
see tests/native/README.md). It runs `AllocateTensors` in a
`tflite::RecordingMicroInterpreter` and reports the recording allocator's
figures. Without a tree, `arena_usage()` returns None.

Build outputs are cached under ``HADS_TFLM_BUILD_DIR`` (default: the system
temp folder), keyed by the tree and the sources.
"""

import glob
import hashlib
import json
import os
import pathlib
import subprocess
import tempfile

TFLM_DIR_ENV = "HADS_TFLM_DIR"
BUILD_DIR_ENV = "HADS_TFLM_BUILD_DIR"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TFLM_OPS_DIR = REPO_ROOT / "tflm_ops"
MAKE_COMMAND = "make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite"
# As the Makefile builds the library (TF_LITE_STATIC_MEMORY changes
# TfLiteTensor: code linked against it must use the same).
DEFINES = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON"]

# Builtin operators a HADS model can contain: every MicroMutableOpResolver
# method the Arduino sketch writer knows (hads_keras.export.arduino).
_PROGRAM = r"""
#include <cstdio>
#include <vector>

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tflm_ops/hads_ops.h"

int main(int argc, char** argv) {
  if (argc != 2) { std::fprintf(stderr, "usage: arena MODEL\n"); return 2; }
  std::FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr) { std::fprintf(stderr, "cannot open %s\n", argv[1]); return 1; }
  std::vector<unsigned char> data;
  unsigned char chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    data.insert(data.end(), chunk, chunk + n);
  }
  std::fclose(f);
  std::vector<unsigned char> model_bytes(data.size() + 16);
  unsigned char* aligned = model_bytes.data() +
      (16 - reinterpret_cast<uintptr_t>(model_bytes.data()) % 16) % 16;
  std::copy(data.begin(), data.end(), aligned);
  flatbuffers::Verifier verifier(aligned, data.size());
  if (!tflite::VerifyModelBuffer(verifier)) {
    std::fprintf(stderr, "not a valid .tflite\n");
    return 1;
  }
  static tflite::MicroMutableOpResolver<@NUM_OPS@> resolver;
@ADD_OPS@
  if (hads::AddHadsOps(resolver) != kTfLiteOk) return 1;
  static std::vector<uint8_t> arena(4 << 20);
  tflite::RecordingMicroInterpreter interpreter(
      tflite::GetModel(aligned), resolver, arena.data(), arena.size());
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::fprintf(stderr, "AllocateTensors failed\n");
    return 1;
  }
  const tflite::RecordingMicroAllocator& a = interpreter.GetMicroAllocator();
  using T = tflite::RecordedAllocationType;
  std::printf("{\"arena_used_bytes\": %zu, \"persistent_bytes\": %zu, "
              "\"nonpersistent_bytes\": %zu, \"op_data_bytes\": %zu, "
              "\"persistent_buffer_bytes\": %zu}\n",
              interpreter.arena_used_bytes(),
              a.GetSimpleMemoryAllocator()->GetPersistentUsedBytes(),
              a.GetSimpleMemoryAllocator()->GetNonPersistentUsedBytes(),
              a.GetRecordedAllocation(T::kOpData).used_bytes,
              a.GetRecordedAllocation(T::kPersistentBufferData).used_bytes);
  return 0;
}
"""


def tflm_tree(root=None):
    """(tree, library) of a built tflite-micro tree, or None when not given.

    Raises:
        ValueError: when the named folder is not a built tree.
    """
    root = root or os.environ.get(TFLM_DIR_ENV)
    if not root:
        return None
    tree = pathlib.Path(root)
    if not (tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise ValueError(f"{TFLM_DIR_ENV}={root} is not a tflite-micro tree")
    libs = sorted(glob.glob(str(tree / "gen" / "*" / "lib" /
                                "libtensorflow-microlite.a")))
    if len(libs) != 1:
        raise ValueError(f"{TFLM_DIR_ENV}={root}: need exactly one "
                         f"gen/*/lib/libtensorflow-microlite.a, found {libs}; "
                         f"build it with `{MAKE_COMMAND}`")
    return tree, pathlib.Path(libs[0])


def include_dirs(tree, library):
    downloads = tree / "tensorflow" / "lite" / "micro" / "tools" / "make" / "downloads"
    return [REPO_ROOT, tree, downloads, downloads / "gemmlowp",
            downloads / "flatbuffers" / "include", downloads / "kissfft",
            downloads / "ruy", library.parent.parent / "genfiles"]


def operator_sources():
    """tflm_ops/ C++ sources of the operators (not the fuzz harness)."""
    return sorted(p for p in TFLM_OPS_DIR.rglob("*.cc")
                  if "fuzz" not in p.relative_to(TFLM_OPS_DIR).parts)


def _program():
    from hads_keras.export.arduino import RESOLVER_METHODS
    methods = sorted(set(RESOLVER_METHODS.values()))
    adds = "\n".join(f"  if (resolver.{m}() != kTfLiteOk) return 1;" for m in methods)
    return (_PROGRAM.replace("@NUM_OPS@", str(len(methods) + 3))
            .replace("@ADD_OPS@", adds))


def build_arena_tool(tree, library):
    """Path of the arena program (built once per tree and source state)."""
    program = _program()
    key = hashlib.sha256(program.encode())
    key.update(str(library.stat().st_mtime_ns).encode() + str(tree).encode())
    for src in operator_sources() + sorted(TFLM_OPS_DIR.rglob("*.h")):
        key.update(src.read_bytes())
    out = pathlib.Path(os.environ.get(BUILD_DIR_ENV) or tempfile.gettempdir())
    out = out / f"hads_arena_tool-{key.hexdigest()[:16]}"
    binary = out / "arena"
    if binary.is_file():
        return binary
    out.mkdir(parents=True, exist_ok=True)
    (out / "arena.cc").write_text(program)
    cmd = (["g++", "-std=c++17", "-O1", "-fno-rtti", "-fno-exceptions", *DEFINES] +
           [f"-I{p}" for p in include_dirs(tree, library)] +
           [str(out / "arena.cc")] + [str(s) for s in operator_sources()] +
           [str(library), "-o", str(binary)])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("building the TFLite Micro arena tool failed:\n"
                           + " ".join(cmd) + "\n" + proc.stderr[-4000:])
    return binary


def arena_usage(tflite_bytes, tree=None):
    """Recording-allocator figures of `AllocateTensors` for a model.

    Returns a dict (`arena_used_bytes`, `persistent_bytes`,
    `nonpersistent_bytes`, `op_data_bytes`, `persistent_buffer_bytes`), or
    None when no TFLite Micro tree is given (argument or HADS_TFLM_DIR).
    """
    found = tflm_tree(tree)
    if found is None:
        return None
    binary = build_arena_tool(*found)
    with tempfile.TemporaryDirectory() as work:
        path = pathlib.Path(work) / "model.tflite"
        path.write_bytes(bytes(tflite_bytes))
        proc = subprocess.run([str(binary), str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"TFLite Micro could not allocate the model:\n"
                           f"{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
