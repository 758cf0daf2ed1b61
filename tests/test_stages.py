"""Stage inputs: each holds what its output depends on, and nothing else."""

from __future__ import annotations

import copy

import pytest
from conftest import TINY

from dacapo_core import config
from dacapo_core.stages import ChoiceStage, PredictStage, ScoreStage, TrainStage


def experiment(edit=None) -> config.ExperimentConfig:
    data = copy.deepcopy(TINY)
    if edit is not None:
        edit(data)
    return config.parse(data)


def stages(cfg: config.ExperimentConfig) -> dict[str, object]:
    resolved = cfg.resolved_runs()["tiny"]
    run, entry = resolved.run, cfg.apply[0]
    test, val = cfg.datasets["test_a"], cfg.datasets["val_a"]
    return {
        "train": TrainStage.of(resolved, cfg.datasets),
        "validate_predict": PredictStage.validation(run, val),
        "fragments": run.post_processor.fragments,
        "score": ScoreStage.of(run, val),
        "choose": ChoiceStage.of(entry, run),
        "predict": PredictStage.target(run, entry, test, 3, 20),
    }


def tiny(key: str, **values):
    return lambda c: c["runs"]["tiny"][key].update(values)


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (lambda c: c["apply"][0].update(num_workers=1), set()),
        (lambda c: c["apply"][0].update(threshold=0.4), {"choose"}),
        (lambda c: c["apply"][0].update(iteration=10), {"choose"}),
        (lambda c: c["apply"][0].update(block_shape=[32, 32, 32]), {"predict"}),
        (lambda c: c["apply"][0].update(roi="[0:256,0:256,0:256]"), {"predict"}),
        (tiny("post_processor", thresholds=[0.5]), {"score"}),
        (tiny("post_processor", min_size=[0]), {"score"}),
        (tiny("post_processor", fragments={"seed_distance": 2}), {"fragments"}),
        (lambda c: c["runs"]["tiny"].update(criterion="arand"), {"score", "choose"}),
        (lambda c: c["runs"]["tiny"].update(train_until=30), set()),
        (lambda c: c["runs"]["tiny"].update(validation_interval=5), set()),
        (lambda c: c["runs"]["tiny"]["datasplit"].update(validate=["train_a"]), set()),
        (tiny("trainer", learning_rate=0.01), {"train"}),
        (tiny("architecture", fmaps=5), {"train"}),
        (lambda c: c.update(seed=2), {"train"}),
        (
            lambda c: c["runs"]["tiny"].update(prediction_dtype="uint8"),
            {"validate_predict", "predict"},
        ),
        (
            lambda c: c["runs"]["tiny"].update(test_time_augmentation="mirror"),
            {"validate_predict", "predict"},
        ),
    ],
)
def test_a_config_edit_changes_exactly_the_stages_that_depend_on_it(edit, changed):
    before, after = stages(experiment()), stages(experiment(edit))
    assert {name for name in before if before[name] != after[name]} == changed


def test_stages_survive_snakemake_params():
    """Rules pass stages as JSON (Snakemake tracks only builtin params): the script's
    model equals the rule's."""
    for stage in stages(experiment()).values():
        assert type(stage).model_validate(stage.model_dump(mode="json")) == stage
