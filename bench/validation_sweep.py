"""Cost of scoring K thresholds: one region-graph sweep vs K full re-segmentations.

    .venv/bin/python bench/validation_sweep.py [--shape 64 128 128]

The graph sweep (ours) computes fragments and the merge history once, then one
lookup table + relabel per threshold. The DaCapo approach re-runs watershed and
agglomeration (waterz) for every threshold. Same affinities for both: smoothed,
noisy affinities of synthetic cells.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import waterz
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core import postprocess
from dacapo_core.demo import cells, membranes


def affinities(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    labels = cells(shape, diameter=20, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    noisy = np.clip(affs + rng.normal(scale=0.02, size=affs.shape), 0, 1)
    return np.ascontiguousarray(noisy, dtype=np.float32)


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


def graph_sweep(affs: np.ndarray, thresholds: list[float]) -> float:
    t0 = time.perf_counter()
    frags = postprocess.fragments(affs)
    pad = [(1, 0)] * 3
    pairs, stats = postprocess.edges(np.pad(frags, pad), np.pad(affs, [(0, 0), *pad]))
    history = postprocess.merge_history(
        postprocess.Graph(np.unique(frags[frags > 0]), pairs, stats)
    )
    for t in thresholds:
        postprocess.relabel(frags, *history.lookup(t))
    return time.perf_counter() - t0


def resegment(affs: np.ndarray, thresholds: list[float]) -> float:
    t0 = time.perf_counter()
    for t in thresholds:
        quiet_waterz(affs, t)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    args = parser.parse_args()
    affs = affinities(tuple(args.shape))
    print(f"affinities {tuple(args.shape)}")
    for k in (1, 5, 20):
        thresholds = list(np.linspace(0.05, 0.95, k)) if k > 1 else [0.5]
        ours, theirs = graph_sweep(affs, thresholds), resegment(affs, thresholds)
        print(
            f"K={k:2d}: graph sweep {ours:6.2f} s, {k} re-segmentations {theirs:6.2f} s, "
            f"speed-up {theirs / ours:5.2f}x"
        )


if __name__ == "__main__":
    main()
