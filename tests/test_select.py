"""Selection: direction per criterion, ties to the earlier iteration, mean over datasets."""

import pytest

from dacapo_core import select
from dacapo_core.arrays import write_json
from dacapo_core.select import load_scores, select_best


def write_scores(tmp_path, it, per_dataset):
    """per_dataset: dataset -> list of voi values (one per threshold)."""
    doc = {
        "iteration": it,
        "datasets": {
            ds: {
                "results": [
                    {
                        "parameters": {"merge_function": "mean", "threshold": t},
                        "scores": {
                            "voi": v,
                            "voi_split": v / 2,
                            "voi_merge": v / 2,
                            "arand": v / 10,
                        },
                    }
                    for t, v in zip([0.3, 0.5], values, strict=True)
                ]
            }
            for ds, values in per_dataset.items()
        },
    }
    path = tmp_path / f"{it}.json"
    write_json(path, doc)
    return path


def test_best_is_lowest_voi_with_its_parameters(tmp_path):
    files = [
        write_scores(tmp_path, 10, {"a": [2.0, 1.5]}),
        write_scores(tmp_path, 20, {"a": [1.2, 0.9]}),
        write_scores(tmp_path, 30, {"a": [1.1, 1.0]}),
    ]
    best = select_best(load_scores(files))
    assert best["voi"] == {
        "iteration": 20,
        "parameters": {"merge_function": "mean", "threshold": 0.5},
        "value": 0.9,
        "direction": "lower",
    }


def test_ties_go_to_the_earlier_iteration(tmp_path):
    files = [write_scores(tmp_path, it, {"a": [1.0, 1.0]}) for it in (30, 10, 20)]
    best = select_best(load_scores(files))
    assert best["voi"]["iteration"] == 10
    assert best["voi"]["parameters"]["threshold"] == 0.3


def test_datasets_are_averaged(tmp_path):
    files = [
        write_scores(tmp_path, 10, {"a": [0.5, 3.0], "b": [3.0, 1.0]}),  # means 1.75, 2.0
        write_scores(tmp_path, 20, {"a": [2.0, 2.0], "b": [1.0, 1.2]}),  # means 1.5, 1.6
    ]
    scores = load_scores(files)
    assert scores.dims == ("iteration", "parameters", "dataset", "criterion")
    best = select_best(scores)
    assert (best["voi"]["iteration"], best["voi"]["value"]) == (20, 1.5)


def test_checkpoint_of_names_a_missing_iteration():
    files = ["results/r/checkpoints/100.pt", "results/r/checkpoints/1000.pt"]
    assert select.checkpoint_of(files, 100) == files[0]
    with pytest.raises(FileNotFoundError, match="iteration 10"):
        select.checkpoint_of(files, 10)


def test_validation_prediction_prefers_the_one_beside_the_scores(tmp_path):
    assert select.validation_prediction(tmp_path, "val", 20) is None
    again = tmp_path / "validation/best/val/20.zarr/prediction"
    again.mkdir(parents=True)
    assert select.validation_prediction(tmp_path, "val", 20) == again
    beside = tmp_path / "validation/20/val.zarr/prediction"
    beside.mkdir(parents=True)
    assert select.validation_prediction(tmp_path, "val", 20) == beside
