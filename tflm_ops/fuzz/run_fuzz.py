"""Builds tflm_ops/fuzz/options_fuzz.cc with ASan + UBSan against a TFLite
Micro tree and runs both of its stages for a bounded time (a manual check,
not in CI):

    HADS_TFLM_DIR=/path/to/tflite-micro python tflm_ops/fuzz/run_fuzz.py 60 [SEED]

Stage 1 (Init on mutated FlexBuffers) gets a third of the time, stage 2
(Init + Prepare + Eval in the interpreter, on one-operator models of each
kind, with their tables both in the exporter's in-place layout and in the
narrow layout that is copied) the rest. The tree's library must be built by
its Makefile (see tests/native/README.md). Exit code 0: no crash, no
sanitizer report (they abort the run: -fno-sanitize-recover).
"""

import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "native")]


def seed_models(out_dir):
    """One-operator nested models (3 subnetworks) of every kind and layout."""
    import test_hads_ops_tflm as cases  # the native tests' random operators
    from hads_keras.export import flatbuffer
    paths = []
    for kind in ("fc", "conv", "dw"):
        case = cases.Case(kind, seed=7)
        for layout, options in (("inplace", flatbuffer.flexbuffer_map(case.entries)),
                                ("narrow", cases._options(case.entries))):
            path = pathlib.Path(out_dir) / f"{kind}_{layout}.tflite"
            path.write_bytes(case.model(raw_options=options))
            paths.append(str(path))
    return paths


def main(argv):
    seconds = float(argv[1]) if len(argv) > 1 else 60.0
    seed = argv[2] if len(argv) > 2 else "1"
    from hads_keras.export import tflm_host
    found = tflm_host.tflm_tree()
    if found is None:
        raise SystemExit("set HADS_TFLM_DIR to a TFLite Micro tree with its "
                         "library built (tests/native/README.md)")
    tree, library = found
    with tempfile.TemporaryDirectory() as work:
        binary = pathlib.Path(work) / "options_fuzz"
        cmd = (["g++", "-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer",
                "-fno-rtti", "-fno-exceptions",
                "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                *tflm_host.DEFINES] +
               [f"-I{p}" for p in tflm_host.include_dirs(tree, library)] +
               [str(REPO / "tflm_ops/fuzz/options_fuzz.cc")] +
               [str(s) for s in tflm_host.operator_sources()] +
               [str(library), "-o", str(binary)])
        subprocess.run(cmd, check=True)
        models = seed_models(work)
        # TFLite Micro logs every refused model on stderr: keep it out of
        # the way, sanitizer reports go to files.
        env = dict(os.environ, ASAN_OPTIONS=f"log_path={work}/asan",
                   UBSAN_OPTIONS=f"log_path={work}/ubsan:print_stacktrace=1")
        results = []
        for args in ([f"{seconds / 3:.0f}", seed],
                     ["--models", f"{2 * seconds / 3:.0f}", seed, *models]):
            proc = subprocess.run([str(binary), *args], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            print(proc.stdout.strip())
            results.append(proc.returncode)
        reports = sorted(pathlib.Path(work).glob("[au]bsan*")) + sorted(
            pathlib.Path(work).glob("asan*"))
        for report in reports:
            print(f"--- {report.name}\n{report.read_text()[-6000:]}")
        if reports or any(results):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
