"""2D experiments through the real workflow: a 2D network on images, a run fine-tuned
from another, and a 2D network on 3D stacks labelled per section (section mode)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ARCH_2D, planned_jobs, snakemake, write_config
from funlib.geometry import Coordinate

from dacapo_core import arrays
from dacapo_core.demo import make_demo
from dacapo_core.evaluate import evaluate
from dacapo_core.sections import per_section

pytestmark = pytest.mark.slow


def sections(workdir) -> None:
    """Of each demo volume (raw cropped to its labels): the middle z section as 2D
    arrays, and the four middle sections as a 3D stack (ids reused between sections)."""
    make_demo(f"{workdir}/demo.zarr", seed=0)
    for name in ("train", "validate", "test"):
        gt = arrays.open_array(f"{workdir}/demo.zarr/{name}/labels")
        raw = arrays.open_array(f"{workdir}/demo.zarr/{name}/raw")
        middle = gt.shape[0] // 2
        for role, array in (("raw", raw), ("labels", gt)):
            data = array.to_ndarray(gt.roi)
            arrays.write_numpy(f"{workdir}/flat.zarr/{name}/{role}", data[middle], Coordinate(8, 8))
            stack = data[middle - 2 : middle + 2]
            arrays.write_numpy(f"{workdir}/stack.zarr/{name}/{role}", stack, Coordinate(8, 8, 8))


def experiment() -> dict:
    def dataset(name: str, container: str = "flat.zarr") -> dict:
        return {"container": container, "raw": f"{name}/raw", "gt": f"{name}/labels"}

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
    stack = {
        **run,
        "datasplit": {"train": ["stack_train"], "validate": ["stack_validate"]},
        # an untrained network predicts ~0.5 everywhere: fragments must still be found
        "post_processor": {"thresholds": [0.5], "fragments": {"context": 4, "threshold": 0.3}},
    }
    names = ("train", "validate", "test")
    return {
        "datasets": {
            **{n: dataset(n) for n in names},
            **{f"stack_{n}": dataset(n, "stack.zarr") for n in names},
        },
        "runs": {"flat": run, "tuned": tuned, "stack": {**stack, "train_until": 2}},
        "apply": [
            {"run": "tuned", "input": "test"},  # default blocks: 128 per axis of the image
            {"run": "stack", "input": "stack_test", "block_shape": [2, 40, 40]},
        ],
    }


def test_2d_runs_fine_tuning_and_section_mode(tmp_path):
    sections(tmp_path)
    cfg = write_config(tmp_path, experiment())
    dry = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry)["select"] == 3  # tuned waits for flat's selection
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
    # section mode: a 3D stack predicted section by section, segments within sections
    prediction = arrays.open_array(results / "stack/apply/stack_test.zarr/prediction")
    raw = arrays.open_array(tmp_path / "stack.zarr/test/raw")
    assert prediction.roi == raw.roi and prediction.voxel_size == Coordinate(8, 8, 8)
    assert prediction.shape[0] == 4  # the 2D offsets, no z channel
    seg_array = arrays.open_array(results / "stack/apply/stack_test.zarr/segmentation")
    stack_seg = seg_array.to_ndarray(seg_array.roi)
    ids = [np.unique(section[section > 0]) for section in stack_seg]
    assert all(len(i) > 0 for i in ids)  # every section segmented
    assert len(np.concatenate(ids)) == len(np.unique(np.concatenate(ids)))  # no id in two
    # validation scored the stack's objects per section (the GT reuses ids across z)
    best = json.loads((results / "stack/best.json").read_text())["voi"]
    val = arrays.open_array(results / "stack/validation/2/stack_validate.zarr/segmentation")
    gt = arrays.open_array(tmp_path / "stack.zarr/validate/labels")
    labels = [a.to_ndarray(val.roi) for a in (val, gt)]
    assert best["value"] == pytest.approx(evaluate(*map(per_section, labels))["voi"])
