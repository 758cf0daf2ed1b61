"""The workflow for class runs, run for real by Snakemake on a tiny organelle config:
per-class validation scores, per-class selection (best.json), apply outputs, the
report's figures and what the viewer shows of them."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import zarr
from conftest import planned_jobs, ran_rules, snakemake, write_config
from PIL import Image

from dacapo_core import arrays, report, view
from dacapo_core.palette import class_colours

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


@pytest.fixture(scope="module")
def organelles(tmp_path_factory):
    """A workdir where the tiny organelle experiment ran to the end (read only), its
    config and Snakemake's result."""
    workdir = tmp_path_factory.mktemp("organelles")
    cfg = write_config(workdir, ORGANELLES)
    result = snakemake(workdir, "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, cfg, result


def test_tiny_organelle_workflow_end_to_end(organelles):
    workdir, cfg, result = organelles
    assert ran_rules(result) == {
        "make_organelle_data": 1,
        "describe_run": 2,
        "train": 3,
        "validate_predict": 5,  # dist: 2 iterations x 2 crops; hot: 1 x 1
        "validate_classes": 5,
        "validation_scores": 3,
        "select": 2,
        "plot_loss": 2,
        "plot_class_scores": 2,
        "plot_class_thresholds": 1,  # dist only: hot takes the argmax
        "choose": 2,
        "predict": 2,
        "threshold_class": 3,
        "components_class": 1,
        "argmax_classes": 1,
    }
    dist = workdir / "results/dist"

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
    raw = arrays.open_array(workdir / f"{DEMO}/test.zarr/raw")
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
    hot = json.loads((workdir / "results/hot/best.json").read_text())["iou"]
    assert hot["iteration"] == 5 and sorted(hot["classes"]) == ["er", "mito"]
    labels = arrays.open_array(workdir / "results/hot/apply/test_a.zarr/argmax")
    assert labels.roi == raw.roi and labels.to_ndarray(raw.roi).max() <= 3

    result = snakemake(workdir, "-n", "--configfile", str(cfg))
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


def best_per_iteration(run_dir, criterion, name):
    """A class's best score over the thresholds at each iteration, from scores.json:
    the mean over the crops annotating it."""
    out = {}
    for scores in run_dir.glob("validation/*/scores.json"):
        doc = json.loads(scores.read_text())
        crops = [
            d["classes"][name]["results"] for d in doc["datasets"].values() if name in d["classes"]
        ]
        means = np.mean([[r["scores"][criterion] for r in rs] for rs in crops], axis=0)
        out[doc["iteration"]] = means.max()
    return dict(sorted(out.items()))


def painted(png, colour):
    """Pixels of a figure's PNG in exactly ``colour`` (its markers' fill)."""
    rgb = np.asarray(Image.open(png).convert("RGB"))
    return int((rgb == tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))).all(-1).sum())


def test_report_plots_each_class_and_marks_the_selection(organelles):
    """The jobs made scores.png (both runs) and thresholds.png (the threshold run):
    a line per class in its colour, the selected iteration and thresholds marked."""
    workdir, _, _ = organelles
    dist, hot = workdir / "results/dist", workdir / "results/hot"
    assert not (hot / "report/thresholds.png").exists()  # argmax: no sweep
    colours = class_colours(list(CLASSES))
    scores = sorted(dist.glob("validation/*/scores.json"))
    best = json.loads((dist / "best.json").read_text())["dice"]

    fig = report.class_scores_figure(scores, dist / "best.json", "dice", list(CLASSES))
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    for name in CLASSES:
        expected = best_per_iteration(dist, "dice", name)
        assert list(lines[name].get_xdata()) == list(expected)
        assert np.allclose(lines[name].get_ydata(), list(expected.values()))
        assert lines[name].get_color() == colours[name]
    assert list(lines["selected"].get_xydata()[0]) == [best["iteration"], best["value"]]
    png = dist / "report/scores.png"
    assert Image.open(png).size == (700, 400)  # this figure, at the job's dpi
    assert all(painted(png, colours[name]) > 20 for name in CLASSES)

    fig = report.class_thresholds_figure(scores, dist / "best.json", "dice", list(CLASSES))
    assert [ax.get_title() for ax in fig.axes] == list(CLASSES)  # a panel per class
    for ax, name in zip(fig.axes, CLASSES, strict=True):
        sweep, star = ax.get_lines()
        assert list(sweep.get_xdata()) == [-0.25, 0.0, 0.25]
        chosen = best["classes"][name]
        assert list(star.get_xydata()[0]) == [chosen["parameters"]["threshold"], chosen["value"]]
    png = dist / "report/thresholds.png"
    assert Image.open(png).size == (1200, 350)
    assert all(painted(png, colours[name]) > 20 for name in CLASSES)

    # one_hot, by iou: vesicle is in no crop of hot's, so it has no line
    hot_scores = sorted(hot.glob("validation/*/scores.json"))
    fig = report.class_scores_figure(hot_scores, hot / "best.json", "iou", list(CLASSES))
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert [label for label in labels if not label.startswith("_")] == [
        "mito",
        "er",
        "mean over classes",
        "selected",
    ]
    assert painted(hot / "report/scores.png", colours["er"]) > 20


def test_viewer_shows_each_class_of_a_class_run(organelles):
    """Real arrays: a layer per class and array, in the classes' colours."""
    workdir, _, _ = organelles
    dist, hot = workdir / "results/dist", workdir / "results/hot"
    shown = view.layers(dist, target="test_a")
    colours = class_colours(list(CLASSES))
    for array in ("prediction", "classes"):
        layers = [layer for layer in shown if layer.name.startswith(f"test_a/{array}/")]
        assert [layer.name for layer in layers] == [f"test_a/{array}/{c}" for c in CLASSES]
        assert [layer.colour for layer in layers] == [colours[c] for c in CLASSES]
    assert "test_a/instances/mito" in [layer.name for layer in shown]
    argmax = view.layers(hot, target="test_a")[-1]
    assert argmax.name == "test_a/argmax" and argmax.kind == "segmentation"
    assert argmax.segment_colours == {k + 1: colours[c] for k, c in enumerate(CLASSES)}
    validation = [layer.name for layer in view.layers(dist) if layer.visible]
    assert validation[2:] == [f"val_a/prediction/{c}" for c in CLASSES]  # after raw, gt


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
