"""The workflow on a real single-node SLURM, through `--profile profiles/slurm`.

tests/slurm/slurm-up.sh brings up munge, slurmctld, slurmd and slurmdbd (with a
local MariaDB, so that `sacct` works) as root; the fixture tears it down even
when a test fails. Fast status polling is set on the command line so that the
profile itself stays realistic.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, REPO, TINY, snakemake, write_config

from dacapo_core import arrays

pytestmark = pytest.mark.slow

SLURM = REPO / "tests/slurm"
FAST_POLLING = [
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
]
#: the tiny CI cluster has an account `ci` and 2 CPUs
SITE = ["--default-resources", "slurm_partition=debug", "slurm_account=ci", "runtime=10"]


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("bringing up SLURM needs root (CI runs as root)")
    up = subprocess.run(["bash", str(SLURM / "slurm-up.sh")], capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield time.strftime("%Y-%m-%dT%H:%M:%S")
    finally:
        subprocess.run(["bash", str(SLURM / "slurm-down.sh")], capture_output=True)


def on_slurm(workdir, config, *extra):
    return snakemake(
        workdir,
        "--profile",
        str(REPO / "profiles/slurm"),
        "--configfile",
        str(config),
        *FAST_POLLING,
        *SITE,
        *extra,
        timeout=900,
    )


def test_tiny_workflow_runs_through_sbatch(cluster, tmp_path):
    config = write_config(tmp_path, TINY)
    result = on_slurm(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    seg = arrays.open_array(tmp_path / "results/tiny/apply/test_a.zarr/segmentation")
    raw = arrays.open_array(tmp_path / "data/demo.zarr/test/raw")
    assert seg.roi == raw.roi and seg.voxel_size == raw.voxel_size
    best = json.loads((tmp_path / "results/tiny/best.json").read_text())
    assert best["voi"]["iteration"] in (10, 20)
    accounting = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", cluster, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    states = [line.split("|")[1] for line in accounting.stdout.split() if "|" in line]
    # make_demo_data, 2 train, 2 validate_predict, 2 validate_score, predict, segment
    assert states.count("COMPLETED") >= 9, accounting.stdout


def test_a_failing_job_fails_the_workflow_and_names_its_slurm_log(cluster, tmp_path, tiny_config):
    tiny_config["runs"]["tiny"]["trainer"]["device"] = "cuda"  # no GPU on the CI node
    config = write_config(tmp_path, tiny_config)
    result = on_slurm(tmp_path, config, "--retries", "0")
    assert result.returncode != 0
    assert "Error in rule train" in result.stderr
    named = re.findall(r"\S*\.snakemake/slurm_logs/rule_train/\S*?\.log", result.stderr)
    assert named, result.stderr[-3000:]  # the SLURM log of the failed job is named
    assert "did not complete successfully" in Path(named[-1]).read_text()
    assert "cuda" in (tmp_path / "logs/train/tiny/10.log").read_text().lower()  # the cause
