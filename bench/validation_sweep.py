"""Cost of scoring K thresholds: our graph sweep against K full re-segmentations.

    .venv/bin/python bench/validation_sweep.py [--shape 128 128 128] [--workers 2]

Ours as the rules run it: fragments and region graph once (rule fragments,
blockwise, the one-off column), then ``validate.score`` (rule validate_score): the
merge history, and one lookup table + score per threshold, from the fragments'
overlap with the GT (the K = 20 vs K = 1 ratio of this column is the sweep's cost). The
DaCapo approach segments the whole volume again for every threshold (one
waterz call: watershed + agglomeration) and scores each. Both read the same
prediction (a zarr of smoothed, noisy affinities of synthetic cells) and score
with the same ``evaluate``; waterz gets the affinities in memory, read once
outside its timing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # daisy's progress bars, before it is imported

import numpy as np
import waterz
from funlib.geometry import Coordinate
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core import arrays
from dacapo_core.config import WatershedConfig
from dacapo_core.demo import cells, membranes
from dacapo_core.evaluate import evaluate
from dacapo_core.segment.blockwise import fragments_blockwise
from dacapo_core.stages import ScoreStage
from dacapo_core.validate import score


def volume(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Noisy affinities and their GT (cells, membranes 0)."""
    rng = np.random.default_rng(0)
    labels = cells(shape, diameter=20, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    noisy = np.clip(affs + rng.normal(scale=0.02, size=affs.shape), 0, 1)
    return np.ascontiguousarray(noisy, dtype=np.float32), labels


def quiet_waterz(affs: np.ndarray, threshold: float) -> np.ndarray:
    """waterz prints from C++: silence fd 1 while it runs."""
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            return next(iter(waterz.agglomerate(affs, [threshold]))).copy()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def fragments_once(tmp: str, prediction: str, workers: int) -> float:
    """Seconds of fragments + region graph (rule fragments)."""
    t0 = time.perf_counter()
    block = Coordinate(arrays.open_array(prediction).data.chunksize[1:])
    fragments_blockwise(
        prediction, f"{tmp}/f.zarr/fragments", f"{tmp}/f.zarr.graph", None, block, workers
    )
    return time.perf_counter() - t0


def graph_sweep(tmp: str, gt: str, thresholds: list[float]) -> float:
    """Seconds of the merge history and K lookups + scores (rule validate_score)."""
    grid = WatershedConfig(thresholds=thresholds, merge_function=["mean"])
    stage = ScoreStage(gt=gt, parameter_sets=grid.parameter_sets(), criterion="voi")
    out = f"{tmp}/k{len(thresholds)}.zarr/segmentation"
    return score(f"{tmp}/f.zarr/fragments", f"{tmp}/f.zarr.graph", out, stage)["seconds"]["sweep"]


def resegment(affs: np.ndarray, gt: np.ndarray, thresholds: list[float]) -> float:
    """Seconds of K waterz segmentations of the whole volume, each scored."""
    t0 = time.perf_counter()
    for t in thresholds:
        evaluate(quiet_waterz(affs, t), gt)
    return time.perf_counter() - t0


def sweep_cost(tmp: str, gt: str, repeats: int) -> str:
    """The scoring job with 20 thresholds against 1: medians of interleaved runs (one
    run of under a second varies by a third on a shared machine)."""
    grids = {1: [0.5], 20: [float(t) for t in np.linspace(0.05, 0.95, 20)]}
    runs: dict[int, list[float]] = {k: [] for k in grids}
    for _ in range(repeats):
        for k, thresholds in grids.items():
            runs[k].append(graph_sweep(tmp, gt, thresholds))
    one, twenty = (float(np.median(runs[k])) for k in grids)
    return (
        f"scoring job, median of {repeats}: 20 thresholds {twenty:.2f} s, 1 threshold "
        f"{one:.2f} s, ratio {twenty / one:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 128, 128])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="of the K = 1 / K = 20 ratio")
    args = parser.parse_args()
    affs, labels = volume(tuple(args.shape))
    with tempfile.TemporaryDirectory() as tmp:
        prediction, gt = f"{tmp}/data.zarr/prediction", f"{tmp}/data.zarr/gt"
        arrays.write_numpy(prediction, affs, Coordinate(8, 8, 8))
        arrays.write_numpy(gt, labels, Coordinate(8, 8, 8))
        print(f"affinities {tuple(args.shape)}, {args.workers} workers; seconds")
        print(" K | fragments+graph | K lookups+scores | ours total | K waterz+scores | speed-up")
        once = fragments_once(tmp, prediction, args.workers)
        for k in (1, 5, 20):
            thresholds = [float(t) for t in np.linspace(0.05, 0.95, k)] if k > 1 else [0.5]
            each = graph_sweep(tmp, gt, thresholds)
            theirs = resegment(affs, labels, thresholds)
            print(
                f"{k:2d} | {once:15.2f} | {each:16.2f} | {once + each:10.2f} | "
                f"{theirs:15.2f} | {theirs / (once + each):7.2f}x"
            )
        print(sweep_cost(tmp, gt, args.repeats))


if __name__ == "__main__":
    main()
