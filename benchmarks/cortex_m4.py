"""Instructions of the nested HADS models on a Cortex-M4, against what users run.

Cross-compiles a bare-metal program (benchmarks/cortex_m4/bench_main.cc) with
the HADS kernels (tflm_ops/: on this core the DSP kernels of
hads_kernels_dsp.cc) and runs it on QEMU's mps2-an386 board (Cortex-M4F)
with `-icount shift=0`, where virtual time advances 1 ns per executed
instruction and the board's 25 MHz timer ticks once every 40 instructions.
For DNN S, CNN S and DS-CNN S (Hello Edge sizes, hads_keras/models.py; DNN S
on 49 x 10 = 490 features) at every subnetwork (widths for about
100/75/50/25 % of the MACs), at -O2 and at -Os (what the Arduino cores
build with), it reports per layer and per model:

  hads       the nested model on the HADS kernels (full-size weights and
             buffers, the per-operator table lookup, active prefixes);
  cmsis_nn   the standalone subnetwork (weights physically sliced) on ARM
             CMSIS-NN's s8 kernels, as TFLite Micro's cmsis_nn kernels call
             them: only when HADS_CMSIS_NN_DIR names a checkout of
             ARM-software/CMSIS-NN (its sources are compiled from there at
             benchmark time, never copied into this repository);
  reference  the standalone subnetwork on the portable kernels
             (hads::reference, what HADS runs on cores without DSP);

instructions, instructions per MAC and the ratios hads / cmsis_nn and
hads / reference. The program checks that all three give the same logits.
Also: instructions to switch subnetwork (the Arduino library's select(k)
and the per-operator lookup at the next Invoke) and code sizes.

Counts are deterministic (independent of host load) with a resolution of 40
instructions per layer. Instructions are not cycles (loads take 2 cycles on
a Cortex-M4); both implementations are counted the same way in one program.

Needs Debian's `gcc-arm-none-eabi`, `libnewlib-arm-none-eabi`,
`libstdc++-arm-none-eabi-newlib` and `qemu-system-arm`.

Usage: HADS_CMSIS_NN_DIR=/path/to/CMSIS-NN python benchmarks/cortex_m4.py
           [--out benchmarks/results/cortex_m4.json]
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import provenance  # noqa: E402

HARNESS = ROOT / "benchmarks" / "cortex_m4"
OPS = ROOT / "tflm_ops"
LIBRARY_SRC = ROOT / "arduino" / "src"
KERNEL_SOURCES = [OPS / "hads_kernels.cc", OPS / "hads_kernels_dsp.cc"]
SOURCES = ["benchmarks/cortex_m4.py", "benchmarks/cortex_m4", "tflm_ops/hads_kernels.h",
           "tflm_ops/hads_kernels.cc", "tflm_ops/hads_kernels_dsp.h",
           "tflm_ops/hads_kernels_dsp.cc", "arduino/src/hads_subnetworks.h",
           "arduino/src/hads_subnetworks.cpp"]
COMMAND = ("HADS_CMSIS_NN_DIR=/path/to/CMSIS-NN python benchmarks/cortex_m4.py")

CPU_FLAGS = [
    "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
]
OPT_LEVELS = ("-O2", "-Os")
INSTRUCTIONS_PER_TICK = 40  # 1 GHz virtual clock (icount 0) / 25 MHz timer.
MAC_TARGETS = (1.0, 0.75, 0.5, 0.25)
TARGET_RATIO = 1.10  # issue 18: nested HADS within 1.10x of CMSIS-NN

# The paper's figures on an Arduino Nano 33 BLE Sense (nRF52840, 64 MHz),
# fully connected network (DNN S), TFLite Micro.
PAPER = {
    "clock_hz": 64_000_000,
    "switch_us": 38.0,
    "dnn_inference_us": {"0.5": 4548.0, "0.25": 2131.0},
}

# Width groups of bench_main.cc (BENCH_WIDTHS rows) and their full widths.
GROUPS = {
    "dnn_s": {0: 144, 1: 144, 2: 144},
    "cnn_s": {3: 28, 4: 30, 5: 16, 6: 128},
    "ds_cnn_s": {7: 64},
}


# Layer arithmetic, mirrored from bench_main.cc; main() checks the program's
# MAC counts against it.
def dnn_macs(w):
    return 490 * w[0] + w[0] * w[1] + w[1] * w[2] + w[2] * 12


def cnn_macs(w):
    return (40 * 7 * 40 * 1 * w[3] + 16 * 4 * 40 * w[3] * w[4] +
            64 * w[4] * w[5] + w[5] * w[6] + w[6] * 12)


def ds_cnn_macs(w):
    c, positions = w[7], 25 * 5
    return positions * 40 * c + 4 * (positions * 9 * c + positions * c * c) + c * 12


MACS = {"dnn_s": dnn_macs, "cnn_s": cnn_macs, "ds_cnn_s": ds_cnn_macs}


def widths_for_targets(model, targets=MAC_TARGETS):
    """Per subnetwork, {group: width}: every group scaled by one factor,
    the factor whose MACs are closest to the target."""
    groups = GROUPS[model]
    full = MACS[model](groups)
    chosen = []
    for t in targets:
        best = None
        for step in range(1, 1001):
            f = step / 1000
            w = {g: max(1, round(f * n)) for g, n in groups.items()}
            err = abs(MACS[model](w) / full - t)
            if best is None or err < best[0] - 1e-12:
                best = (err, w)
        chosen.append(best[1])
    return chosen


def require_tools():
    missing = [t for t in ("arm-none-eabi-g++", "arm-none-eabi-gcc",
                           "arm-none-eabi-size", "qemu-system-arm")
               if shutil.which(t) is None]
    if missing:
        sys.exit("cortex_m4 benchmark: missing " + ", ".join(missing) +
                 ". Install: apt-get install gcc-arm-none-eabi "
                 "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
                 "qemu-system-arm")


def cmsis_sources(cmsis_dir):
    """The s8 CMSIS-NN sources the benchmark links (convolution, fully
    connected, support functions), from the user's checkout."""
    src = cmsis_dir / "Source"
    files = []
    for folder in ("ConvolutionFunctions", "FullyConnectedFunctions",
                   "NNSupportFunctions"):
        files += [p for p in sorted((src / folder).glob("*.c"))
                  if not re.search(r"_f(16|32)\.c$", p.name)]
    if not files:
        sys.exit(f"HADS_CMSIS_NN_DIR={cmsis_dir}: no CMSIS-NN sources under "
                 "Source/ (expected a checkout of ARM-software/CMSIS-NN)")
    return files


def compile_objects(sources, out_dir, flags):
    objects = []
    for src in sources:
        obj = out_dir / (src.stem + ".o")
        tool = "arm-none-eabi-gcc" if src.suffix == ".c" else "arm-none-eabi-g++"
        extra = [] if src.suffix == ".c" else [
            "-std=c++17", "-fno-exceptions", "-fno-rtti",
            "-fno-threadsafe-statics"]
        subprocess.run([tool, *flags, *extra, "-c", str(src), "-o", str(obj)],
                       check=True)
        objects.append(obj)
    return objects


def build(build_dir, widths, opt, cmsis_dir=None):
    """Writes bench_config.h and links prog.elf; returns (elf, code sizes)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for group in range(8):
        model = next(m for m, g in GROUPS.items() if group in g)
        rows.append("{" + ", ".join(str(w[group]) for w in widths[model]) + "}")
    (build_dir / "bench_config.h").write_text(
        "// Generated by benchmarks/cortex_m4.py\n"
        f"#define BENCH_NUM_SUBNETWORKS {len(MAC_TARGETS)}\n"
        f"#define BENCH_WIDTHS {{{', '.join(rows)}}}\n")
    common = CPU_FLAGS + [opt, "-ffunction-sections", "-fdata-sections"]
    warn = ["-Wall", "-Wextra", "-Werror"]
    includes = [f"-I{build_dir}", f"-I{HARNESS}", f"-I{OPS}", f"-I{LIBRARY_SRC}"]
    objects = []
    if cmsis_dir is not None:
        lib_dir = build_dir / "cmsis_nn"
        lib_dir.mkdir(exist_ok=True)
        objects += compile_objects(cmsis_sources(cmsis_dir), lib_dir,
                                   common + [f"-I{cmsis_dir / 'Include'}"])
        includes.append(f"-I{cmsis_dir / 'Include'}")
        includes.append("-DBENCH_CMSIS_NN")
    ours = [HARNESS / "startup.c", HARNESS / "semihost.c",
            HARNESS / "bench_main.cc", *KERNEL_SOURCES,
            LIBRARY_SRC / "hads_subnetworks.cpp"]
    objects += compile_objects(ours, build_dir, common + warn + includes)
    elf = build_dir / "prog.elf"
    subprocess.run(["arm-none-eabi-g++", *CPU_FLAGS, "-T",
                    str(HARNESS / "mps2_an386.ld"), "-nostartfiles",
                    "--specs=nano.specs", "-Wl,--gc-sections",
                    *map(str, objects), "-o", str(elf)], check=True)
    out = subprocess.run(
        ["arm-none-eabi-size", *(str(build_dir / (s.stem + ".o"))
                                 for s in KERNEL_SOURCES),
         str(build_dir / "hads_subnetworks.o")],
        check=True, capture_output=True, text=True).stdout
    sizes = {}
    for line in out.splitlines()[1:]:
        text, data, bss, _, _, name = line.split()
        sizes[pathlib.Path(name).stem] = {"text": int(text), "data": int(data),
                                          "bss": int(bss)}
    return elf, sizes


def run_qemu(elf, timeout=600):
    proc = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-semihosting",
         "-icount", "shift=0,sleep=off", "-nographic", "-monitor", "none",
         "-kernel", str(elf)],
        capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr  # semihosting console: stderr
    if proc.returncode != 0 or "DONE" not in output:
        sys.exit(f"cortex_m4 benchmark: program failed (exit {proc.returncode})\n"
                 f"{output[-4000:]}")
    return output


def parse(output):
    layers, models, checks, switching = {}, {}, {}, {}
    for line in output.splitlines():
        tag = line.split(" ", 1)[0]
        fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        if tag in ("LAYER", "MODEL"):
            key = (fields["model"], int(fields["k"]), fields["impl"])
            entry = {"macs": int(fields["macs"]),
                     "instructions": int(fields["ticks"]) * INSTRUCTIONS_PER_TICK}
            if tag == "LAYER":
                layers.setdefault(key, {})[fields["layer"]] = entry
            else:
                models[key] = entry
        elif tag == "CHECK":
            checks[(fields["model"], int(fields["k"]), fields["impl"])] = (
                fields["same"] == "1")
        elif tag == "SELECT":
            calls = int(fields["calls"])
            diff = int(fields["ticks"]) - int(fields["baseline_ticks"])
            switching[fields["what"]] = {
                "calls": calls,
                "instructions_per_call": diff * INSTRUCTIONS_PER_TICK / calls}
    return layers, models, checks, switching


def per_mac(entry):
    return entry["instructions"] / entry["macs"] if entry["macs"] else None


def ratio(a, b):
    return a["instructions"] / b["instructions"] if b and b["instructions"] else None


def summarize(widths, layers, models, checks, impls):
    table = {}
    for model in GROUPS:
        rows = []
        for k, w in enumerate(widths[model]):
            hads = models[(model, k, "hads")]
            row = {"subnetwork": k, "widths": {str(g): v for g, v in w.items()},
                   "macs": hads["macs"]}
            if hads["macs"] != MACS[model](w):
                sys.exit(f"MAC count mismatch for {model} k={k}: program "
                         f"{hads['macs']}, script {MACS[model](w)}")
            for impl in impls:
                m = models[(model, k, impl)]
                row[impl] = {"instructions": m["instructions"],
                             "instructions_per_mac": per_mac(m)}
                if impl != "hads":
                    if not checks[(model, k, impl)]:
                        sys.exit(f"{model} k={k}: {impl} logits differ from "
                                 "the nested model's")
                    row[f"hads_over_{impl}"] = ratio(hads, m)
            per_layer = {}
            for name, entry in layers[(model, k, "hads")].items():
                item = {"macs": entry["macs"]}
                for impl in impls:
                    e = layers[(model, k, impl)][name]
                    item[impl] = {"instructions": e["instructions"],
                                  "instructions_per_mac": per_mac(e)}
                    if impl != "hads":
                        item[f"hads_over_{impl}"] = ratio(entry, e)
                per_layer[name] = item
            row["layers"] = per_layer
            rows.append(row)
        full = rows[0]
        for row in rows:
            row["mac_ratio"] = row["macs"] / full["macs"]
            row["hads_instruction_ratio"] = (row["hads"]["instructions"] /
                                             full["hads"]["instructions"])
        table[model] = rows
    return table


def print_table(opt, table, impls):
    print(f"\n=== {opt}: instructions (thousands), instructions per MAC, ratios")
    for model, rows in table.items():
        print(f"\n{model}:")
        head = f"{'k':>2} {'MACs':>9} {'MAC %':>6}"
        for impl in impls:
            head += f" {impl + ' kI':>14} {'I/MAC':>6}"
        for impl in impls[1:]:
            head += f" {'/' + impl:>11}"
        print(head)
        for r in rows:
            line = f"{r['subnetwork']:>2} {r['macs']:>9} {100 * r['mac_ratio']:>6.1f}"
            for impl in impls:
                line += (f" {r[impl]['instructions'] / 1000:>14.1f}"
                         f" {r[impl]['instructions_per_mac']:>6.2f}")
            for impl in impls[1:]:
                line += f" {r['hads_over_' + impl]:>11.3f}"
            print(line)
        for r in rows:
            parts = []
            for name, item in r["layers"].items():
                text = f"{name} {item['hads']['instructions'] / 1000:.1f}k"
                if "hads_over_cmsis_nn" in item:
                    text += f" ({item['hads_over_cmsis_nn']:.2f}x)"
                parts.append(text)
            print(f"   k={r['subnetwork']} per layer (hads, /cmsis_nn): " +
                  ", ".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "cortex_m4.json"))
    parser.add_argument("--keep", help="keep the build in this folder")
    args = parser.parse_args()
    require_tools()
    cmsis_env = os.environ.get("HADS_CMSIS_NN_DIR")
    cmsis_dir = pathlib.Path(cmsis_env).resolve() if cmsis_env else None
    if cmsis_dir is not None and not (cmsis_dir / "Include" /
                                      "arm_nnfunctions.h").is_file():
        sys.exit(f"HADS_CMSIS_NN_DIR={cmsis_env}: not a CMSIS-NN checkout "
                 "(no Include/arm_nnfunctions.h)")
    impls = ["hads"] + (["cmsis_nn"] if cmsis_dir else []) + ["reference"]
    if cmsis_dir is None:
        print("HADS_CMSIS_NN_DIR not set: the CMSIS-NN column is skipped")

    widths = {m: widths_for_targets(m) for m in GROUPS}
    tmp = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="hads_m4_"))
    tmp.mkdir(parents=True, exist_ok=True)
    per_opt, sizes, switching = {}, {}, {}
    for opt in OPT_LEVELS:
        elf, sizes[opt] = build(tmp / opt.strip("-"), widths, opt, cmsis_dir)
        layers, models, checks, switch = parse(run_qemu(elf))
        per_opt[opt] = summarize(widths, layers, models, checks, impls)
        switching[opt] = switch
        print_table(opt, per_opt[opt], impls)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\ncode size of the kernels: {sizes}")
    for what, s in switching["-Os"].items():
        print(f"switch [{what}], -Os: {s['instructions_per_call']:.1f} "
              "instructions per call")
    worst = None
    if cmsis_dir:
        ratios = [(r["hads_over_cmsis_nn"], opt, model, r["subnetwork"])
                  for opt, table in per_opt.items()
                  for model, rows in table.items() for r in rows]
        worst = max(ratios)
        print(f"\nnested HADS / standalone CMSIS-NN: worst {worst[0]:.3f} "
              f"({worst[2]} k={worst[3]} {worst[1]}); target <= {TARGET_RATIO}")
    dnn = {f"{t:g}": r for t, r in zip(MAC_TARGETS, per_opt["-Os"]["dnn_s"])}
    print("paper (Arduino Nano 33 BLE, 64 MHz, TFLite Micro): switch "
          f"{PAPER['switch_us']} us; DNN S inference 50 % MACs 4548 us, "
          "25 % MACs 2131 us")
    for t in ("0.5", "0.25"):
        n = dnn[t]["hads"]["instructions"]
        print(f"  here {float(t):.0%} MACs (-Os): {n} instructions = "
              f"{n / 64:.0f} us at 64 MHz and 1 instruction/cycle")

    result = {
        "platform": "qemu-system-arm -M mps2-an386 -icount shift=0 (Cortex-M4F)",
        "instructions_per_tick": INSTRUCTIONS_PER_TICK,
        "compiler_flags": CPU_FLAGS,
        "opt_levels": list(OPT_LEVELS),
        "implementations": impls,
        "cmsis_nn": (subprocess.run(["git", "-C", str(cmsis_dir), "rev-parse",
                                     "HEAD"], capture_output=True, text=True)
                     .stdout.strip() or str(cmsis_dir)) if cmsis_dir else None,
        "mac_targets": MAC_TARGETS,
        "target_ratio_vs_cmsis_nn": TARGET_RATIO,
        "worst_ratio_vs_cmsis_nn": (
            {"ratio": worst[0], "opt": worst[1], "model": worst[2],
             "subnetwork": worst[3]} if worst else None),
        "inference": per_opt,
        "code_size_bytes": sizes,
        "switching": switching,
        "paper": PAPER,
    }
    provenance.stamp(result, SOURCES, COMMAND)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
