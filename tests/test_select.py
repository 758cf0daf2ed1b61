"""Selection: direction per criterion, ties to the earlier iteration, mean over datasets."""

import numpy as np
import pytest
import xarray as xr

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


def sweep_scores(curves: dict[str, list[float]]) -> xr.DataArray:
    """One iteration, one dataset: a voi curve over thresholds 0.3, 0.5, 0.7 per merge
    function (the other criteria follow voi)."""
    thresholds = [0.3, 0.5, 0.7]
    sets = [{"merge_function": m, "threshold": t} for m in curves for t in thresholds]
    voi = np.array([v for values in curves.values() for v in values])
    values = np.stack([voi / 10, voi, voi / 2, voi / 2], axis=-1)  # arand voi merge split
    return xr.DataArray(
        values[None, :, None, :],
        dims=("iteration", "parameters", "dataset", "criterion"),
        coords={
            "iteration": [10],
            "parameters": [select._key(p) for p in sets],
            "dataset": ["a"],
            "criterion": ["arand", "voi", "voi_merge", "voi_split"],
        },
        attrs={"parameter_sets": sets},
    )


def test_stable_selection_leaves_a_steep_edge_for_the_plateau():
    # mean's best threshold (0.5: 0.5) sits next to a cliff (0.7: 3.0); hist's curve
    # is flat around 0.7, a little worse at its own best
    scores = sweep_scores({"mean": [1.0, 0.5, 3.0], "hist_quant_50": [0.8, 0.6, 0.7]})
    assert select_best(scores)["voi"]["parameters"] == {"merge_function": "mean", "threshold": 0.5}
    stable = select_best(scores, stable=True)["voi"]
    assert stable["parameters"] == {"merge_function": "hist_quant_50", "threshold": 0.7}
    assert (stable["value"], stable["stable_value"]) == (0.7, 0.7)


def test_threshold_neighbours_stay_on_their_curve():
    sets = [{"merge_function": m, "threshold": t} for m in ("a", "b") for t in (0.5, 0.1, 0.9)]
    sets += [{"bias": b} for b in (0.6, 0.4)]  # mutex watershed: a curve over its bias
    around = select.threshold_neighbours(sets)
    expected = [{0, 1, 2}, {0, 1}, {0, 2}, {3, 4, 5}, {3, 4}, {3, 5}, {6, 7}, {6, 7}]
    assert [set(a) for a in around] == expected
