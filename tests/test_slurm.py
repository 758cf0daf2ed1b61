"""The workflow on a real single-node SLURM, through the profile installed as
`--profile slurm` (as a user does) and through `--profile profiles/slurm`; and the
profile's installation.

tests/slurm/slurm-up.sh brings up munge, slurmctld, slurmd and slurmdbd (with a
local MariaDB, so that `sacct` works) as root; the fixture tears it down even
when a test fails. Fast status polling is set on the command line so that the
profile itself stays realistic.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BIN, REPO, TINY, copy_workdir, snakemake, write_config

from dacapo_core import arrays, cli, profiles, provenance

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


def on_slurm(workdir, config, *extra, profile=str(REPO / "profiles/slurm")):
    return snakemake(
        workdir,
        "--profile",
        profile,
        "--configfile",
        str(config),
        *FAST_POLLING,
        *extra,
        timeout=900,
    )


def install_profile(*options):
    """`dacapo-flow profile install slurm ...` as a user types it."""
    return subprocess.run(
        [str(BIN / "dacapo-flow"), "profile", "install", "slurm", *options],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_profile_fills_in_partition_and_account():
    template = (REPO / "profiles/slurm/config.yaml").read_text()
    filled = yaml.safe_load(profiles.render(template, "gpu", "mylab"))
    expected = yaml.safe_load(template)
    expected["default-resources"].update(slurm_partition="gpu", slurm_account="mylab")
    assert filled == expected  # nothing else changed
    without = yaml.safe_load(profiles.render(template, "gpu", None))
    assert "slurm_account" not in without["default-resources"]
    with pytest.raises(profiles.ProfileError):
        profiles.render(template, "gpu; rm", None)


def test_profile_goes_where_snakemake_looks_and_is_not_overwritten(tmp_path, monkeypatch, capsys):
    """Snakemake finds `--profile NAME` in platformdirs' user config dir; an existing
    profile there is kept (one line, exit 2) unless --force, which keeps a backup."""
    from snakemake.cli import get_profile_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no ./slurm: the search goes on to the config dirs
    monkeypatch.setattr("snakemake.common.APPDIRS", None)  # snakemake caches the dirs
    install = ["profile", "install", "slurm", "--partition", "p1"]
    assert cli.main(install) == 0
    path = tmp_path / "snakemake/slurm/config.yaml"
    assert get_profile_dir("slurm") == (path.parent, path)
    assert f"installed {path} (partition p1, account none)" in capsys.readouterr().out
    mine = path.read_text() + "# my own settings\n"
    path.write_text(mine)
    assert cli.main([*install[:-1], "p2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dacapo-flow profile: error: {path.parent} exists: not overwritten " + (
        "(--force replaces its config.yaml)"
    )
    assert path.read_text() == mine
    assert cli.main([*install[:-1], "p2", "--force"]) == 0
    assert "replaced" in capsys.readouterr().out
    assert yaml.safe_load(path.read_text())["default-resources"]["slurm_partition"] == "p2"
    assert (path.parent / "config.yaml.bak").read_text() == mine


@pytest.mark.slow
def test_tiny_workflow_runs_through_sbatch_with_the_installed_profile(
    cluster, tmp_path, monkeypatch, finished
):
    """The user's commands: install the profile once, then `snakemake --profile slurm`
    (run from the repository root, which has no ./slurm). The results are those of the
    same experiment run locally."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    installed = install_profile("--partition", "debug", "--account", "ci")
    assert installed.returncode == 0, installed.stderr
    config = write_config(tmp_path, TINY)
    result = on_slurm(tmp_path, config, profile="slurm")
    assert result.returncode == 0, result.stderr[-3000:]
    seg = arrays.open_array(tmp_path / "results/tiny/apply/test_a.zarr/segmentation")
    raw = arrays.open_array(tmp_path / "data/demo.zarr/test/raw")
    assert seg.roi == raw.roi and seg.voxel_size == raw.voxel_size
    local = finished[0] / "results/tiny"
    for name in ("best.json", "apply/test_a.choice.json"):
        here, there = (arrays.read_json(r / name) for r in (tmp_path / "results/tiny", local))
        assert provenance.contents(here) == provenance.contents(there)
    same = arrays.open_array(local / "apply/test_a.zarr/segmentation")
    assert np.array_equal(seg.to_ndarray(seg.roi), same.to_ndarray(same.roi))
    accounting = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", cluster, "-o", "JobID,State,Partition,Account"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    jobs = [line.split("|") for line in accounting.stdout.split() if "|" in line]
    # make_demo_data, 2 train, 2 validate_predict, 3 fragments, 2 validate_score, predict,
    # segment (selection and figures are local rules)
    assert [state for _, state, _, _ in jobs].count("COMPLETED") >= 12, accounting.stdout
    assert {(partition, account) for _, _, partition, account in jobs} == {("debug", "ci")}


@pytest.mark.slow
def test_a_failing_job_fails_the_workflow_and_names_its_slurm_log(cluster, tmp_path, tiny_config):
    """The repository's profile, used in place with the site on the command line."""
    tiny_config["runs"]["tiny"]["trainer"]["device"] = "cuda"  # no GPU on the CI node
    config = write_config(tmp_path, tiny_config)
    result = on_slurm(tmp_path, config, *SITE, "--retries", "0")
    assert result.returncode != 0
    assert "Error in rule train" in result.stderr
    named = re.findall(r"\S*\.snakemake/slurm_logs/rule_train/\S*?\.log", result.stderr)
    assert named, result.stderr[-3000:]  # the SLURM log of the failed job is named
    assert "did not complete successfully" in Path(named[-1]).read_text()
    assert "cuda" in (tmp_path / "logs/train/tiny/10.log").read_text().lower()  # the cause


def tracked_blocks(workdir: Path, stage: str) -> int:
    """Blocks daisy recorded done for ``stage`` in the staged prediction (its tracking
    keeps a zarr v3 array ``done`` of uint8 flags, one per block, uncompressed)."""
    done = workdir / "results/tiny/apply/test_sb.zarr/prediction.partial/.daisy" / stage / "done"
    chunks = [p for p in (done / "c").rglob("*") if p.is_file()] if done.exists() else []
    return sum(sum(p.read_bytes()) for p in chunks)


def superblocks_of(output: str, rule: str) -> list[str]:
    """The superblocks of the jobs of ``rule`` that Snakemake's log reports (once each:
    the logs of failed jobs that it prints repeat their start)."""
    starts = rf"^rule {rule}:\n(?:    .*\n)*?    wildcards: .*sb=(\S+)"  # not its errors
    return sorted(set(re.findall(starts, output, flags=re.MULTILINE)))


@pytest.mark.slow
def test_a_cancelled_superblock_job_reruns_only_its_unfinished_blocks(cluster, tmp_path, finished):
    """Two superblocks through sbatch: one predict job cancelled with scancel between
    its first and last block; the rerun predicts only that superblock's remaining
    blocks, submits nothing for the other, and the result is the local one."""
    workdir = copy_workdir(finished[0], tmp_path / "wd")
    config = yaml.safe_load(finished[1].read_text())
    entry = {**config["apply"][0], "name": "test_sb", "num_workers": 1}
    config["apply"].append({**entry, "superblock_shape": [40, 120, 120]})  # 2 superblocks
    config = write_config(workdir, config)
    arrays_but_predict = ["--slurm-array-jobs", "fragments_superblock,edges_superblock"]
    args = ["--profile", str(REPO / "profiles/slurm"), "--configfile", str(config)]
    args += [*FAST_POLLING, *SITE, *arrays_but_predict, "--retries", "0"]
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    stage, deadline = "predict-0_0_0", time.monotonic() + 600
    while not 0 < tracked_blocks(workdir, stage) < 9 and time.monotonic() < deadline:
        time.sleep(0.1)
    queued = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True)
    comment = "rule_predict_superblock_wildcards_tiny_test_sb_0_0_0"  # the plugin's
    target = [line.split("|")[0] for line in queued.stdout.split() if line.endswith(comment)]
    assert target, queued.stdout
    subprocess.run(["scancel", target[0]], check=True)  # as a user does
    output = first.communicate(timeout=900)[0].decode()
    assert first.returncode != 0  # the cancelled job failed the run
    assert superblocks_of(output, "predict_superblock") == ["0_0_0", "1_0_0"]
    done_before = tracked_blocks(workdir, stage)
    assert 0 < done_before < 9

    again = snakemake(workdir, *args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert superblocks_of(again.stderr, "predict_superblock") == ["0_0_0"]  # not 1_0_0
    log = (workdir / "logs/superblocks/tiny/test_sb/predict/0_0_0.log").read_text()
    last = re.findall(rf"{stage}: (\d+) of 9 blocks done, (\d+) of them by an earlier run", log)
    assert last[-1] == ("9", str(done_before))  # the rerun predicted only the rest
    accounting = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", cluster, "-o", "JobID,State"],
        capture_output=True,
        text=True,
    )
    assert "CANCELLED" in accounting.stdout, accounting.stdout
    sb = arrays.open_array(workdir / "results/tiny/apply/test_sb.zarr/segmentation")
    local = arrays.open_array(finished[0] / "results/tiny/apply/test_a.zarr/segmentation")
    assert np.array_equal(sb.to_ndarray(sb.roi), local.to_ndarray(local.roi))
