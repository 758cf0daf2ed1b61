"""Running a daisy task honestly: scheduler on loopback, failed blocks fail loudly,
finished blocks tracked so that a killed job, rerun, does only the rest.

A stage writes into a staged output (``arrays.staging``) that carries daisy's
block tracking; ``publish`` drops the tracking and gives the result its final
name, so nothing unfinished ever looks complete.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import daisy
from funlib.geometry import Coordinate, Roi

from . import arrays

log = logging.getLogger(__name__)


class BlockwiseError(RuntimeError):
    """Some blocks of a task did not complete."""


class BlockWorker:
    """A daisy worker: set up once (open arrays, load a model), then process blocks
    until none are left. Subclasses implement ``setup`` and ``process``.

    With several workers, daisy spawns a process per worker that runs ``__call__``;
    with one, ``run`` calls ``process_block`` in the job's own process, which saves
    the worker's start-up (an interpreter and its imports, seconds per stage)."""

    #: daisy's id of this worker process (0 .. num_workers - 1), known in ``setup``
    worker_id: int = 0
    #: set up in this process (a spawned worker gets a copy made before it was)
    ready: bool = False

    def setup(self) -> None:
        """Per-process preparation; runs in the worker, not in the scheduler."""

    def process(self, block: daisy.Block) -> None:
        raise NotImplementedError

    def process_block(self, block: daisy.Block) -> None:
        """One block, set up first if needed; an error names the block (daisy reports
        only the last line of a worker's error)."""
        try:
            if not self.ready:
                self.setup()
                self.ready = True
            self.process(block)
        except Exception as e:
            where = arrays.format_roi(block.write_roi)
            what = " ".join(str(e).split())  # one line
            raise BlockwiseError(
                f"block {block.block_id[1]} {where}: {type(e).__name__}: {what}"
            ) from e

    def __call__(self) -> None:
        client = daisy.Client()
        self.worker_id = max(0, client.worker_id)
        while True:
            with client.acquire_block() as block:
                if block is None:
                    return
                self.process_block(block)


#: folder inside a staged output where daisy records finished blocks
TRACKING = ".daisy"


def task_id(stage: str, output: str | Path) -> str:
    """A stable task id (no timestamp), so block tracking can resume a killed job."""
    return f"{stage}_" + re.sub(r"[^A-Za-z0-9]+", "_", str(output)).strip("_")


def publish(*paths: str | Path) -> None:
    """Finished: drop the block tracking of each staged output, then rename it."""
    for path in paths:
        shutil.rmtree(Path(arrays.staging(path)) / TRACKING, ignore_errors=True)
        arrays.publish(path)


def block_shape_multiple(block_shape: Coordinate, unit: Coordinate) -> Coordinate:
    """Round ``block_shape`` up to a multiple of ``unit`` (both in voxels)."""
    return Coordinate(-(-b // u) * u for b, u in zip(block_shape, unit, strict=True))


def run(
    stage: str,
    output: str | Path,
    total_roi: Roi,
    read_roi: Roi,
    write_roi: Roi,
    worker: BlockWorker,
    num_workers: int,
    log_dir: str | Path | None = None,
) -> None:
    """Run ``worker`` over blocks: in worker processes, or with ``num_workers`` 1 in
    this process.

    Blocks finished by an earlier, killed run of the same stage into the same
    ``output`` (tracked in ``output/.daisy/stage``) are skipped. Worker logs go to
    ``log_dir``, by default ``output/.daisy/logs`` (kept while the output is staged). Raises
    BlockwiseError naming the task and the first worker error if any block
    failed permanently: daisy itself only reports it in the returned states. In this
    process a failed block is not retried: the job fails, and its rerun resumes.
    """
    # daisy's log directory is global: set it on every run, beside the output by default
    daisy.logging.set_log_basedir(str(log_dir or Path(output) / TRACKING / "logs"))
    in_process = num_workers == 1
    task = daisy.Task(
        task_id(stage, output),
        total_roi=total_roi,
        read_roi=read_roi,
        write_roi=write_roi,
        process_function=worker.process_block if in_process else worker,
        read_write_conflict=False,
        fit="shrink",
        max_workers=num_workers,
        max_retries=2,
        tracking_path=str(Path(output) / TRACKING / stage),
    )
    host = os.environ.get("DAISY_HOST", "127.0.0.1")  # never all interfaces by default
    try:
        serial = {"multiprocessing": False} if in_process else {}
        states = daisy.run_blockwise([task], host=host, return_states=True, summary=False, **serial)
    except BlockwiseError as e:  # in this process: the first failed block ends the run
        raise BlockwiseError(f"{stage}: a block failed writing {output}; {e}") from e
    state = states[task.task_id]
    log.info(
        "%s: %d of %d blocks done, %d of them by an earlier run",
        stage,
        state.completed_count,
        state.total_block_count,
        state.skipped_count,
    )
    if state.failed_count or state.orphaned_count or not state.is_done():
        error = (state.first_worker_error or "no error message").strip().splitlines()[-1]
        raise BlockwiseError(
            f"{stage}: {state.failed_count} of {state.total_block_count} blocks failed "
            f"({state.orphaned_count} orphaned) writing {output}; first error: {error}"
        )
