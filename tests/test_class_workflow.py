"""The workflow for class runs, run for real by Snakemake on a tiny organelle config:
per-class validation scores, per-class selection (best.json) and apply outputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import zarr
from conftest import planned_jobs, ran_rules, snakemake, write_config

from dacapo_core import arrays

pytestmark = pytest.mark.slow

DEMO = "data/organelles"
ARCH = {
    "input_shape": [28, 28, 28],
    "eval_shape_increase": [8, 8, 8],
    "fmaps": 4,
    "fmap_inc_factor": 2,
    "downsample_factors": [[2, 2, 2]],
}
CLASSES = {"mito": {"array": "mito"}, "er": {"labels": [2]}, "vesicle": {"labels": [3]}}

#: a distances run (thresholds, mito as instances) and a one_hot run (argmax), tiny
ORGANELLES = {
    "seed": 1,
    "demo": {"container": DEMO, "voxel_size": [8, 8, 8], "kind": "organelles"},
    "datasets": {
        "train_a": {"container": f"{DEMO}/train.zarr", "raw": "raw", "gt": "labels"},
        "val_a": {"container": f"{DEMO}/validate.zarr", "raw": "raw", "gt": "labels"},
        "val_b": {  # a crop without vesicles annotated
            "container": f"{DEMO}/extra.zarr",
            "raw": "raw",
            "gt": "labels",
            "classes": ["mito", "er"],
        },
        "test_a": {"container": f"{DEMO}/test.zarr", "raw": "raw"},
    },
    "runs": {
        "dist": {
            "datasplit": {"train": ["train_a"], "validate": ["val_a", "val_b"]},
            "task": {"type": "distances", "classes": CLASSES, "scale": 40, "clip": 80},
            "architecture": ARCH,
            "trainer": {"snapshot_interval": 10, "num_data_fetchers": 0},
            "train_until": 10,
            "validation_interval": 5,
            "post_processor": {
                "type": "threshold",
                "thresholds": [-0.25, 0.0, 0.25],
                "instances": {"mito": {"min_size": 20}},
            },
        },
        "hot": {
            "datasplit": {"train": ["train_a"], "validate": ["val_b"]},
            "task": {"type": "one_hot", "classes": CLASSES},
            "architecture": ARCH,
            "trainer": {"snapshot_interval": 10, "num_data_fetchers": 0},
            "train_until": 5,
            "validation_interval": 5,
            "criterion": "iou",
        },
    },
    "apply": [
        {"run": "dist", "input": "test_a", "block_shape": [20, 40, 40]},
        {"run": "hot", "input": "test_a", "block_shape": [20, 40, 40]},
    ],
}


def test_tiny_organelle_workflow_end_to_end(tmp_path):
    cfg = write_config(tmp_path, ORGANELLES)
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ran_rules(result) == {
        "make_organelle_data": 1,
        "describe_run": 2,
        "train": 3,
        "validate_predict": 5,  # dist: 2 iterations x 2 crops; hot: 1 x 1
        "validate_classes": 5,
        "validation_scores": 3,
        "select": 2,
        "plot_loss": 2,
        "choose": 2,
        "predict": 2,
        "threshold_class": 3,
        "components_class": 1,
        "argmax_classes": 1,
    }
    dist = tmp_path / "results/dist"

    # per-class scores; the crop without vesicles skips them
    scores = json.loads((dist / "validation/5/scores.json").read_text())["datasets"]
    assert sorted(scores["val_a"]["classes"]) == ["er", "mito", "vesicle"]
    assert sorted(scores["val_b"]["classes"]) == ["er", "mito"]
    assert scores["val_b"]["unannotated"] == ["vesicle"]
    mito = scores["val_a"]["classes"]["mito"]["results"]
    assert [r["parameters"] for r in mito] == [{"threshold": t} for t in (-0.25, 0.0, 0.25)]
    assert "detection" in mito[0]["scores"]

    # selection: one iteration, a threshold per class, criteria in their directions
    best = json.loads((dist / "best.json").read_text())
    assert best["dice"]["direction"] == "higher"
    assert best["surface_distance"]["direction"] == "lower"
    chosen = best["dice"]
    assert chosen["iteration"] in (5, 10)
    assert sorted(chosen["classes"]) == ["er", "mito", "vesicle"]
    assert np.isclose(chosen["value"], np.mean([c["value"] for c in chosen["classes"].values()]))
    at = json.loads((dist / f"validation/{chosen['iteration']}/scores.json").read_text())
    for name, c in chosen["classes"].items():
        crops = [
            d["classes"][name]["results"] for d in at["datasets"].values() if name in d["classes"]
        ]
        means = np.mean([[r["scores"]["dice"] for r in rs] for rs in crops], axis=0)
        assert np.isclose(c["value"], means.max())
        assert c["parameters"] == {"threshold": [-0.25, 0.0, 0.25][int(means.argmax())]}

    # apply: a binary array per class with its chosen threshold, mito instances
    raw = arrays.open_array(tmp_path / f"{DEMO}/test.zarr/raw")
    target = dist / "apply/test_a.zarr"
    for name in ("mito", "er", "vesicle"):
        mask = arrays.open_array(target / f"classes/{name}")
        assert mask.roi == raw.roi and set(np.unique(mask.to_ndarray(mask.roi))) <= {0, 1}
        attrs = zarr.open(str(target / f"classes/{name}"), mode="r").attrs
        assert attrs["threshold"] == chosen["classes"][name]["parameters"]["threshold"]
        # blocks (and chunks) of the apply entry's block_shape, in voxels
        assert zarr.open(str(target / f"classes/{name}"), mode="r").chunks == (20, 40, 40)
    instances = arrays.open_array(target / "instances/mito").to_ndarray(raw.roi)
    mask = arrays.open_array(target / "classes/mito").to_ndarray(raw.roi)
    assert np.array_equal(instances > 0, (instances > 0) & (mask > 0))
    choice = json.loads((dist / "apply/test_a.choice.json").read_text())
    assert choice["iteration"] == chosen["iteration"]

    # one_hot: argmax labels, its criterion iou
    hot = json.loads((tmp_path / "results/hot/best.json").read_text())["iou"]
    assert hot["iteration"] == 5 and sorted(hot["classes"]) == ["er", "mito"]
    labels = arrays.open_array(tmp_path / "results/hot/apply/test_a.zarr/argmax")
    assert labels.roi == raw.roi and labels.to_ndarray(raw.roi).max() <= 3

    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


def test_class_post_processing_of_several_superblocks_is_one_line(tmp_path):
    data = copy.deepcopy(ORGANELLES)
    data["apply"][0]["superblock_shape"] = [20, 40, 40]
    cfg = write_config(tmp_path, data)
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert "config error: apply[0].superblock_shape: class runs post-process" in result.stderr


def test_a_csv_table_of_crops_plans_as_its_datasets_would(tmp_path):
    """The validation crops as rows of a CSV table, the datasplit naming the table: the
    schema takes it and the dry run plans each row's jobs."""
    data = copy.deepcopy(ORGANELLES)
    del data["datasets"]["val_a"], data["datasets"]["val_b"]
    data["datasets"]["val"] = {"csv": "crops.csv"}
    (tmp_path / "crops.csv").write_text(
        "name,container,raw,gt,classes\n"
        f"val_a,{DEMO}/validate.zarr,raw,labels,\n"
        f"val_b,{DEMO}/extra.zarr,raw,labels,mito;er\n"
    )
    data["runs"]["dist"]["datasplit"]["validate"] = ["val"]
    cfg = write_config(tmp_path, data)
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    # as in the end-to-end test: dist validates 2 iterations x 2 crops, hot 1 x 1 (val_b)
    assert jobs["validate_predict"] == 5 and jobs["validate_classes"] == 5

    (tmp_path / "crops.csv").write_text("name,container,raw,gt\nval_a,,raw,labels\n")
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert "config error: datasets.val: crops.csv row 2: column 'container' is empty\n" in (
        result.stderr
    )
