"""Superblocks: the partition, and a segmentation superblock by superblock that is the
whole-volume one, in memory that does not grow with the volume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core import arrays
from dacapo_core.chunk_cache import ChunkCache
from dacapo_core.demo import cells, membranes
from dacapo_core.superblocks import SuperblockError, Superblocks

#: peak RSS (MiB) of the largest process of a command's process tree
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def test_a_volume_is_cut_into_whole_blocks():
    roi = Roi((10, 0, 0), (100, 60, 20))  # world units
    plan = Superblocks.plan(roi, Coordinate(10, 2, 2), (2, 5, 5), (4, 10, 10))
    assert plan.grid == (3, 3, 1) and len(plan) == 9
    assert plan.roi_of((2, 2, 0)) == Roi((90, 40, 0), (20, 20, 20))  # cut by the end
    assert plan.index_of(Coordinate(95, 45, 5)) == (2, 2, 0)
    assert sorted(plan.around((0, 0, 0))) == [(0, 1, 0), (1, 0, 0), (1, 1, 0)]
    assert sorted(plan.around((1, 1, 0), behind=True)) == [(0, 0, 0), (0, 1, 0), (1, 0, 0)]
    assert plan.within(Roi((10, 0, 0), (40, 20, 20))) == [(0, 0, 0)]
    assert len(Superblocks.plan(roi, Coordinate(10, 2, 2), (2, 5, 5), None)) == 1


def test_a_superblock_of_partial_blocks_is_a_one_line_error():
    with pytest.raises(SuperblockError) as error:
        Superblocks.plan(Roi((0, 0), (64, 64)), Coordinate(1, 1), (16, 16), (24, 32))
    assert str(error.value) == (
        "superblock_shape [24, 32] must be a multiple of the block shape [16, 16] "
        "along each axis (voxels)"
    )


def affinities(path: str, edge: int) -> None:
    """Cells with membranes and noisy smooth affinities of them, ``edge``^3 voxels."""
    rng = np.random.default_rng(edge)
    labels = cells((edge,) * 3, diameter=14, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    affs = np.clip(affs + rng.normal(scale=0.08, size=affs.shape), 0, 1)
    arrays.write_numpy(path, affs.astype(np.float32), Coordinate(8, 8, 8))


def segment(affs: str, out: str, superblock: int | None, block: int = 24) -> float:
    """``dacapo-flow segment`` in its own process tree; its peak memory (MiB). Dense
    fragments (seeds 1 voxel apart): a large region graph for the volume."""
    cli = [sys.executable, "-m", "dacapo_core.cli", "segment", "--affinities", affs]
    cli += ["--out", out, "--threshold", "0.5", "--min-size", "50", "--workers", "1"]
    cli += ["--seed-distance", "1"]
    cli += ["--block-shape", *[str(block)] * 3]
    if superblock:
        cli += ["--superblock-shape", *[str(superblock)] * 3]
    result = subprocess.run([sys.executable, "-c", PEAK, *cli], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.strip().splitlines()[-1])


def read(path: str) -> np.ndarray:
    array = arrays.open_array(path)
    return array.to_ndarray(array.roi)


def test_segment_by_superblocks_is_the_whole_volume_segmentation(tmp_path):
    """27 superblocks, each its own shard and octree leaf: the same segment ids as one
    whole-volume agglomeration, voxel for voxel."""
    affs = f"{tmp_path}/v.zarr/affs"
    affinities(affs, 72)
    segment(affs, f"{tmp_path}/v.zarr/whole", None)
    segment(affs, f"{tmp_path}/v.zarr/parts", 24)
    whole, parts = read(f"{tmp_path}/v.zarr/whole"), read(f"{tmp_path}/v.zarr/parts")
    assert np.array_equal(whole, parts)
    assert len(np.unique(whole)) > 50
    shards = sorted(p.name for p in (tmp_path / "v.parts.graph/rows").iterdir())
    assert len(shards) == 27 and shards[0] == "0_0_0.sqlite" and shards[-1] == "2_2_2.sqlite"
    assert [p.name for p in (tmp_path / "v.whole.graph/rows").iterdir()] == ["0_0_0.sqlite"]


@pytest.mark.slow
def test_memory_follows_the_superblock_not_the_volume(tmp_path):
    """The volume grows 27x: segmenting it superblock by superblock, the largest
    process of the tree stays within 1.5x, plus the fragment workers' affinity chunk
    cache, whose budget is fixed by block and chunk shape (the chunks a 32^3 block's
    64^3 window spans: 8, 24 MiB) and which the 64^3 volume's one chunk cannot fill;
    one whole-volume superblock grows."""
    peaks, cache = {}, {}
    for edge in (64, 192):
        affs = f"{tmp_path}/v{edge}.zarr/affs"
        affinities(affs, edge)
        peaks[edge] = {
            "superblocks": segment(affs, f"{tmp_path}/v{edge}.zarr/parts", 64, 32),
            "whole": segment(affs, f"{tmp_path}/v{edge}.zarr/whole", None, 32),
        }
        cache[edge] = ChunkCache(zarr.open_array(affs, mode="r"), (64, 64, 64)).max_bytes / 2**20
    print(json.dumps(peaks))
    assert cache[192] == 24 and cache[64] == 3  # all of the small volume, one chunk
    assert peaks[192]["superblocks"] <= 1.5 * peaks[64]["superblocks"] + cache[192] - cache[64]
    assert peaks[192]["whole"] > 1.5 * peaks[64]["whole"]


def test_cli_names_a_bad_superblock_shape_in_one_line(tmp_path):
    affs = f"{tmp_path}/v.zarr/affs"
    affinities(affs, 24)
    cli = [sys.executable, "-m", "dacapo_core.cli", "segment", "--affinities", affs]
    cli += ["--out", f"{tmp_path}/v.zarr/seg", "--threshold", "0.5", "--block-shape", "8", "8"]
    cli += ["8", "--superblock-shape", "12", "12", "12"]
    result = subprocess.run(cli, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "dacapo-flow segment: error: superblock_shape [12, 12, 12] must be a multiple of the "
        "block shape [8, 8, 8] along each axis (voxels)"
    ]
    assert not Path(f"{tmp_path}/v.zarr/seg").exists()
