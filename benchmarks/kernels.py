"""Instruction counts of the HADS kernels (valgrind callgrind, repeatable).

Measures, for a DNN S-shaped stack (490 -> 144 -> 144 -> 144 -> 12 fully
connected) and a DS-CNN S-shaped stack (conv 10x4 stride 2, 64 filters, on
49x10x1; four depthwise 3x3 + pointwise 64 blocks; average pool; fully
connected 12), with hidden widths chosen for 100/75/50/25 % of the MACs:

  (a) switching subnetwork: writing the subnetwork integer, and that write
      plus the per-operator table lookup every HADS Eval does;
  (b) one inference of each subnetwork of the nested model (full-size
      buffers, active prefixes);
  (c) the same subnetwork as a standalone model (physically sliced weights
      and buffers) through the same portable kernels at full width.

Targets (docs: DESIGN.md section 6, issue 7): switching < 100 instructions;
nested k within 5 % of standalone k; instructions proportional to MACs.

The C++ driver is benchmarks/kernels_bench.cc (compiled here with g++ -O2
against tflm_ops/hads_kernels.cc); every measured region is bracketed by
callgrind client requests, so each count is that region alone (the bracket
itself, `empty`, is subtracted). Counts are x86-64 instructions of the host
build, not Cortex-M cycles.

Usage: python benchmarks/kernels.py [--out benchmarks/results/kernels.json]
"""

import argparse
import glob
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH_SOURCE = REPO / "benchmarks" / "kernels_bench.cc"
# What the measurement depends on (for benchmarks/provenance.py).
SOURCES = ["benchmarks/kernels.py", "benchmarks/kernels_bench.cc",
           "tflm_ops/hads_kernels.h", "tflm_ops/hads_kernels.cc",
           "tflm_ops/hads_kernels_dsp.h", "tflm_ops/hads_kernels_dsp.cc"]
KERNELS = REPO / "tflm_ops" / "hads_kernels.cc"
MAC_TARGETS = (1.0, 0.75, 0.5, 0.25)
CXXFLAGS = ["-std=c++17", "-O2", "-fno-exceptions", "-fno-rtti"]


def dnn_macs(w):
    """MACs of the DNN S stack with hidden width w."""
    return 490 * w + 2 * w * w + w * 12


def dscnn_macs(w):
    """MACs of the DS-CNN S stack with width w for every 64-channel group
    (conv 25x5 outputs x 10x4 taps; per block depthwise 9 taps and
    pointwise w x w per output position; classifier)."""
    positions = 25 * 5
    return (positions * 40 * w + 4 * (positions * 9 * w + positions * w * w)
            + 12 * w)


MODELS = {"dnn": (144, dnn_macs), "dscnn": (64, dscnn_macs)}


def widths_for_targets(full, macs):
    """Per MAC target, the width whose MACs are closest to it."""
    total = macs(full)
    return [min(range(1, full + 1), key=lambda w: abs(macs(w) - t * total))
            for t in MAC_TARGETS]


def build(work):
    cxx = os.environ.get("CXX", "g++")
    binary = pathlib.Path(work) / "kernels_bench"
    cmd = [cxx] + CXXFLAGS + ["-I", str(REPO / "tflm_ops"), str(BENCH_SOURCE),
                              str(KERNELS), "-o", str(binary)]
    subprocess.run(cmd, check=True)
    return binary, " ".join(cmd[:1] + CXXFLAGS)


def run_callgrind(binary, model, widths, work):
    """{label: instructions} of every dumped region."""
    prefix = pathlib.Path(work) / f"cg_{model}.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}",
           str(binary), model] + [str(w) for w in widths]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n"
                         f"{proc.stderr[-3000:]}")
    counts = {}
    for path in glob.glob(f"{prefix}.*"):
        text = pathlib.Path(path).read_text()
        label = re.search(r"^desc: Trigger: Client Request: (\S+)$", text,
                          re.M)
        total = re.search(r"^summary: (\d+)$", text, re.M)
        if label and total:
            counts[label.group(1)] = int(total.group(1))
    return counts, proc.stdout.strip()


def analyse(model, widths, counts):
    full, macs = MODELS[model]
    bracket = counts["empty"]
    num_ops = 4 if model == "dnn" else 10  # HADS operators in the stack
    lookup = counts["switch_lookup"] - bracket
    result = {
        "widths": widths,
        "hads_operators": num_ops,
        "switch_write_instructions": counts["switch_write"] - bracket,
        "switch_write_plus_lookups_instructions": lookup,
        "lookup_instructions_per_operator": round(lookup / num_ops, 1),
        "subnetworks": [],
    }
    nested0 = counts["nested_k0"] - bracket
    for k, w in enumerate(widths):
        nested = counts[f"nested_k{k}"] - bracket
        standalone = counts[f"standalone_k{k}"] - bracket
        m = macs(w)
        result["subnetworks"].append({
            "k": k, "width": w, "macs": m,
            "mac_fraction": round(m / macs(full), 4),
            "nested_instructions": nested,
            "standalone_instructions": standalone,
            "nested_over_standalone": round(nested / standalone, 4),
            "instructions_per_mac": round(nested / m, 3),
            # 1.0 = instructions exactly proportional to MACs.
            "instruction_fraction_over_mac_fraction": round(
                (nested / nested0) / (m / macs(full)), 4),
        })
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" /
                                             "kernels.json"))
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    results = {"tool": "valgrind --tool=callgrind (Ir: instructions executed)",
               "machine": platform.machine(), "models": {}}
    with tempfile.TemporaryDirectory() as work:
        binary, flags = build(work)
        results["compiler"] = flags
        version = subprocess.run(["valgrind", "--version"], capture_output=True,
                                 text=True).stdout.strip()
        results["valgrind"] = version
        for model, (full, macs) in MODELS.items():
            widths = widths_for_targets(full, macs)
            counts, log = run_callgrind(binary, model, widths, work)
            print(f"[{model}] {log}")
            results["models"][model] = analyse(model, widths, counts)

    for model, r in results["models"].items():
        print(f"\n{model}: widths {r['widths']}, {r['hads_operators']} HADS ops")
        print(f"  switch (write the integer): {r['switch_write_instructions']} "
              f"instructions; + table lookup of all operators: "
              f"{r['switch_write_plus_lookups_instructions']} "
              f"({r['lookup_instructions_per_operator']} per operator)")
        print("   k  width      MACs  MAC%    nested  standalone  "
              "nested/stand.  instr/MAC  instr%/MAC%")
        for s in r["subnetworks"]:
            print(f"  {s['k']:2d}  {s['width']:5d}  {s['macs']:8d}  "
                  f"{100 * s['mac_fraction']:4.0f}  {s['nested_instructions']:8d}"
                  f"  {s['standalone_instructions']:10d}  "
                  f"{s['nested_over_standalone']:13.4f}  "
                  f"{s['instructions_per_mac']:9.3f}  "
                  f"{s['instruction_fraction_over_mac_fraction']:11.4f}")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import provenance
    provenance.stamp(results, SOURCES, "python benchmarks/kernels.py")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
