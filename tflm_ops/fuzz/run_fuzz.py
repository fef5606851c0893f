"""Builds tflm_ops/fuzz/options_fuzz.cc with ASan + UBSan against a TFLite
Micro tree and runs it for a bounded time (a manual check, not in CI).

    HADS_TFLM_DIR=/path/to/tflite-micro python tflm_ops/fuzz/run_fuzz.py 60

The tree's library must be built by its Makefile (see
tests/native/README.md). Exit code 0: no crash, no sanitizer report.
"""

import glob
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]


def main(argv):
    seconds = argv[1] if len(argv) > 1 else "60"
    seed = argv[2] if len(argv) > 2 else "1"
    tree = os.environ.get("HADS_TFLM_DIR")
    if not tree:
        raise SystemExit("set HADS_TFLM_DIR to a TFLite Micro tree with its "
                         "library built (tests/native/README.md)")
    tree = pathlib.Path(tree)
    libs = glob.glob(str(tree / "gen" / "*" / "lib" /
                         "libtensorflow-microlite.a"))
    if len(libs) != 1:
        raise SystemExit(f"expected one built library under {tree}/gen, "
                         f"found {libs}")
    downloads = tree / "tensorflow/lite/micro/tools/make/downloads"
    with tempfile.TemporaryDirectory() as work:
        binary = pathlib.Path(work) / "options_fuzz"
        cmd = (["g++", "-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer",
                "-fno-rtti", "-fno-exceptions",
                "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON",
                f"-I{REPO}", f"-I{tree}", f"-I{downloads}",
                f"-I{downloads / 'gemmlowp'}",
                f"-I{downloads / 'flatbuffers' / 'include'}",
                str(REPO / "tflm_ops/fuzz/options_fuzz.cc"),
                str(REPO / "tflm_ops/hads_ops.cc"),
                str(REPO / "tflm_ops/hads_kernels.cc"), libs[0],
                "-o", str(binary)])
        subprocess.run(cmd, check=True)
        result = subprocess.run([str(binary), seconds, seed])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
