"""Apply uses the selection, unless the config pins it: the choice and the DAG it implies."""

from __future__ import annotations

import pytest
from conftest import planned_jobs, snakemake, write_config

from dacapo_core import config
from dacapo_core.arrays import write_json
from dacapo_core.select import apply_choice, apply_inputs, load_scores, select_best
from dacapo_core.stages import ChoiceStage

P = [
    {"merge_function": "mean", "min_size": 0, "threshold": 0.3},
    {"merge_function": "mean", "min_size": 0, "threshold": 0.5},
    {"merge_function": "hist_quant_50", "min_size": 20, "threshold": 0.5},
]
#: iteration -> dataset -> voi per parameter set. At 10, dataset a alone prefers P[0],
#: the mean over datasets P[1]; 20 is the best iteration, with P[2].
VOI = {
    10: {"a": [1.0, 2.0, 1.6], "b": [3.0, 1.0, 1.6]},
    20: {"a": [1.2, 1.2, 0.8], "b": [1.2, 1.2, 1.0]},
}


@pytest.fixture
def selection(tmp_path):
    """A workdir where run ``r`` has scores.json per iteration and the best.json selected
    from them."""
    files = []
    for it, per_dataset in VOI.items():
        doc = {
            "iteration": it,
            "datasets": {
                ds: {
                    "results": [
                        {
                            "parameters": p,
                            "scores": {"voi": v, "voi_split": v, "voi_merge": 0.0, "arand": v},
                        }
                        for p, v in zip(P, values, strict=True)
                    ]
                }
                for ds, values in per_dataset.items()
            },
        }
        files.append(tmp_path / f"results/r/validation/{it}/scores.json")
        write_json(files[-1], doc)
    write_json(tmp_path / "results/r/best.json", select_best(load_scores(files)))
    return tmp_path


def choose(workdir, parameters=True, **pins):
    """The files run ``r`` of ``workdir`` reads for these pins, and the choice."""
    stage = ChoiceStage(criterion="voi", **pins)
    files = apply_inputs(stage, "r", parameters)
    paths = {name: workdir / path for name, path in files.items()}
    return files, apply_choice(stage, parameters=parameters, **paths)


def test_unpinned_apply_uses_best_json(selection):
    files, choice = choose(selection)
    assert files == {"best": "results/r/best.json"}
    assert choice == {"iteration": 20, "parameters": P[2]}


def test_pinned_iteration_gets_the_best_parameters_of_that_iteration(selection):
    files, choice = choose(selection, iteration=10)
    assert files == {"scores": "results/r/validation/10/scores.json"}
    assert choice == {"iteration": 10, "parameters": P[1]}  # not best.json's P[2], nor a's P[0]


def test_pinned_values_win(selection):
    _, choice = choose(selection, iteration=10, threshold=0.7)
    assert choice["parameters"] == {**P[1], "threshold": 0.7}
    _, choice = choose(selection, min_size=0, merge_function="hist_quant_75")
    assert choice == {
        "iteration": 20,
        "parameters": {"merge_function": "hist_quant_75", "min_size": 0, "threshold": 0.5},
    }


def test_fully_pinned_apply_reads_no_selection_file(selection):
    pins = {"iteration": 10, "merge_function": "mean", "min_size": 5, "threshold": 0.4}
    files, choice = choose(selection / "absent", **pins)
    assert files == {}
    assert choice == {"iteration": 10, "parameters": {k: pins[k] for k in P[0]}}
    # prediction needs the iteration only
    assert choose(selection / "absent", parameters=False, iteration=10) == ({}, {"iteration": 10})


@pytest.mark.parametrize(
    ("pin", "expected"),
    [
        ({"merge_function": "median"}, "apply.0.merge_function"),
        ({"merge_function": "hist_quant_100"}, "apply.0.merge_function"),
        ({"min_size": -1}, "apply.0.min_size"),
    ],
)
def test_pins_are_validated_like_the_grid(pin, expected):
    data = {
        "datasets": {"a": {"container": "x.zarr", "raw": "raw", "gt": "gt"}},
        "runs": {"r": {"datasplit": {"train": ["a"], "validate": ["a"]}}},
        "apply": [{"run": "r", "input": "a", **pin}],
    }
    with pytest.raises(config.ConfigError, match=expected):
        config.parse(data)


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        # the selection decides: the segmentation waits for the checkpoint `choose`, and
        # what it needs (fragments, prediction) is planned once the choice is known
        ({}, {"choose": 1, "select": 1, "validate_predict": 2, "predict": 0}),
        (
            {"iteration": 10},
            {"choose": 1, "select": 0, "validate_predict": 1, "validation_scores": 1},
        ),
        # all pinned: no selection at all, the whole apply branch is planned
        (
            {"iteration": 20, "threshold": 0.5, "merge_function": "mean", "min_size": 0},
            {"choose": 0, "select": 0, "validate_predict": 0, "predict": 1, "fragments": 1},
        ),
    ],
)
def test_apply_dag_depends_only_on_what_is_not_pinned(tmp_path, tiny_config, pins, expected):
    """Dry runs of the apply target (the demo data is planned, so nothing needs to exist)."""
    tiny_config["apply"][0].update(pins)
    cfg = write_config(tmp_path, tiny_config)
    target = "results/tiny/apply/test_a.zarr/segmentation"
    result = snakemake(tmp_path, target, "-n", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = planned_jobs(result)
    assert jobs["segment"] == 1
    assert {rule: jobs.get(rule, 0) for rule in expected} == expected, jobs
    if not jobs.get("select"):
        assert "best.json" not in result.stdout
