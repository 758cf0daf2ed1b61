"""TensorBoard event files of a run, made from its JSON artifacts (which stay the source
of truth): ``tensorboard --logdir results`` compares runs and repetitions.

Tags, each a scalar per iteration:

- ``train/loss``, ``train/learning_rate``, ``train/seconds_per_iteration``
  (``training_stats/{it}.json``);
- ``validation/{criterion}``: the best value over the post-processing parameter sets
  of that iteration, averaged over the validation datasets as the selection does,
  and ``validation/{dataset}/{criterion}`` for each dataset
  (``validation/{it}/scores.json``).

Values are stored as 64-bit floats (the JSON's values exactly, not rounded to
float32); each event's wall time is the run's training time up to its iteration, so
TensorBoard's "relative" axis is training time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from . import arrays
from .config import CRITERIA

TRAIN = {"loss": "loss", "learning_rate": "learning_rate", "seconds": "seconds_per_iteration"}


def training_scalars(stats_files: Iterable[str | Path]) -> Iterator[tuple[str, int, float]]:
    """(tag, iteration, value) of every iteration in the training statistics."""
    for path in stats_files:
        for entry in arrays.read_json(path)["iterations"]:
            for key, name in TRAIN.items():
                yield f"train/{name}", int(entry["iteration"]), float(entry[key])


def validation_scalars(score_files: Iterable[str | Path]) -> Iterator[tuple[str, int, float]]:
    """(tag, iteration, value): per criterion, the best over parameter sets, per dataset
    and of the mean over datasets (the selection's aggregate)."""
    for path in score_files:
        doc = arrays.read_json(path)
        iteration = int(doc["iteration"])
        datasets = sorted(doc["datasets"])
        for criterion, direction in sorted(CRITERIA.items()):
            best = np.min if direction == "lower" else np.max
            table = np.array(
                [
                    [r["scores"][criterion] for r in doc["datasets"][ds]["results"]]
                    for ds in datasets
                ]
            )  # (dataset, parameter set)
            for ds, row in zip(datasets, table, strict=True):
                yield f"validation/{ds}/{criterion}", iteration, float(best(row))
            yield f"validation/{criterion}", iteration, float(best(table.mean(axis=0)))


def write_events(
    out_dir: str | Path,
    stats_files: Iterable[str | Path],
    score_files: Iterable[str | Path] = (),
) -> Path:
    """One event file under ``out_dir`` with every scalar of the run."""
    from torch.utils.tensorboard import SummaryWriter

    stats_files = sorted(stats_files, key=lambda p: int(Path(p).stem))
    clock: dict[int, float] = {}
    elapsed = 0.0
    for path in stats_files:
        for entry in arrays.read_json(path)["iterations"]:
            elapsed += float(entry["seconds"])
            clock[int(entry["iteration"])] = elapsed

    def walltime(iteration: int) -> float:
        return max((t for it, t in clock.items() if it <= iteration), default=0.0)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(out_dir))
    try:
        for tag, iteration, value in (
            *training_scalars(stats_files),
            *validation_scalars(score_files),
        ):
            writer.add_scalar(
                tag,
                value,
                iteration,
                walltime=walltime(iteration),
                new_style=True,
                double_precision=True,
            )
    finally:
        writer.close()
    return out_dir


def read_scalars(log_dir: str | Path) -> dict[str, dict[int, float]]:
    """Every scalar in the event files of ``log_dir``: tag -> iteration -> value (as
    TensorBoard reads them)."""
    from tensorboard.backend.event_processing.event_accumulator import (
        TENSORS,
        EventAccumulator,
    )
    from tensorboard.util import tensor_util

    accumulator = EventAccumulator(str(log_dir), size_guidance={TENSORS: 0})
    accumulator.Reload()
    return {
        tag: {
            event.step: float(tensor_util.make_ndarray(event.tensor_proto))
            for event in accumulator.Tensors(tag)
        }
        for tag in accumulator.Tags()[TENSORS]
    }
