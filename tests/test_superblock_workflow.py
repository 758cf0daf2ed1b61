"""An apply target of several superblocks in the real workflow: one job per superblock
and octree chunk, and the segmentation of the same target as one superblock."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from conftest import copy_workdir, ran_rules, snakemake, write_config

from dacapo_core import arrays

#: test_a (56 x 112 x 112 voxels) in blocks of 40: superblocks of 40 x 120 x 120 are 2 x 1 x 1
SUPERBLOCKS = 2


def with_superblocks(config: dict) -> dict:
    config = copy.deepcopy(config)
    entry = {**config["apply"][0], "name": "test_sb", "superblock_shape": [40, 120, 120]}
    config["apply"].append(entry)
    return config


def read(path) -> np.ndarray:
    array = arrays.open_array(path)
    return array.to_ndarray(array.roi)


@pytest.mark.slow
def test_superblock_jobs_make_the_one_superblock_segmentation(finished, tmp_path):
    workdir = copy_workdir(finished[0], tmp_path / "wd")
    config = write_config(workdir, with_superblocks(yaml.safe_load(finished[1].read_text())))
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ran_rules(result) == {
        "choose": 1,  # the new target's choice (best.json is there: nothing is trained)
        "prepare_prediction": 1,
        "predict_superblock": SUPERBLOCKS,
        "publish_prediction": 1,
        "prepare_fragments": 1,
        "fragments_superblock": SUPERBLOCKS,
        "edges_superblock": SUPERBLOCKS,
        "publish_fragments": 1,
        "agglomerate_chunk": SUPERBLOCKS + 1,  # the leaves and the root
        "label_chunk": SUPERBLOCKS + 1,
        "prepare_segmentation": 1,
        "relabel_superblock": SUPERBLOCKS,
        "publish_segmentation": 1,
        "plot_slices": 1,
    }
    apply = workdir / "results/tiny/apply"
    for name in ("prediction", "fragments", "segmentation"):
        one = read(apply / f"test_a.zarr/{name}")
        assert np.array_equal(read(apply / f"test_sb.zarr/{name}"), one), name
    shards = sorted(p.name for p in (apply / "test_sb.zarr.graph/rows").iterdir())
    assert len(shards) == SUPERBLOCKS
    assert not list(apply.glob("test_sb.zarr/*.partial"))  # published, nothing staged
    assert not list((apply / "test_sb.superblocks").rglob("*.done"))  # temporary

    again = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert again.returncode == 0 and ran_rules(again) == {}


def test_a_superblock_shape_of_partial_blocks_stops_the_plan(finished, tmp_path, tiny_config):
    workdir = copy_workdir(finished[0], tmp_path / "wd")
    config = with_superblocks(yaml.safe_load(finished[1].read_text()))
    config["apply"][1]["superblock_shape"] = [40, 60, 80]
    result = snakemake(workdir, "-n", "--configfile", str(write_config(workdir, config)))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "config error: apply target test_sb: superblock_shape [40, 60, 80] must be a multiple "
        "of the block shape [40, 40, 40] along each axis (voxels)"
    )
