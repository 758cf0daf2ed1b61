"""Ensembles: apply entries naming several runs average their predictions blockwise,
and are validated and selected as one (config, averaging, and the workflow for real)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import zarr
from conftest import TINY, copy_workdir, planned_jobs, ran_rules, snakemake, write_config
from funlib.geometry import Coordinate, Roi

from dacapo_core import arrays, codec, config, provenance
from dacapo_core.ensemble import average


def experiment(**runs: dict) -> dict:
    """A config with run ``r`` and the runs given (each ``r``'s with changes)."""
    base = {"datasplit": {"train": ["a"], "validate": ["a"]}}
    return {
        "datasets": {
            "a": {"container": "x.zarr", "raw": "raw", "gt": "gt"},
            "b": {"container": "x.zarr", "raw": "raw", "gt": "gt"},
        },
        "runs": {"r": base, **{name: {**base, **change} for name, change in runs.items()}},
    }


def test_ensembles_are_named_by_their_members_or_given_names():
    data = experiment(s={"architecture": {"fmaps": 6}}, k={"repetitions": 3})
    data["apply"] = [
        {"runs": ["r", "s"], "input": "a"},
        {"runs": ["r", "s"], "input": "b"},  # the same ensemble, another target
        {"run": "k", "repetitions": "all", "input": "a"},
        {"runs": ["k__0", "r"], "ensemble": "mixed", "input": "a"},
        {"run": "r", "input": "a"},
    ]
    cfg = config.parse(data)
    assert cfg.ensembles() == {
        "r+s": ["r", "s"],
        "k": ["k__0", "k__1", "k__2"],
        "mixed": ["k__0", "r"],
    }
    assert [e.ensemble_name for e in cfg.apply] == ["r+s", "r+s", "k", "mixed", None]


@pytest.mark.parametrize(
    ("runs", "entry", "expected"),
    [
        ({}, {"run": "r", "runs": ["r", "s"]}, r"apply\[0\]: needs exactly one of run and runs"),
        ({}, {}, r"apply\[0\]: needs exactly one of run and runs"),
        ({}, {"runs": ["r"]}, r"apply.0.runs: List should have at least 2 items"),
        ({}, {"run": "r", "repetitions": "all"}, r"apply\[0\].repetitions: run 'r' has one"),
        ({}, {"run": "r", "repetitions": 2}, r"apply.0.repetitions: Input should be 'all'"),
        ({}, {"runs": ["r", "zz"]}, r"apply\[0\].runs\[1\]: unknown run 'zz'"),
        ({}, {"runs": ["r", "r"]}, r"apply\[0\].runs\[1\]: run 'r' twice"),
        ({}, {"run": "r", "ensemble": "e"}, r"apply\[0\].ensemble: names an ensemble"),
        ({"s": {}}, {"runs": ["r", "s"], "repetitions": "all"}, r"repetitions: only with run"),
        ({"s": {}}, {"runs": ["r", "s"], "iteration": 500}, r"apply\[0\].iteration: each member"),
        (
            {"s": {"task": {"neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}},
            {"runs": ["r", "s"]},
            r"apply\[0\]: run 's' differs from 'r' in task \(an ensemble's members share",
        ),
        (
            {"s": {"datasplit": {"train": ["a"], "validate": ["b"]}}},
            {"runs": ["r", "s"]},
            r"apply\[0\]: run 's' differs from 'r' in datasplit.validate",
        ),
        (
            {"s": {"post_processor": {"thresholds": [0.5]}}},
            {"runs": ["r", "s"]},
            r"apply\[0\]: run 's' differs from 'r' in post_processor",
        ),
        (
            {"s": {"prediction_dtype": "uint8"}},
            {"runs": ["r", "s"]},
            r"apply\[0\]: run 's' differs from 'r' in prediction_dtype",
        ),
    ],
)
def test_ensemble_errors_name_the_apply_entry(runs, entry, expected):
    data = experiment(**runs)
    data["apply"] = [{"input": "a", **entry}]
    with pytest.raises(config.ConfigError, match=expected):
        config.parse(data)


def test_class_ensembles_and_reused_names_are_refused():
    classes = {"task": {"type": "distances", "classes": {"m": {"labels": [1]}}}, "repetitions": 2}
    data = experiment(c=classes)
    data["apply"] = [{"run": "c", "repetitions": "all", "input": "a"}]
    with pytest.raises(config.ConfigError, match=r"apply\[0\]: ensembles average affinities"):
        config.parse(data)
    data = experiment(s={}, t={})
    data["apply"] = [
        {"runs": ["r", "s"], "ensemble": "e", "input": "a"},
        {"runs": ["r", "t"], "ensemble": "e", "input": "b"},
    ]
    with pytest.raises(config.ConfigError, match=r"apply\[1\].ensemble: 'e' names another"):
        config.parse(data)
    data["apply"] = [{"runs": ["r", "s"], "input": "a", "superblock_shape": [256] * 3}]
    with pytest.raises(config.ConfigError, match=r"apply\[0\].superblock_shape: an ensemble"):
        config.check_workflow_support(config.parse(data))


def _prediction(path, values: np.ndarray, dtype: str) -> str:
    """A prediction array of ``values`` (affinities in [0, 1]) as stored in ``dtype``."""
    roi = Roi((0, 0, 0), Coordinate(values.shape[1:]) * 4)
    attrs = {"raw": "raw.zarr/raw", "roi": arrays.format_roi(roi), "scale": codec.SCALES[dtype]}
    attrs["neighborhood"] = [[1, 0, 0]] * values.shape[0]
    chunks = Coordinate(3, 4, 8)
    arrays.prepare_array(path, roi, (4, 4, 4), dtype, values.shape[0], chunks, attrs)
    arrays.open_array(path, mode="r+")[roi] = codec.encode(values, dtype)
    return str(path)


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 0.0), ("uint8", 1 / 255)])
def test_the_average_is_the_members_mean(tmp_path, dtype, tolerance):
    rng = np.random.default_rng(0)
    values = rng.random((3, 2, 6, 8, 8)).astype(np.float32)  # three members, two channels
    members = [_prediction(tmp_path / f"m{i}.zarr/p", v, dtype) for i, v in enumerate(values)]
    mean = average(members, str(tmp_path / "e.zarr/p"), dtype, num_workers=1)
    got = codec.read_affinities(mean, tmp_path / "e.zarr/p", mean.roi)
    stored = [codec.read_affinities(arrays.open_array(m), m, mean.roi) for m in members]
    expected = sum(stored) / len(stored)
    assert np.abs(got - expected).max() <= tolerance + 1e-7
    assert np.abs(got - values.mean(axis=0)).max() <= tolerance + 1e-6
    attrs = zarr.open(str(tmp_path / "e.zarr/p"), mode="r").attrs
    assert [m["prediction"] for m in attrs["members"]] == members
    assert attrs["neighborhood"] == [[1, 0, 0], [1, 0, 0]]
    assert attrs["scale"] == codec.SCALES[dtype]


def test_members_of_different_volumes_are_refused(tmp_path):
    values = np.zeros((1, 4, 4, 4), np.float32)
    first = _prediction(tmp_path / "a.zarr/p", values, "float32")
    other = _prediction(tmp_path / "b.zarr/p", np.zeros((1, 4, 4, 8), np.float32), "float32")
    with pytest.raises(arrays.DataError, match=r"b.zarr/p: differs from .*a.zarr/p in ROI"):
        average([first, other], str(tmp_path / "e.zarr/p"))


#: TINY with a second run (another width: another network) and an ensemble of both
ENSEMBLE = "results/ensembles/tiny+tiny_b"


def ensemble_config() -> dict:
    data = copy.deepcopy(TINY)
    data["runs"]["tiny_b"] = copy.deepcopy(data["runs"]["tiny"])
    data["runs"]["tiny_b"]["architecture"]["fmaps"] = 6
    data["apply"].append({"runs": ["tiny", "tiny_b"], "input": "test_a", "block_shape": [40] * 3})
    return data


def read(workdir, path: str) -> np.ndarray:
    array = arrays.open_array(workdir / path)
    return array.to_ndarray(array.roi)


@pytest.mark.slow
def test_an_ensemble_of_two_tiny_runs_averages_and_selects_its_own_parameters(finished, tmp_path):
    """The finished tiny experiment plus a second run and their ensemble, for real
    (``--notemp`` keeps the members' target predictions to compare with)."""
    workdir = copy_workdir(finished[0], tmp_path / "wd")
    cfg = write_config(workdir, ensemble_config())
    result = snakemake(workdir, "--cores", "2", "--notemp", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    ran = ran_rules(result)
    assert {k: ran.get(k, 0) for k in ("train", "predict", "choose", "segment")} == {
        "train": 2,  # tiny_b's chunks; tiny is reused as it was
        "predict": 0,
        "choose": 1,  # the ensemble's target
        "segment": 1,
    }
    assert {k: v for k, v in ran.items() if k.startswith("ensemble")} == {
        "ensemble_members": 1,
        "ensemble_validate": 1,
        "ensemble_member_predict": 2,
        "ensemble_predict": 1,
    }
    iterations = json.loads((workdir / ENSEMBLE / "members.json").read_text())
    for run in ("tiny", "tiny_b"):  # each member at its own selected iteration
        best = json.loads((workdir / f"results/{run}/best.json").read_text())
        assert iterations[run] == best["voi"]["iteration"]

    # validation: the members' validation predictions averaged, then scored and selected
    members = [
        read(workdir, f"results/{run}/validation/{it}/val_a.zarr/prediction")
        for run, it in iterations.items()
    ]
    validation = read(workdir, f"{ENSEMBLE}/validation/0/val_a.zarr/prediction")
    np.testing.assert_array_equal(validation, (members[0] + members[1]) / 2)
    scores = json.loads((workdir / f"{ENSEMBLE}/validation/0/scores.json").read_text())
    results = scores["datasets"]["val_a"]["results"]
    best = json.loads((workdir / f"{ENSEMBLE}/best.json").read_text())["voi"]
    assert best["value"] == min(r["scores"]["voi"] for r in results)
    assert best["parameters"] == min(results, key=lambda r: r["scores"]["voi"])["parameters"]
    selected_from = provenance.read(workdir / f"{ENSEMBLE}/best.json")["inputs"]
    assert [i["path"] for i in selected_from.values()] == [f"{ENSEMBLE}/validation/0/scores.json"]

    # apply: the members' predictions of the target averaged, segmented as selected
    target = f"{ENSEMBLE}/apply/test_a"
    members = [read(workdir, f"{target}.members/{run}.zarr/prediction") for run in iterations]
    assert not np.array_equal(members[0], members[1])  # two networks, two predictions
    np.testing.assert_array_equal(
        read(workdir, f"{target}.zarr/prediction"), (members[0] + members[1]) / 2
    )
    averaged = zarr.open(str(workdir / f"{target}.zarr/prediction"), mode="r").attrs
    assert [m["checkpoint"] for m in averaged["members"]] == [
        f"results/{run}/checkpoints/{it}.pt" for run, it in iterations.items()
    ]
    choice = json.loads((workdir / f"{target}.choice.json").read_text())
    assert choice["parameters"] == best["parameters"]
    segmentation = zarr.open(str(workdir / f"{target}.zarr/segmentation"), mode="r")
    assert segmentation.attrs["threshold"] == best["parameters"]["threshold"]

    again = snakemake(workdir, "-n", "--configfile", str(cfg))
    assert again.returncode == 0 and planned_jobs(again) == {}, again.stdout[-2000:]


@pytest.mark.slow
def test_all_repetitions_of_a_run_plan_one_ensemble(tmp_path, tiny_config):
    """``run: tiny, repetitions: all``: a dry run plans each repetition's selection, the
    ensemble's validation and selection, and its target under results/ensembles/tiny."""
    tiny_config["runs"]["tiny"]["repetitions"] = 2
    tiny_config["apply"] = [{"run": "tiny", "repetitions": "all", "input": "test_a"}]
    cfg = write_config(tmp_path, tiny_config)
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = planned_jobs(result)
    assert {k: jobs.get(k, 0) for k in ("train", "select", "ensemble_members", "segment")} == {
        "train": 4,
        "select": 3,  # tiny__0, tiny__1 and the ensemble
        "ensemble_members": 1,
        "segment": 1,
    }
    assert "results/ensembles/tiny/apply/test_a.zarr/segmentation" in result.stdout
