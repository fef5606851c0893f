"""The Cortex-M DSP kernels (tflm_ops/hads_kernels_dsp.cc) are bit-exact with
the portable ones, on an emulated Cortex-M4.

Builds tests/native/cortex_m4_bit_exact.cc bare-metal with arm-none-eabi-g++
(-mcpu=cortex-m4, hard float, at -O2 and at -Os, as the Arduino cores
build) together with tflm_ops/ and benchmarks/cortex_m4/'s startup code,
semihosting and linker script, and runs it in
`qemu-system-arm -M mps2-an386 -semihosting`. The program compares
hads::FullyConnectedInt8 / Conv2DInt8 / DepthwiseConv2DInt8 (the DSP path
on this core) with hads::reference::* on every subnetwork of the DNN S,
CNN S and DS-CNN S layers and on random shapes (see the program's header).

Skips when the cross compiler or QEMU is absent (Debian: gcc-arm-none-eabi
libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm).
"""

import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
HARNESS = REPO / "benchmarks" / "cortex_m4"
OPS = REPO / "tflm_ops"
PROGRAM = pathlib.Path(__file__).with_name("cortex_m4_bit_exact.cc")
CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs arm-none-eabi-g++ and qemu-system-arm (apt-get install "
    "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
    "qemu-system-arm)")


def build(out_dir, opt):
    common = CPU + [opt, "-Wall", "-Wextra", "-Werror", f"-I{HARNESS}",
                    f"-I{OPS}"]
    cxx = ["-std=gnu++14", "-fno-exceptions", "-fno-rtti"]
    objects = []
    for src in (HARNESS / "startup.c", HARNESS / "semihost.c", PROGRAM,
                OPS / "hads_kernels.cc", OPS / "hads_kernels_dsp.cc"):
        obj = out_dir / (src.stem + ".o")
        tool = "arm-none-eabi-gcc" if src.suffix == ".c" else "arm-none-eabi-g++"
        subprocess.run([tool, *common, *(cxx if src.suffix == ".cc" else []),
                        "-c", str(src), "-o", str(obj)], check=True,
                       capture_output=True, text=True)
        objects.append(str(obj))
    elf = out_dir / "check.elf"
    subprocess.run(["arm-none-eabi-g++", *CPU, "-T",
                    str(HARNESS / "mps2_an386.ld"), "-nostartfiles",
                    "--specs=nano.specs", "-Wl,--gc-sections", *objects,
                    "-o", str(elf)], check=True, capture_output=True, text=True)
    return elf


@pytest.fixture(scope="module", params=["-O2", "-Os"])
def qemu_output(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("m4_bit_exact" + request.param)
    try:
        elf = build(out, request.param)
    except subprocess.CalledProcessError as err:
        pytest.fail(f"cross build failed:\n{err.stderr}")
    proc = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-semihosting", "-nographic",
         "-monitor", "none", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=240)
    return proc.returncode, proc.stdout + proc.stderr


def test_optimized_kernels_match_the_portable_ones(qemu_output):
    returncode, output = qemu_output
    mismatches = [l for l in output.splitlines() if l.startswith("MISMATCH")]
    assert not mismatches, "\n".join(mismatches[:20])
    assert "DONE ok" in output and returncode == 0, output[-2000:]


def test_every_family_and_random_group_ran(qemu_output):
    _, output = qemu_output
    groups = {m.group(1): int(m.group(2))
              for m in re.finditer(r"GROUP name=(\w+) cases=(\d+)", output)}
    # 6 widths x (4 DNN + 4 DS-CNN + 5 CNN layers); the Arduino examples'
    # DS-CNN (6 layers x 4 subnetworks, zero point -128); 150 random of each.
    assert groups == {"families": 78, "digits": 24,
                      "random_fully_connected": 150,
                      "random_conv": 150, "random_depthwise": 150}, output[-2000:]
