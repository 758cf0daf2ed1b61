"""After SIGKILL of the whole process group, the README's command just finishes,
with the results of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, REPO, TINY, write_config

from dacapo_core import arrays, locks, provenance

pytestmark = pytest.mark.slow


def readme_command(workdir: Path, config: Path) -> list[str]:
    """`make run` as the README gives it, on this workdir and config (the venv is built)."""
    make = ["make", "-C", str(REPO), "-o", ".venv/bin/dacapo-flow", "run"]
    return [*make, f"WORKDIR={workdir}", f"CONFIG={config}"]


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 600) -> None:
    """Run ``command`` in its own process group; SIGKILL the group once ``ready``."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    job = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while not ready():
        assert job.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting to kill the run"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()


def training_chunk_running(workdir: Path) -> bool:
    """The second chunk has started (its log exists) and is not finished."""
    run = workdir / "results/tiny"
    return (workdir / "logs/train/tiny/20.log").is_file() and not (
        run / "checkpoints/20.pt"
    ).exists()


def staged_blocks(workdir: Path) -> list[Path]:
    """Chunks written into a staged (unfinished) blockwise output."""
    return [
        p
        for staged in (workdir / "results").rglob(f"*{arrays.STAGING_SUFFIX}")
        for p in staged.rglob("*")
        if p.is_file() and not p.name.startswith(".") and ".daisy" not in p.parts
    ]


def test_killed_run_finishes_with_the_readme_command(finished, tmp_path):
    workdir = tmp_path / "wd"
    workdir.mkdir()
    config = write_config(workdir, TINY)
    command = readme_command(workdir, config)

    kill_when(command, lambda: training_chunk_running(workdir))
    assert (workdir / ".snakemake/incomplete").is_dir()
    assert not (workdir / "results/tiny/checkpoints/20.pt").exists()
    assert list((workdir / locks.LOCKS).glob("*.lock"))  # left by the killed run

    kill_when(command, lambda: bool(staged_blocks(workdir)))
    assert staged_blocks(workdir)  # a blockwise stage with finished blocks was killed

    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    done, fresh = finished[0] / "results/tiny", workdir / "results/tiny"
    best = [provenance.contents(arrays.read_json(r / "best.json")) for r in (fresh, done)]
    assert best[0] == best[1]  # contents: the provenance names other input times
    a, b = (arrays.open_array(r / "apply/test_a.zarr/segmentation") for r in (fresh, done))
    assert a.roi == b.roi and np.array_equal(a.to_ndarray(a.roi), b.to_ndarray(b.roi))
    assert not staged_blocks(workdir)


def test_live_lock_is_kept(tmp_path):
    """A lock of a directory where Snakemake runs is not removed."""
    lock = tmp_path / locks.LOCKS / "0.input.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    sleeper = subprocess.Popen(
        ["bash", "-c", "exec -a snakemake sleep 30"], cwd=tmp_path, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not locks.running_in(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert locks.running_in(tmp_path) == [sleeper.pid]
        with pytest.raises(locks.LiveLockError, match=str(sleeper.pid)):
            locks.remove_stale(tmp_path)
        assert lock.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert locks.remove_stale(tmp_path) == [lock] and not lock.exists()
