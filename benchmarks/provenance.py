"""Which sources a benchmark result was measured from.

Every results JSON under benchmarks/results/ carries a ``provenance`` entry:

    {"command": "python benchmarks/cortex_m4.py",
     "sources": {"tflm_ops/hads_kernels.cc": "<sha256>", ...},
     "sources_sha256": "<sha256 over the sorted (path, sha256) pairs>",
     "commit": "<git HEAD when measured, informational>",
     "note": "..."}

`tests/test_benchmark_provenance.py` recomputes the hashes of the listed
sources and fails when a committed result no longer matches them, naming the
command that regenerates it.

A result that is kept although its sources have moved on (a run too long to
repeat for every change) is marked instead with ``"measured_at": "<commit>"``
(`mark_measured_at`): its hashes are then those of the sources *at that
commit*, checked against `git show`, and README.md or benchmarks/README.md
must say so on a line naming the file and the commit's first 7 characters. Each benchmark script lists its sources (the
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


def _git_blob_sha256(commit, rel):
    """sha256 of `rel` as it was at `commit`, or None if git cannot tell."""
    try:
        blob = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=ROOT,
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return hashlib.sha256(blob).hexdigest()


def _git_files(commit, patterns):
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit],
                             cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    files = set()
    for pattern in patterns:
        matched = [f for f in listing
                   if pathlib.PurePosixPath(f).match(pattern) or f == pattern
                   or f.startswith(pattern.rstrip("/") + "/")]
        if not matched:
            raise FileNotFoundError(
                f"provenance: no source at {commit} matches {pattern!r}")
        files.update(matched)
    return sorted(files)


def mark_measured_at(result, sources, command, commit, note):
    """Provenance of a result measured at an older `commit`: hashes of the
    sources as they were there (the README must name file and commit)."""
    full = subprocess.run(["git", "rev-parse", commit], cwd=ROOT,
                          capture_output=True, text=True,
                          check=True).stdout.strip()
    hashes = {rel: _git_blob_sha256(full, rel)
              for rel in _git_files(full, sources)}
    result["provenance"] = {"command": command, "sources": hashes,
                            "sources_sha256": combined_hash(hashes),
                            "measured_at": full, "note": note}
    return result


def _readme_names(name, commit):
    for readme in (ROOT / "README.md", ROOT / "benchmarks" / "README.md"):
        if readme.is_file() and any(
                name in line and commit[:7] in line
                for line in readme.read_text().splitlines()):
            return True
    return False


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
    older = entry.get("measured_at")
    if older:  # kept from an older commit: check against that commit
        for rel, recorded in sorted(entry["sources"].items()):
            if _git_blob_sha256(older, rel) != recorded:
                problems.append(f"{name}: {rel} at {older[:7]} does not match "
                                "the recorded hash (or git cannot show it)")
        if not _readme_names(name, older):
            problems.append(f"{name} is from {older[:7]}, but neither README.md "
                            "nor benchmarks/README.md says so on a line naming "
                            f"{name} and {older[:7]}")
        if combined_hash(entry["sources"]) != entry.get("sources_sha256"):
            problems.append(f"{name}: sources_sha256 does not match its sources")
        if problems:
            problems.append(f"regenerate with: {command}")
        return problems
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
