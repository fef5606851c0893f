"""Which sources a benchmark result was measured from.

Every results JSON under benchmarks/results/ carries a ``provenance`` entry:

    {"command": "python benchmarks/cortex_m4.py",
     "sources": {"tflm_ops/hads_kernels.cc": "<sha256>", ...},
     "sources_sha256": "<sha256 over the sorted (path, sha256) pairs>",
     "commit": "<git HEAD when measured, informational>",
     "note": "..."}

`tests/test_benchmark_provenance.py` recomputes the hashes of the listed
sources and fails when a committed result no longer matches them, naming the
command that regenerates it. Each benchmark script lists its sources (the
script itself, the code it measures, what it compiles) and calls `stamp`
before writing its JSON.
"""

import hashlib
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _expand(patterns):
    files = set()
    for pattern in patterns:
        matches = sorted(ROOT.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"provenance: no source matches {pattern!r}")
        for path in matches:
            if path.is_dir():
                files.update(p for p in path.rglob("*")
                             if p.is_file() and "__pycache__" not in p.parts)
            else:
                files.add(path)
    return sorted(p.relative_to(ROOT).as_posix() for p in files)


def file_hashes(patterns):
    """{repo-relative path: sha256 of its bytes} of every matched file
    (glob patterns relative to the repository root; folders recursively)."""
    return {rel: hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()
            for rel in _expand(patterns)}


def combined_hash(hashes):
    digest = hashlib.sha256()
    for rel in sorted(hashes):
        digest.update(f"{rel}\0{hashes[rel]}\n".encode())
    return digest.hexdigest()


def _git_head():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def stamp(result, sources, command, note=None):
    """Adds the provenance entry to `result` (a dict) and returns it."""
    hashes = file_hashes(sources)
    entry = {"command": command, "sources": hashes,
             "sources_sha256": combined_hash(hashes), "commit": _git_head()}
    if note:
        entry["note"] = note
    result["provenance"] = entry
    return result


def stale(result_path):
    """Why the committed result at `result_path` does not match the current
    sources (a list of messages; empty when it matches)."""
    result = json.loads(pathlib.Path(result_path).read_text())
    entry = result.get("provenance")
    name = pathlib.Path(result_path).name
    if not isinstance(entry, dict) or "sources" not in entry:
        return [f"{name} has no provenance entry; regenerate it with its "
                "benchmark script"]
    command = entry.get("command", "its benchmark script")
    problems = []
    for rel, recorded in sorted(entry["sources"].items()):
        path = ROOT / rel
        if not path.is_file():
            problems.append(f"{name}: source {rel} is gone")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != recorded:
            problems.append(f"{name}: {rel} changed since it was measured")
    if combined_hash(entry["sources"]) != entry.get("sources_sha256"):
        problems.append(f"{name}: sources_sha256 does not match its sources")
    if problems:
        problems.append(f"regenerate with: {command}")
    return problems
