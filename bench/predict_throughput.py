"""Blockwise prediction throughput against one in-memory forward pass (the limit).

    .venv/bin/python bench/predict_throughput.py [--size 128] [--workers 1 2]

Prints voxels/s of `dacapo-flow predict` (daisy, N workers) and of a single
forward pass of the same model over the whole volume held in memory, and their
ratio. Weights are random: throughput does not depend on training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from funlib.geometry import Coordinate

from dacapo_core import arrays, config, train
from dacapo_core.model import ShapeError, output_shape
from dacapo_core.predict import Predictor, predict_blockwise

DEMO = config.load(Path(__file__).resolve().parents[1] / "config/config.yaml")


def whole_volume_input(arch: config.UNetConfig, size: int) -> int:
    """Smallest valid cubic input whose output covers ``size`` voxels."""
    n = size
    while True:
        try:
            if output_shape(arch, [n] * 3)[0] >= size:
                return n
        except ShapeError:
            pass
        n += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(2)
    resolved = DEMO.resolved_runs()["affs_unet"]
    arch = resolved.run.architecture
    tmp = Path(tempfile.mkdtemp())
    ckpt = tmp / "model.pt"
    model = train.new_model(resolved)
    train.save_checkpoint(
        ckpt, {"model": model.state_dict(), "model_config": train.model_config(resolved)}
    )
    n = whole_volume_input(arch, args.size)
    rng = np.random.default_rng(0)
    raw = arrays.write_numpy(
        f"{tmp}/b.zarr/raw", rng.integers(0, 255, (n, n, n), dtype=np.uint8), Coordinate(8, 8, 8)
    )
    context = (n - args.size) // 2
    roi = raw.roi.grow(
        Coordinate((-context * 8,) * 3), Coordinate((-(n - args.size - context) * 8,) * 3)
    )
    voxels = args.size**3

    predictor = Predictor.load(ckpt, "cpu")
    x = torch.from_numpy(raw[raw.roi][None, None].astype(np.float32) / 255)
    t0 = time.perf_counter()
    with torch.no_grad():
        predictor.model(x)
    limit = voxels / (time.perf_counter() - t0)
    print(f"volume {args.size}^3 (input {n}^3), one in-memory forward pass: {limit:,.0f} voxels/s")
    for workers in args.workers:
        t0 = time.perf_counter()
        predict_blockwise(ckpt, f"{tmp}/b.zarr/raw", f"{tmp}/b.zarr/pred{workers}", roi, workers)
        rate = voxels / (time.perf_counter() - t0)
        print(f"blockwise, {workers} worker(s): {rate:,.0f} voxels/s, ratio {rate / limit:.2f}")


if __name__ == "__main__":
    main()
