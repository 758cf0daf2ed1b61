"""Real EM (fibsem_gala_example): import with the CLI, run a tiny experiment, score it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from conftest import BIN, REPO, snakemake, write_config

from dacapo_core import arrays

GALA = REPO / "tests/data/fibsem_gala_example"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dacapo-flow"), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def gala(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gala")
    for part in ("train", "test"):
        for key in ("raw", "labels"):
            out = f"{workdir}/gala.zarr/{part}/{key}"
            result = cli(
                "import",
                str(GALA / f"{part}.npz"),
                "--key",
                key,
                "--out",
                out,
                "--voxel-size",
                "10",
                "10",
                "10",
            )
            assert result.returncode == 0, result.stderr
    return workdir


def test_import_keeps_data_and_geometry(gala):
    array = arrays.open_array(gala / "gala.zarr/train/raw")
    assert array.voxel_size == (10, 10, 10) and tuple(array.shape) == (50, 100, 200)
    assert np.array_equal(array[array.roi], np.load(GALA / "train.npz")["raw"])


def test_import_errors_are_one_line(tmp_path):
    result = cli(
        "import",
        str(tmp_path / "nope.npz"),
        "--out",
        f"{tmp_path}/x.zarr/raw",
        "--voxel-size",
        "1",
        "1",
        "1",
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nope.npz: file not found" in result.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_evaluate_prints_json_scores(gala):
    labels = f"{gala}/gala.zarr/test/labels"
    result = cli("evaluate", "--segmentation", labels, "--gt", labels)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["voi"] == pytest.approx(0)


@pytest.mark.slow
def test_tiny_experiment_on_real_em(gala):
    config = {
        "datasets": {
            "train": {"container": "gala.zarr", "raw": "train/raw", "gt": "train/labels"},
            "test": {"container": "gala.zarr", "raw": "test/raw", "gt": "test/labels"},
        },
        "runs": {
            "em": {
                "datasplit": {"train": ["train"], "validate": ["test"]},
                "architecture": {
                    "input_shape": [44, 44, 44],
                    "eval_shape_increase": [0, 16, 16],
                    "fmaps": 4,
                    "fmap_inc_factor": 2,
                    "downsample_factors": [[2, 2, 2]],
                },
                "train_until": 10,
                "validation_interval": 10,
                "post_processor": {"thresholds": [0.5]},
            }
        },
        "apply": [{"run": "em", "input": "test", "roi": "[0:400,0:800,0:1600]"}],
    }
    cfg = write_config(gala, config)
    result = snakemake(gala, "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    seg = arrays.open_array(gala / "results/em/apply/test.zarr/segmentation")
    assert arrays.format_roi(seg.roi) == "[0:400,0:800,0:1600]"
    best = json.loads((gala / "results/em/best.json").read_text())
    assert best["voi"]["iteration"] == 10 and np.isfinite(best["voi"]["value"])
