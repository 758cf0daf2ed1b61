"""Shared fixtures: the repository, a tiny demo config, and a Snakemake runner."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: a network and schedule small enough that the whole DAG runs in about a minute
TINY = {
    "seed": 1,
    "demo": {"container": "data/demo.zarr", "voxel_size": [8, 8, 8]},
    "datasets": {
        "train_a": {"container": "data/demo.zarr", "raw": "train/raw", "gt": "train/labels"},
        "val_a": {"container": "data/demo.zarr", "raw": "validate/raw", "gt": "validate/labels"},
        "test_a": {"container": "data/demo.zarr", "raw": "test/raw"},
    },
    "runs": {
        "tiny": {
            "datasplit": {"train": ["train_a"], "validate": ["val_a"]},
            "architecture": {
                "input_shape": [44, 44, 44],
                "eval_shape_increase": [16, 16, 16],
                "fmaps": 4,
                "fmap_inc_factor": 2,
                "downsample_factors": [[2, 2, 2]],
            },
            "trainer": {"snapshot_interval": 10},
            "train_until": 20,
            "validation_interval": 10,
            "post_processor": {
                "thresholds": [0.3, 0.5, 0.7],
                "merge_function": ["mean", "hist_quant_50"],
                "min_size": [0, 20],
            },
        }
    },
    "apply": [{"run": "tiny", "input": "test_a", "num_workers": 2, "block_shape": [40, 40, 40]}],
}

#: a 2D network as small as TINY's
ARCH_2D = {
    "input_shape": [44, 44],
    "eval_shape_increase": [16, 16],
    "fmaps": 4,
    "fmap_inc_factor": 2,
    "downsample_factors": [[2, 2]],
}


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY)


def write_config(workdir: Path, data: dict, name: str = "config.yaml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real Snakemake on the repository's workflow in ``workdir``."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    jobs: dict[str, int] = {}
    lines = result.stdout.splitlines()
    if "Job stats:" not in lines:
        return jobs
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs


def ran_rules(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> number of jobs Snakemake actually ran, from its log (``rule X:`` /
    ``localrule X:`` headers; the aggregate target ``all`` left out)."""
    jobs: dict[str, int] = {}
    for match in re.finditer(r"^(?:local)?(?:rule|checkpoint) (\w+):$", result.stderr, re.M):
        if match.group(1) != "all":
            jobs[match.group(1)] = jobs.get(match.group(1), 0) + 1
    return jobs


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A workdir where the tiny experiment ran to the end (shared: copy it to change it)."""
    workdir = tmp_path_factory.mktemp("finished")
    cfg = write_config(workdir, TINY)
    result = snakemake(workdir, "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, cfg


def copy_workdir(source: Path, destination: Path) -> Path:
    """A copy of a finished workdir, time stamps and Snakemake's records included."""
    shutil.copytree(source, destination, symlinks=True)
    return destination
