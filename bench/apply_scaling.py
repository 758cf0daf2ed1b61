"""Apply at scale: blockwise predict and segment against their in-memory limits,
and peak memory per worker as the volume grows at a fixed block size.

    .venv/bin/python bench/apply_scaling.py [--size 128] [--rss-sizes 128 256 384]

Printed, all measured in this run on this machine:
- predict voxels/s with 1 and 2 workers against one in-memory forward pass of
  the same (demo) network over the same volume (the limit; target ratio >= 0.8);
- segment voxels/s with 1 and 2 workers against whole-volume waterz on the
  same affinities;
- peak RSS of a job with one worker (which runs its blocks in its own process), and
  its voxels/s (one core), for predict and segment, for cubic volumes of the given
  sizes at a fixed block size: as one superblock (the whole volume) and in
  superblocks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import waterz
from funlib.geometry import Coordinate, Roi
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core import arrays, checkpoint, config, train
from dacapo_core.demo import cells, membranes
from dacapo_core.predict import Predictor, predict_blockwise
from dacapo_core.stages import TrainStage

REPO = Path(__file__).resolve().parents[1]
VS = Coordinate(8, 8, 8)


def make_checkpoint(path: Path) -> Predictor:
    """The demo network, untrained: speed does not depend on the weights."""
    experiment = config.load(REPO / "config/config.yaml")
    stage = TrainStage.of(experiment.resolved_runs()["affs_unet"], experiment.datasets)
    state = {"model": train.new_model(stage).state_dict()}
    checkpoint.save_checkpoint(path, {**state, "model_config": checkpoint.model_config(stage)})
    return Predictor.load(path, 3, "cpu")


def make_raw(path: str, size: int, context: Coordinate) -> Roi:
    """Raw with the network's context around a ``size``^3 ROI; returns that ROI."""
    shape = Coordinate((size,) * 3) + context * 2
    rng = np.random.default_rng(0)
    data = ndimage.gaussian_filter(rng.uniform(0, 255, tuple(shape)), 2).astype(np.uint8)
    raw = arrays.write_numpy(path, data, VS)
    return raw.roi.grow(-context * VS, -context * VS)


def make_affinities(path: str, size: int) -> np.ndarray:
    """Cells with membranes, smoothed and noisy: affinities like a trained network's."""
    rng = np.random.default_rng(3)
    labels = cells((size,) * 3, diameter=16, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    affs = np.clip(affs + rng.normal(scale=0.02, size=affs.shape), 0, 1).astype(np.float32)
    roi = Roi((0,) * 3, Coordinate(affs.shape[1:]) * VS)
    array = arrays.prepare_array(path, roi, VS, np.float32, 3, Coordinate(64, 64, 64))
    array[array.roi] = affs
    return affs


def timed(function, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - t0


def predict_speed(tmp: Path, size: int, workers: list[int]) -> None:
    ckpt = tmp / "model.pt"
    predictor = make_checkpoint(ckpt)
    context = predictor.context(VS) / VS
    roi = make_raw(f"{tmp}/p.zarr/raw", size, context)
    raw = arrays.open_array(f"{tmp}/p.zarr/raw")
    window = predictor.window(Coordinate((size,) * 3))
    x = torch.from_numpy(raw.to_ndarray(raw.roi).astype(np.float32)[None, None] / 255)
    x = x[(..., *(slice(0, w + 2 * c) for w, c in zip(window, context, strict=True)))]
    with torch.no_grad():
        seconds = timed(predictor.model, x)
    limit = np.prod(window) / seconds
    print(f"predict {size}^3, one in-memory forward pass ({window} out): {limit:,.0f} voxels/s")
    for n in workers:
        out = f"{tmp}/p.zarr/prediction{n}"
        rate = size**3 / timed(predict_blockwise, ckpt, f"{tmp}/p.zarr/raw", out, roi, n)
        print(f"  blockwise, {n} worker(s): {rate:,.0f} voxels/s, ratio {rate / limit:.2f}")


def segment_speed(tmp: Path, size: int, workers: list[int], block: int) -> None:
    from dacapo_core.segment import segment_blockwise

    affs = make_affinities(f"{tmp}/s.zarr/affs", size)
    seconds = timed(lambda: next(iter(waterz.agglomerate(affs, [0.5]))))
    limit = size**3 / seconds
    print(f"segment {size}^3, whole-volume waterz at 0.5: {limit:,.0f} voxels/s")
    for n in workers:
        out = f"{tmp}/s.zarr/seg{n}"
        seconds = timed(
            segment_blockwise,
            f"{tmp}/s.zarr/affs",
            out,
            0.5,
            num_workers=n,
            block_shape=(block,) * 3,
        )
        rate = size**3 / seconds
        print(f"  {block}^3 blocks, {n} worker(s): {rate:,.0f} voxels/s, ratio {rate / limit:.2f}")


#: run in a fresh interpreter; peaks are VmHWM (getrusage's maxrss would include the
#: RSS of the process that forked it), workers' sampled while they run
MEASURE = """
import json, os, sys, threading
from pathlib import Path
from funlib.geometry import Coordinate

def hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

def descendants(pid):  # children of every thread: daisy starts workers from its own
    tasks = Path(f"/proc/{pid}/task").iterdir()
    children = [int(c) for t in tasks for c in (t / "children").read_text().split()]
    return children + [d for c in children for d in descendants(c)]

peak, done = {"worker": 0}, threading.Event()
def watch():
    while not done.wait(0.1):
        try:  # a worker may exit while we read it
            peak["worker"] = max([peak["worker"], *map(hwm, descendants(os.getpid()))])
        except OSError:
            pass
threading.Thread(target=watch, daemon=True).start()
stage, tmp, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
superblock = (int(sys.argv[4]),) * 3 if int(sys.argv[4]) else None
import time
start = time.perf_counter()
if stage == "predict":
    from dacapo_core.predict import predict_blockwise
    predict_blockwise(f"{tmp}/model.pt", f"{tmp}/m.zarr/raw", f"{tmp}/m.zarr/prediction", None, 1,
                      Coordinate((block,) * 3), superblock_shape=superblock)
else:
    from dacapo_core.segment import segment_blockwise
    segment_blockwise(f"{tmp}/m.zarr/affs", f"{tmp}/m.zarr/seg", 0.5, block_shape=(block,) * 3,
                      num_workers=1, superblock_shape=superblock)
done.set()
seconds = time.perf_counter() - start
print(json.dumps({"job": hwm("self"), "worker": peak["worker"], "seconds": seconds}))
"""


def peak_rss(tmp: Path, sizes: list[int], block: int, superblock: int) -> None:
    """Per job: peak RSS of its process tree, and voxels per second (1 worker: per
    core), as one superblock (today's path) and in superblocks."""
    print(f"{block}^3 blocks, 1 worker: peak RSS of the job (MiB), voxels/s")
    make_checkpoint(tmp / "model.pt")
    for size in sizes:
        rng = np.random.default_rng(0)
        raw = rng.integers(0, 255, (size,) * 3, dtype=np.uint8)
        arrays.write_numpy(f"{tmp}/m.zarr/raw", raw, VS)
        make_affinities(f"{tmp}/m.zarr/affs", size)
        row = []
        for stage in ("predict", "segment"):
            for parts in (0, superblock):
                result = subprocess.run(
                    [sys.executable, "-c", MEASURE, stage, str(tmp), str(block), str(parts)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rss = json.loads(result.stdout.strip().splitlines()[-1])
                how = f"{parts}^3 superblocks" if parts else "whole"
                peak = max(rss["job"], rss["worker"]) / 1024
                row.append(f"{stage} {how} {peak:,.0f} MiB, {size**3 / rss['seconds']:,.0f} vox/s")
        print(f"  {size}^3: " + "; ".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--segment-block", type=int, default=64)
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=[128, 256, 384])
    parser.add_argument("--rss-block", type=int, default=64)
    parser.add_argument("--superblock", type=int, default=128, help="voxels per axis")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        predict_speed(Path(tmp), args.size, args.workers)
        segment_speed(Path(tmp), args.size, args.workers, args.segment_block)
        peak_rss(Path(tmp), args.rss_sizes, args.rss_block, args.superblock)


if __name__ == "__main__":
    main()
