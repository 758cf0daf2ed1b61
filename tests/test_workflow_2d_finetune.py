"""A 2D experiment through the real workflow, with a run fine-tuned from another."""

from __future__ import annotations

import json

import pytest
from conftest import planned_jobs, snakemake, write_config
from funlib.geometry import Coordinate

from dacapo_core import arrays
from dacapo_core.demo import make_demo

pytestmark = pytest.mark.slow

ARCH_2D = {
    "input_shape": [44, 44],
    "eval_shape_increase": [16, 16],
    "fmaps": 4,
    "fmap_inc_factor": 2,
    "downsample_factors": [[2, 2]],
}


def sections(workdir) -> None:
    """One z section of each demo volume, as 2D arrays (raw cropped to its labels)."""
    make_demo(f"{workdir}/demo.zarr", seed=0)
    for name in ("train", "validate", "test"):
        gt = arrays.open_array(f"{workdir}/demo.zarr/{name}/labels")
        raw = arrays.open_array(f"{workdir}/demo.zarr/{name}/raw")
        middle = gt.shape[0] // 2
        for role, array in (("raw", raw), ("labels", gt)):
            data = array.to_ndarray(gt.roi)[middle]
            arrays.write_numpy(f"{workdir}/flat.zarr/{name}/{role}", data, Coordinate(8, 8))


def experiment() -> dict:
    def dataset(name: str) -> dict:
        return {"container": "flat.zarr", "raw": f"{name}/raw", "gt": f"{name}/labels"}

    run = {
        "datasplit": {"train": ["train"], "validate": ["validate"]},
        "task": {"neighborhood": [[1, 0], [0, 1], [3, 0], [0, 3]]},
        "architecture": ARCH_2D,
        "trainer": {"augments": [{"type": "simple"}, {"type": "elastic"}], "snapshot_interval": 4},
        "train_until": 4,
        "validation_interval": 2,
        "post_processor": {"thresholds": [0.5], "fragments": {"context": 4}},
    }
    tuned = {
        **run,
        "task": {"neighborhood": [[1, 0], [0, 1]]},  # another head: 2 channels, not 4
        "train_until": 2,
        "start": {"run": "flat", "criterion": "voi"},
    }
    return {
        "datasets": {n: dataset(n) for n in ("train", "validate", "test")},
        "runs": {"flat": run, "tuned": tuned},
        "apply": [{"run": "tuned", "input": "test", "block_shape": [40, 40]}],
    }


def test_2d_runs_and_fine_tuning_from_the_selected_checkpoint(tmp_path):
    sections(tmp_path)
    cfg = write_config(tmp_path, experiment())
    dry = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry)["select"] == 2  # tuned waits for flat's selection
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results"
    best = json.loads((results / "flat/best.json").read_text())["voi"]["iteration"]
    stats = json.loads((results / "tuned/training_stats/2.json").read_text())
    origin = stats["initialised_from"]
    assert origin["checkpoint"] == f"results/flat/checkpoints/{best}.pt"
    assert [line.split()[0] for line in origin["fresh"]] == ["head.weight", "head.bias"]
    snapshot = arrays.open_array(results / "flat/snapshots/4.zarr/raw")
    assert snapshot.voxel_size == Coordinate(8, 8)
    seg = arrays.open_array(results / "tuned/apply/test.zarr/segmentation")
    raw = arrays.open_array(tmp_path / "flat.zarr/test/raw")
    assert seg.roi == raw.roi and seg.voxel_size == Coordinate(8, 8)
    assert (results / "flat/report/slices.png").stat().st_size > 1000
