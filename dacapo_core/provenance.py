"""Where an output came from, recorded in the output itself.

A record names the code and library versions, the run and its config hash
(sha256 of ``run.json``'s content), the stage the output depends on, the
checkpoint it was made from (iteration and sha256) and its inputs. Input arrays
are fingerprinted from metadata only (path, shape, dtype, voxel size, offset and
the modification times of the array's directory and metadata files): hashing a
terabyte, or stating its millions of chunk files, would cost more than the job.

Records are written by the rule scripts next to the outputs (zarr attribute
``provenance``, JSON key ``provenance``, a checkpoint's ``provenance`` entry),
never as params: a new code version or library changes no stage, so it reruns
nothing. An output that names no checkpoint inherits the one all its inputs
name, so a segmentation names its run's iteration and checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import zarr

from . import arrays, layout
from .errors import UserError

KEY = "provenance"
LIBRARIES = ("torch", "gunpowder", "daisy", "zarr", "waterz")
#: an input array's fields that ``explain`` prints
GEOMETRY = ("shape", "dtype", "voxel_size", "offset")


class ProvenanceError(UserError):
    """A recorded hash that no longer matches its file."""


@lru_cache
def code_version() -> str:
    """The git commit of this package's repository, else the installed version."""
    try:
        done = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return f"git {done.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return f"dacapo-flow {_version('dacapo-flow')}"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def contents(data: dict[str, Any]) -> dict[str, Any]:
    """A JSON output without its provenance: what equal results share."""
    return {k: v for k, v in data.items() if k != KEY}


def config_hash(run_record: dict[str, Any]) -> str:
    """sha256 of a run's resolved config (run.json's content), key order aside."""
    text = json.dumps(contents(run_record), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as its outputs name it: path, iteration, sha256."""
    from .checkpoint import load_checkpoint  # torch: only where a checkpoint is used

    iteration = int(load_checkpoint(path)["iteration"])
    return {"path": str(path), "iteration": iteration, "sha256": sha256(path)}


def fingerprint(path: str | Path) -> dict[str, Any]:
    """An input from metadata only: an array's geometry, or a file's size; with the
    modification times of the array's directory and metadata files."""
    path = Path(path)
    names = (".", ".zarray", ".zattrs") if (path / ".zarray").is_file() else (".",)
    found = {
        "path": str(path),
        "modified": {n: (path / n).stat().st_mtime_ns for n in names if (path / n).exists()},
    }
    if names == (".",):
        return found
    array = zarr.open(str(path), mode="r")
    return {
        **found,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "voxel_size": array.attrs.get("voxel_size"),
        "offset": array.attrs.get("offset"),
    }


def record(
    run: str,
    run_hash: str,
    stage: dict[str, Any] | None = None,
    inputs: dict[str, str] | None = None,
    made_from: str | Path | None = None,
) -> dict[str, Any]:
    """The record of an output of ``run`` (config hash ``run_hash``): its stage, its
    inputs (name -> path), and the checkpoint ``made_from`` (else the one that all
    inputs with a record name)."""
    inputs = inputs or {}
    found = {
        "code": code_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "run": {"name": run, "config_hash": run_hash, "run_json": _run_json(run)},
        "inputs": {name: fingerprint(p) for name, p in inputs.items()},
    }
    if stage is not None:
        found["stage"] = stage
    used = checkpoint(made_from) if made_from is not None else _common_checkpoint(inputs.values())
    if used is not None:
        found["checkpoint"] = used
    return found


def _run_json(run: str) -> str:
    return layout.path(layout.RUN_JSON, run=run)


def _common_checkpoint(paths) -> dict[str, Any] | None:
    named = [r["checkpoint"] for r in map(read, paths) if r and "checkpoint" in r]
    return named[0] if named and all(c == named[0] for c in named) else None


def stamp(path: str | Path, found: dict[str, Any]) -> None:
    """Attach a record to a finished zarr array (an attribute: contents unchanged)."""
    zarr.open(str(path), mode="r+").attrs[KEY] = found


def stamp_job(
    path: str | Path, job: Any, inputs: dict[str, str], made_from: str | Path | None = None
) -> None:
    """Stamp ``path`` with the record of the Snakemake job ``job`` (a rule script's
    ``snakemake`` object: its run wildcard, the run's config hash, its stage params)."""
    run = job.wildcards.run
    hashes = job.config["config_hashes"]
    stamp(path, record(run, hashes[run], job.params.stage, inputs, made_from=made_from))


def read(path: str | Path) -> dict[str, Any] | None:
    """The record of an output (zarr array, JSON file or checkpoint), if it has one."""
    path = Path(path)
    if path.suffix == ".pt":
        from .checkpoint import load_checkpoint

        state = load_checkpoint(path)
        return {**state.get(KEY, {}), "iteration": int(state["iteration"])}
    if path.suffix == ".json" and path.is_file():
        data = arrays.read_json(path)
        return data.get(KEY) if isinstance(data, dict) else None
    if (path / ".zarray").is_file():
        return zarr.open(str(path), mode="r").attrs.get(KEY)
    return None


def explain(path: str | Path, verify: bool = False) -> list[str]:
    """The chain from an output back to its config and data: each recorded output
    (the one asked, then the outputs and checkpoints it was made from), then each
    run.json. Recorded paths are relative to the workflow's directory (the one
    holding ``results/``, else the current one). ``verify``: a checkpoint whose
    file no longer has its recorded sha256 is an error."""
    root = _workdir(Path(path))
    lines: list[str] = []
    todo, seen, runs = [str(path)], set(), {}
    while todo:
        current = todo.pop(0)
        found = None if current in seen else read(root / current)
        seen.add(current)
        if not found:
            continue
        lines += [current, *_describe(found, root, verify)]
        runs[found["run"]["run_json"]] = found["run"]["config_hash"]
        todo += [i["path"] for i in found["inputs"].values()]
        todo += [found["checkpoint"]["path"]] if "checkpoint" in found else []
    for run_json in runs:
        lines.append(f"{run_json}: config sha256 {_run_hash(root / run_json)}")
    return lines


def _workdir(path: Path) -> Path:
    parts = path.resolve().parts
    return Path(*parts[: parts.index("results")]) if "results" in parts else Path.cwd()


def _run_hash(run_json: Path) -> str | None:
    return config_hash(arrays.read_json(run_json)) if run_json.is_file() else None


def _describe(found: dict[str, Any], root: Path, verify: bool) -> list[str]:
    run = found["run"]
    now = _run_hash(root / run["run_json"])
    same = "matches" if now == run["config_hash"] else f"differs from {now} (config changed)"
    lines = [f"  run {run['name']}, config sha256 {run['config_hash']} ({same} run.json)"]
    if "iteration" in found:  # a checkpoint's own
        lines.append(f"  iteration {found['iteration']}")
    if "checkpoint" in found:
        lines.append(_checkpoint_line(found["checkpoint"], root, verify))
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(found["libraries"].items()))
    lines.append(f"  code {found['code']}; {libraries}")
    for name, given in found["inputs"].items():
        geometry = [
            f"{k} {given[k]}" for k in ("shape", "dtype", "voxel_size", "offset") if k in given
        ]
        lines.append(f"  input {name}: {given['path']}" + "".join(f", {g}" for g in geometry))
    if "stage" in found:
        lines.append(f"  stage {json.dumps(found['stage'], sort_keys=True)}")
    return lines


def _checkpoint_line(named: dict[str, Any], root: Path, verify: bool) -> str:
    file = root / named["path"]
    now = sha256(file) if file.is_file() else None
    if verify and now != named["sha256"]:
        state = "missing" if now is None else f"sha256 {now}"
        raise ProvenanceError(f"{named['path']}: {state}, but recorded {named['sha256']}")
    same = "matches the file" if now == named["sha256"] else f"file: {now}"
    return (
        f"  checkpoint {named['path']}: iteration {named['iteration']}, "
        f"sha256 {named['sha256']} ({same})"
    )
