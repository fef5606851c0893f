"""Start-up cost of the model integrity check on a Cortex-M4 (QEMU).

`hads::VerifyModelChecksum` (tflm_ops/hads_integrity.cc; the Arduino
library's `hads::verifyModel` / `NestedModel::beginVerified`) verifies the
flatbuffer, finds the `hads_crc32` metadata and recomputes the CRC-32 of
the whole model. This runs it on the library's bundled example model
(arduino/src/hads_example_model.h) on QEMU's mps2-an386 (Cortex-M4F,
`-icount shift=0`, instructions counted by the timer as in
benchmarks/cortex_m4.py), checks that the model passes and that one
flipped weight byte is caught, and prints instructions in total and per
byte. Needs the TFLite schema and flatbuffers headers (header-only): a
tflite-micro tree built as in tests/native/README.md (HADS_TFLM_DIR) or a
Chirale_TensorFlowLite checkout (HADS_CHIRALE_DIR).

    HADS_CHIRALE_DIR=/path/to/Chirale_TensorFlowLite \\
        python benchmarks/model_crc_cortex_m4.py [--out result.json]
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
HARNESS = ROOT / "benchmarks" / "cortex_m4"
CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
INSTRUCTIONS_PER_TICK = 40  # see benchmarks/cortex_m4/timer.h

MAIN = r"""
#include <cstdint>
extern "C" {
#include "semihost.h"
#include "timer.h"
}
#include "tflm_ops/hads_integrity.h"
#include "model_bytes.h"

int main() {
  timer_start();
  uint32_t t0 = timer_now();
  const hads::IntegrityStatus ok = hads::VerifyModelChecksum(g_model, g_model_len);
  const uint32_t verify_ticks = t0 - timer_now();
  t0 = timer_now();
  volatile uint32_t crc = hads::Crc32(g_model, g_model_len);
  (void)crc;
  const uint32_t crc_ticks = t0 - timer_now();
  g_model[g_flip_at] ^= 0x10;  // a weight byte
  const hads::IntegrityStatus bad = hads::VerifyModelChecksum(g_model, g_model_len);
  semihost_write0("RESULT bytes=");
  semihost_write_uint(g_model_len);
  semihost_write0(" verify_ticks=");
  semihost_write_uint(verify_ticks);
  semihost_write0(" crc_ticks=");
  semihost_write_uint(crc_ticks);
  semihost_write0(" ok=");
  semihost_write_int(static_cast<int>(ok));
  semihost_write0(" flipped=");
  semihost_write_int(static_cast<int>(bad));
  semihost_write0("\nDONE\n");
  semihost_exit(0);
}
"""


def include_dirs():
    tree = os.environ.get("HADS_TFLM_DIR")
    if tree:
        dl = pathlib.Path(tree) / "tensorflow/lite/micro/tools/make/downloads"
        return [pathlib.Path(tree), dl / "flatbuffers" / "include"]
    chirale = os.environ.get("HADS_CHIRALE_DIR")
    if chirale:
        return [pathlib.Path(chirale) / "src"]
    sys.exit("set HADS_TFLM_DIR or HADS_CHIRALE_DIR (TFLite schema headers)")


def example_model():
    header = (ROOT / "arduino" / "src" / "hads_example_model.h").read_text()
    body = re.search(r"g_hads_model\[\] = \{(.*?)\};", header, re.S).group(1)
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))


def weight_offset(model):
    """Offset of a byte inside the largest constant buffer (weights)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    m = schema.Model.GetRootAs(model, 0)
    base = np.frombuffer(model, np.uint8).__array_interface__["data"][0]
    biggest = max((m.Buffers(i) for i in range(m.BuffersLength())),
                  key=lambda b: b.DataLength())
    data = biggest.DataAsNumpy()
    return data.__array_interface__["data"][0] - base + len(data) // 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON file for the figures")
    parser.add_argument("--opt", default="-Os")
    args = parser.parse_args()
    model = example_model()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        (work / "model_bytes.h").write_text(
            "#include <cstdint>\n#include <cstddef>\n"
            "alignas(16) uint8_t g_model[] = {"
            + ",".join(str(b) for b in model) + "};\n"
            f"const size_t g_model_len = {len(model)};\n"
            f"const size_t g_flip_at = {weight_offset(model)};\n")
        (work / "main.cc").write_text(MAIN)
        common = CPU + [args.opt, "-ffunction-sections", "-fdata-sections",
                        f"-I{work}", f"-I{HARNESS}", f"-I{ROOT}",
                        *[f"-I{d}" for d in include_dirs()]]
        cxx = ["-std=gnu++14", "-fno-exceptions", "-fno-rtti",
               "-fno-threadsafe-statics"]
        objects = []
        for src, extra in ((HARNESS / "startup.c", []), (HARNESS / "semihost.c", []),
                           (work / "main.cc", cxx),
                           (ROOT / "tflm_ops" / "hads_integrity.cc", cxx)):
            obj = work / (src.stem + ".o")
            compiler = "arm-none-eabi-gcc" if src.suffix == ".c" else "arm-none-eabi-g++"
            subprocess.run([compiler, *common, *extra, "-c", str(src), "-o",
                            str(obj)], check=True)
            objects.append(str(obj))
        elf = work / "crc.elf"
        subprocess.run(["arm-none-eabi-g++", *CPU, "-T", str(HARNESS / "mps2_an386.ld"),
                        "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                        "-Wl,--gc-sections",
                        *objects, "-o", str(elf)], check=True)
        proc = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-semihosting",
                               "-icount", "shift=0,sleep=off", "-nographic",
                               "-monitor", "none", "-kernel", str(elf)],
                              capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    line = next(l for l in output.splitlines() if l.startswith("RESULT "))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    n = int(fields["bytes"])
    result = {
        "model": "arduino/src/hads_example_model.h", "bytes": n, "opt": args.opt,
        "platform": "qemu-system-arm -M mps2-an386 -icount shift=0 (Cortex-M4F)",
        "verify_instructions": int(fields["verify_ticks"]) * INSTRUCTIONS_PER_TICK,
        "crc_instructions": int(fields["crc_ticks"]) * INSTRUCTIONS_PER_TICK,
        "unmodified_passes": fields["ok"] == "0",
        "flipped_weight_byte_detected": fields["flipped"] == "1",
    }
    result["verify_instructions_per_byte"] = result["verify_instructions"] / n
    print(json.dumps(result, indent=2))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["unmodified_passes"] and result["flipped_weight_byte_detected"] else 1


if __name__ == "__main__":
    sys.exit(main())
