"""Blockwise segmentation against whole-volume waterz on the same affinities, with raw
seconds, and optionally the same runs with another checkout's code (before / after).

    .venv/bin/python bench/segment_throughput.py [--size 256] [--blocks 64 128]
        [--workers 1 2] [--before DIR] [--repeats 1]

The affinities are ``apply_scaling.make_affinities`` (cells with membranes, smoothed and
noisy), threshold 0.5, mean merging. Each blockwise run is a fresh interpreter timing
``segment_blockwise`` alone (imports excluded, worker processes' start-up included),
and prints its segmentation's sha256: the speed work must not change a voxel. With
``--before DIR`` (e.g. a ``git worktree`` of an older commit) every run is repeated with
``dacapo_core`` imported from DIR, interleaved, so both see the same machine load;
with ``--repeats N`` every run (waterz's too) is made N times and the median printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import waterz

sys.path.insert(0, str(Path(__file__).parent))
from apply_scaling import make_affinities  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: one blockwise run in a fresh interpreter: prints seconds and the output's sha256
RUN = """
import hashlib, sys, time
from dacapo_core import arrays
from dacapo_core.segment import segment_blockwise
affs, out, block, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
segment_blockwise(affs, out, 0.5, num_workers=workers, block_shape=(block,) * 3)
seconds = time.perf_counter() - start
seg = arrays.open_array(out)
print(seconds, hashlib.sha256(arrays.read(seg, seg.roi).tobytes()).hexdigest())
"""


def blockwise(code: Path, affs: str, out: str, block: int, workers: int) -> tuple[float, str]:
    """Seconds and sha256 of one blockwise segmentation with ``dacapo_core`` from ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    args = [sys.executable, "-c", RUN, affs, out, str(block), str(workers)]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=True, cwd=code)
    seconds, digest = result.stdout.split()[-2:]
    return float(seconds), digest


def waterz_seconds(affs: np.ndarray) -> float:
    """Seconds of whole-volume waterz at threshold 0.5: the limit of the ratios."""
    start = time.perf_counter()
    next(iter(waterz.agglomerate(affs, [0.5])))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--before", type=Path, help="a checkout with the code to compare")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    codes = {"after": REPO, **({"before": args.before.resolve()} if args.before else {})}
    with tempfile.TemporaryDirectory() as tmp:
        affs_path = f"{tmp}/s.zarr/affs"
        affs = make_affinities(affs_path, args.size)
        limit = statistics.median(waterz_seconds(affs) for _ in range(args.repeats))
        print(f"{args.size}^3, threshold 0.5; whole-volume waterz: {limit:.1f} s")
        for block in args.blocks:
            for workers in args.workers:
                runs: dict[str, list[tuple[float, str]]] = {name: [] for name in codes}
                for i in range(args.repeats):
                    for name, code in codes.items():
                        out = f"{tmp}/s.zarr/{name}_{block}_{workers}_{i}"
                        runs[name].append(blockwise(code, affs_path, out, block, workers))
                for name, results in runs.items():
                    seconds = statistics.median(s for s, _ in results)
                    digests = sorted({d[:12] for _, d in results})
                    print(
                        f"  {block}^3 blocks, {workers} worker(s), {name}: {seconds:.1f} s, "
                        f"ratio {limit / seconds:.2f}, sha256 {' '.join(digests)}"
                    )
        print(f"voxels: {np.prod([args.size] * 3):,}")


if __name__ == "__main__":
    main()
