"""The workflow, run for real by Snakemake on a tiny config: DAG, reruns, bad input."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import REPO, TINY, copy_workdir, planned_jobs, ran_rules, snakemake, write_config

from dacapo_core import arrays, layout
from dacapo_core.segment import load_graph
from dacapo_core.segment.mutex import mutex_lookup
from dacapo_core.segment.relabel import relabel

pytestmark = pytest.mark.slow


def test_full_dag_produces_every_artifact(finished):
    workdir, _ = finished
    run = workdir / "results/tiny"
    for it in (10, 20):
        ckpt = run / f"checkpoints/{it}.pt"
        assert ckpt.is_file()
        import torch

        state = torch.load(ckpt, weights_only=True)
        assert state["iteration"] == it
        stats = json.loads((run / f"training_stats/{it}.json").read_text())
        assert [s["iteration"] for s in stats["iterations"]] == list(range(it - 9, it + 1))
        scores = json.loads((run / f"validation/{it}/scores.json").read_text())
        results = scores["datasets"]["val_a"]["results"]
        assert [tuple(r["parameters"].values()) for r in results] == [
            (f, s, t) for f in ("mean", "hist_quant_50") for s in (0, 20) for t in (0.3, 0.5, 0.7)
        ]
    best = json.loads((run / "best.json").read_text())["voi"]
    voi = {
        (it, json.dumps(r["parameters"], sort_keys=True)): r["scores"]["voi"]
        for it in (10, 20)
        for r in json.loads((run / f"validation/{it}/scores.json").read_text())["datasets"][
            "val_a"
        ]["results"]
    }
    key = (best["iteration"], json.dumps(best["parameters"], sort_keys=True))
    assert best["value"] == voi[key] == min(voi.values()) and best["direction"] == "lower"
    seg = arrays.open_array(run / "apply/test_a.zarr/segmentation")
    raw = arrays.open_array(workdir / "data/demo.zarr/test/raw")
    assert seg.roi == raw.roi and seg.voxel_size == raw.voxel_size
    frags = arrays.open_array(run / "apply/test_a.zarr/fragments")
    labelled = seg.to_ndarray(seg.roi) > 0
    assert np.array_equal(labelled, frags.to_ndarray(seg.roi) > 0)  # every fragment relabelled
    assert (run / "snapshots/10.zarr/prediction").is_dir()
    assert (run / "report/loss.png").stat().st_size > 1000
    assert (workdir / "logs/train/tiny/10.log").is_file()
    assert (workdir / "logs/segment/tiny/test_a.log.workers").is_dir()
    assert not (workdir / "daisy_logs").exists()  # worker logs stay beside the job's log


def test_report_contains_the_figures(finished):
    workdir, cfg = finished
    result = snakemake(workdir, "--configfile", str(cfg), "--report", "report.html")
    assert result.returncode == 0, result.stderr[-2000:]
    html = (workdir / "report.html").read_text()
    for figure in ("loss.png", "scores.png", "thresholds.png", "slices.png"):
        assert figure in html
    assert "Validation" in html and "Training" in html and "best.json" in html


def test_finished_run_has_nothing_to_do(finished):
    workdir, cfg = finished
    result = snakemake(workdir, "-n", "--configfile", str(cfg))
    assert result.returncode == 0
    assert planned_jobs(result) == {}, result.stdout[-2000:]


def rerun(finished, tmp_path, edit) -> tuple[Path, dict[str, int]]:
    """Edit the finished tiny experiment's config in a copy, run it for real: the copy
    and the jobs that ran."""
    workdir = copy_workdir(finished[0], tmp_path / "wd")
    config = copy.deepcopy(TINY)
    edit(config)
    result = snakemake(workdir, "--cores", "2", "--configfile", str(write_config(workdir, config)))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, ran_rules(result)


def test_worker_count_changes_nothing(finished, tmp_path):
    _, ran = rerun(finished, tmp_path, lambda c: c["apply"][0].update(num_workers=1))
    assert ran == {}


def test_pinned_threshold_only_agglomerates_again(finished, tmp_path):
    best = json.loads((finished[0] / "results/tiny/best.json").read_text())["voi"]
    pinned = 0.9 if best["parameters"]["threshold"] != 0.9 else 0.1
    workdir, ran = rerun(finished, tmp_path, lambda c: c["apply"][0].update(threshold=pinned))
    assert ran == {"choose": 1, "segment": 1, "plot_slices": 1}
    choice = json.loads((workdir / "results/tiny/apply/test_a.choice.json").read_text())
    assert choice == {
        "iteration": best["iteration"],
        "parameters": {**best["parameters"], "threshold": pinned},
    }
    segmentation = workdir / "results/tiny/apply/test_a.zarr/segmentation"
    assert zarr.open(str(segmentation), mode="r").attrs["threshold"] == pinned


def test_new_threshold_grid_scores_and_selects_again(finished, tmp_path):
    """Scoring, selection and what shows them; neither training, prediction, fragments
    nor the graph. The target is segmented again only if the choice changed."""
    grid = [0.4, 0.6]
    workdir, ran = rerun(
        finished,
        tmp_path,
        lambda c: c["runs"]["tiny"]["post_processor"].update(thresholds=grid),
    )
    before = json.loads((finished[0] / "results/tiny/apply/test_a.choice.json").read_text())
    after = json.loads((workdir / "results/tiny/apply/test_a.choice.json").read_text())
    assert after["parameters"]["threshold"] in grid
    expected = {
        "describe_run": 1,  # run.json records the run's config
        "validate_score": 2,
        "validation_scores": 2,
        "select": 1,
        "choose": 1,
        "plot_scores": 1,
        "plot_thresholds": 1,
        "plot_slices": 1,
    }
    if after != before:
        expected["segment"] = 1
    if after["iteration"] != before["iteration"]:
        expected["predict"] = expected["fragments"] = 1
    assert ran == expected


def test_mutex_biases_are_scored_selected_and_applied(finished, tmp_path):
    """Biases add mutex watershed parameter sets: the region graphs are made again with
    long-range edges (not the predictions), validation scores the biases, and a target
    pinning one is segmented by mutex watershed of its graph."""

    def edit(config: dict) -> None:
        config["runs"]["tiny"]["post_processor"]["biases"] = [0.3, 0.5, 0.7]
        config["apply"][0]["bias"] = 0.5

    workdir, ran = rerun(finished, tmp_path, edit)
    assert ran["fragments"] == 3 and ran["validate_score"] == 2 and ran["segment"] == 1
    assert "predict" not in ran and "validate_predict" not in ran
    scores = json.loads((workdir / "results/tiny/validation/20/scores.json").read_text())
    scored = [r["parameters"] for r in scores["datasets"]["val_a"]["results"]]
    assert scored[-3:] == [{"bias": 0.3}, {"bias": 0.5}, {"bias": 0.7}]
    best = json.loads((workdir / "results/tiny/best.json").read_text())["voi"]
    choice = json.loads((workdir / "results/tiny/apply/test_a.choice.json").read_text())
    assert choice == {"iteration": best["iteration"], "parameters": {"bias": 0.5}}

    def target(pattern: str) -> str:
        return str(workdir / layout.path(layout.apply(pattern), run="tiny", target="test_a"))

    frags = arrays.open_array(target(layout.FRAGMENTS))
    graph = load_graph(target(layout.GRAPH))
    seg = arrays.open_array(target(layout.SEGMENTATION))
    expected = relabel(arrays.read(frags, frags.roi), *mutex_lookup(graph, 0.5))
    assert graph.long_range is not None  # made (the tiny network's graph may be empty)
    assert np.array_equal(arrays.read(seg, seg.roi), expected)
    assert zarr.open(target(layout.SEGMENTATION), mode="r").attrs["bias"] == 0.5


def test_test_time_augmentation_predicts_validation_and_targets_again(finished, tmp_path):
    """The run's test_time_augmentation reaches validation and apply (their predictions
    record it) and reruns them, never training."""
    workdir, ran = rerun(
        finished, tmp_path, lambda c: c["runs"]["tiny"].update(test_time_augmentation="mirror")
    )
    assert "train" not in ran and ran["validate_predict"] == 2 and ran["predict"] == 1
    results = workdir / "results/tiny"
    for prediction in (results / "apply/test_a.zarr", results / "validation/20/val_a.zarr"):
        attrs = zarr.open(str(prediction / "prediction"), mode="r").attrs
        assert attrs["test_time_augmentation"] == "mirror"
        assert attrs["provenance"]["stage"]["test_time_augmentation"] == "mirror"


def test_raising_train_until_trains_only_new_chunks(finished, tiny_config):
    workdir, _ = finished
    tiny_config["runs"]["tiny"]["train_until"] = 30
    cfg = write_config(workdir, tiny_config, "longer.yaml")
    result = snakemake(workdir, "-n", "--configfile", str(cfg))
    jobs = planned_jobs(result)
    assert jobs["train"] == 1 and jobs["validate_predict"] == 1
    assert "results/tiny/checkpoints/30.pt" in result.stdout  # from the existing 20.pt


def test_each_checkpoint_is_scored_before_training_goes_on(finished):
    """On 2 cores a training chunk and a validation job cannot run side by side: the
    validation of checkpoint 10 comes first, so scores appear while training goes on."""
    workdir, _ = finished
    first_run = sorted((workdir / ".snakemake/log").glob("*.snakemake.log"))[0].read_text()
    job = r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$"
    order = [f"{rule} {wildcards}" for rule, wildcards in re.findall(job, first_run, re.M)]
    scored = order.index("validation_scores run=tiny, it=10")
    assert scored < order.index("train run=tiny, it=20"), order


def test_my_experiment_is_not_merged_with_the_demo(finished):
    workdir, cfg = finished
    result = snakemake(workdir, "-n", "--configfile", str(cfg), "--forceall")
    assert "affs_unet" not in result.stdout  # the demo's run
    assert "tiny" in result.stdout


def test_validation_predictions_can_be_dropped_after_scoring(tmp_path, tiny_config):
    tiny_config.update(keep_validation_predictions=False, apply=[])
    tiny_config["runs"]["tiny"].update(train_until=10)
    cfg = write_config(tmp_path, tiny_config)
    assert snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg)).returncode == 0
    validation = tmp_path / "results/tiny/validation/10"
    assert not (validation / "val_a.zarr/prediction").exists()
    assert (validation / "val_a.zarr/segmentation").is_dir() and (
        validation / "scores.json"
    ).is_file()
    kept = tmp_path / "results/tiny/validation/best/val_a/10.zarr/prediction"  # for viewing
    seg = arrays.open_array(validation / "val_a.zarr/segmentation")
    assert arrays.open_array(kept).roi == seg.roi
    assert planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(cfg))) == {}
    tiny_config["runs"]["tiny"].update(train_until=20)  # a new iteration: the old one stays
    cfg = write_config(tmp_path, tiny_config)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(cfg)))
    assert jobs["train"] == jobs["validate_predict"] == 1


def bad(config: dict, mutate) -> dict:
    mutate(config)
    return config


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["runs"]["tiny"]["trainer"].update(learning_rat=0.1), "learning_rat"),
        (lambda c: c["runs"]["tiny"].update(train_until="lots"), "train_until"),
        (lambda c: c["runs"]["tiny"]["datasplit"].update(validate=["nope"]), "nope"),
        (lambda c: c["runs"].update({"bad/name": c["runs"]["tiny"]}), "bad/name"),
        (lambda c: c["apply"][0].update(run="other"), "apply[0].run"),
        (lambda c: c["datasets"]["val_a"].update(container="missing.zarr"), "missing.zarr"),
        (
            lambda c: c["runs"]["tiny"]["architecture"].update(input_shape=[45, 44, 44]),
            "input_shape",
        ),
    ],
)
def test_bad_config_fails_dry_run_with_one_line(tmp_path, tiny_config, mutate, expected):
    cfg = write_config(tmp_path, bad(tiny_config, mutate))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    after = sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake")
    assert after == before


def test_mismatched_voxel_sizes_are_named(tmp_path, tiny_config):
    labels = np.load(REPO / "tests/data/fibsem_gala_example/train.npz")["labels"]
    raw = np.load(REPO / "tests/data/fibsem_gala_example/train.npz")["raw"]
    arrays.write_numpy(tmp_path / "gala.zarr/raw", raw, (10, 10, 10))
    arrays.write_numpy(tmp_path / "gala.zarr/labels", labels, (8, 8, 8))
    tiny_config.pop("demo")
    tiny_config["datasets"] = {"g": {"container": "gala.zarr", "raw": "raw", "gt": "labels"}}
    tiny_config["runs"]["tiny"]["datasplit"] = {"train": ["g"], "validate": ["g"]}
    tiny_config["apply"] = []
    cfg = write_config(tmp_path, tiny_config)
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert "config error: datasets.g.gt: voxel size (8, 8, 8) differs" in result.stderr
