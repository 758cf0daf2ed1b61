"""Test-time augmentation's cost: one prediction of a SIZE^3 ROI (one block) with the
demo network (config/config.yaml) and each ``test_time_augmentation``.

    .venv/bin/python bench/tta_cost.py [--size 96] [--threads 2] [--modes none mirror ...]

Printed, all measured in this run on this machine: per mode the views it averages,
the seconds of ``Predictor.predict`` (best of ``--repeats``, after one warm-up
forward pass), and the ratio to ``none``: about the number of views, a little more
for the affinities' margin (the largest offset, rounded up to the grid step, predicted
before the ROI on each axis) and for mirroring and undoing the arrays.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import get_args

import torch
from apply_scaling import VS, make_checkpoint, make_raw

from dacapo_core import arrays, tta
from dacapo_core.predict import Predictor


def seconds(predictor: Predictor, raw: arrays.Array, roi, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(raw, roi)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="voxels per axis of the ROI")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    modes = list(get_args(tta.Mode))
    parser.add_argument("--modes", nargs="+", choices=modes, default=modes)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        make_checkpoint(ckpt)
        widest = Predictor.load(ckpt, 3, "cpu", "mirror_transpose")
        roi = make_raw(f"{tmp}/raw.zarr/raw", args.size, widest.context(VS) / VS)
        raw = arrays.open_array(f"{tmp}/raw.zarr/raw")
        first = Predictor.load(ckpt, 3, "cpu")
        with torch.no_grad():  # warm-up: torch's first pass allocates
            first.model(torch.zeros((1, 1, *first.input_shape)))
        print(f"{args.size}^3 voxels, demo network, {args.threads} threads, CPU")
        baseline = None
        for mode in ["none", *[m for m in args.modes if m != "none"]]:
            predictor = Predictor.load(ckpt, 3, "cpu", mode)
            views = len(predictor.augmentations(VS))
            took = seconds(predictor, raw, roi, args.repeats)
            baseline = baseline or took
            print(
                f"  {mode:>16}: {views:2d} views, {took:7.1f} s, {took / baseline:5.1f}x none "
                f"({took / baseline / views:.2f}x per view)"
            )


if __name__ == "__main__":
    main()
