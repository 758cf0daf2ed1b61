"""What each workflow stage's output depends on: one small frozen model per stage.

A rule's ``params`` is exactly one of these (fragments: ``config.FragmentOptions``),
built in ``workflow/rules/common.smk`` from the experiment config and handed to the
stage's core function. Snakemake
reruns a job when its params change, so a model holds everything its output
depends on and nothing else: worker counts, log paths and the like are not in
it, and changing them reruns nothing. Snakemake tracks only builtin values, so
rules pass ``stage.model_dump(mode="json")`` and scripts validate it back.

Block shapes: a prediction's values are the same whatever its blocks (windows
lie on a grid anchored at the raw origin), but its blocks are its chunks, and
the fragments that follow are computed per chunk with a bounded context, so
they may differ near block faces. The block shape is therefore part of
``PredictStage``: changing it predicts again, and everything after follows the
prediction's chunks (fragments, graph, relabelling) as file inputs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, TypeAdapter

from . import arrays, tta
from .config import (
    ApplyConfig,
    DatasetConfig,
    PostProcessor,
    ResolvedRun,
    RunConfig,
    StartConfig,
    Strict,
    Task,
    TrainerConfig,
    UNetConfig,
)


class TrainStage(Strict):
    """A training chunk's checkpoint: the network, the trainer, the training data and
    the seed. Not the run's name, validation or post-processing."""

    seed: int
    task: Task
    architecture: UNetConfig
    trainer: TrainerConfig
    datasets: dict[str, DatasetConfig] = Field(description="training datasets, in datasplit order")
    train_weights: list[float] | None = None
    start: StartConfig | None = None

    @classmethod
    def of(cls, resolved: ResolvedRun, datasets: dict[str, DatasetConfig]) -> TrainStage:
        run = resolved.run
        return cls(
            seed=resolved.seed,
            task=run.task,
            architecture=run.architecture,
            trainer=run.trainer,
            datasets={name: datasets[name] for name in run.datasplit.train},
            train_weights=run.datasplit.train_weights,
            start=run.start,
        )


class PredictStage(Strict):
    """A prediction, besides its checkpoint (a file input): what is predicted and how
    it is stored."""

    raw: str = Field(description="raw array: CONTAINER.zarr/DATASET")
    roi: str | None = Field(None, description="world units; None: all of raw")
    roi_of: str | None = Field(None, description="predict the ROI of this array (GT crop)")
    dtype: Literal["float32", "uint8"] = "float32"
    test_time_augmentation: tta.Mode = "none"
    block_shape: list[int] | None = Field(
        None, description="voxels; None: one network window per block (validation)"
    )
    iteration: int | None = Field(None, description="the checkpoint's iteration, for the log")

    @classmethod
    def validation(cls, run: RunConfig, dataset: DatasetConfig) -> PredictStage:
        """A validation dataset's GT crop, one network window per block."""
        return cls(
            raw=arrays.array_path(dataset.container, dataset.raw),
            roi_of=arrays.array_path(dataset.container, dataset.gt),
            dtype=run.prediction_dtype,
            test_time_augmentation=run.test_time_augmentation,
        )

    @classmethod
    def target(
        cls, run: RunConfig, entry: ApplyConfig, dataset: DatasetConfig, dims: int, iteration: int
    ) -> PredictStage:
        """An apply target (``dims``: its raw's dimensions) with the chosen iteration."""
        return cls(
            raw=arrays.array_path(dataset.container, dataset.raw),
            roi=entry.roi,
            dtype=run.prediction_dtype,
            test_time_augmentation=run.test_time_augmentation,
            block_shape=entry.blocks(dims),
            iteration=iteration,
        )


class AverageStage(Strict):
    """An ensemble's prediction: the mean of its members' predictions of one volume
    (file inputs; their paths name the members' iterations), stored as ``dtype``."""

    members: dict[str, str] = Field(description="member run -> its prediction array")
    dtype: Literal["float32", "uint8"] = "float32"


class ScoreStage(Strict):
    """Scores of every post-processing parameter set on a region graph (a file input),
    and which segmentation is kept for viewing."""

    gt: str
    parameter_sets: list[dict[str, Any]]
    criterion: str

    @classmethod
    def of(cls, run: RunConfig, dataset: DatasetConfig) -> ScoreStage:
        return cls(
            gt=arrays.array_path(dataset.container, dataset.gt),
            parameter_sets=run.post_processor.parameter_sets(),
            criterion=run.criterion,
        )


class ClassScoreStage(Strict):
    """Per-class scores of a class prediction (a file input) on a validation crop."""

    dataset: DatasetConfig
    task: Task
    post_processor: PostProcessor

    @classmethod
    def of(cls, run: RunConfig, dataset: DatasetConfig) -> ClassScoreStage:
        return cls(dataset=dataset, task=run.task, post_processor=run.post_processor)


class ClassPostStage(Strict):
    """One class of an apply target's prediction (a file input) as a binary array (its
    chosen threshold), or its instances (components of that array, ``min_size``)."""

    name: str
    threshold: float | None = None
    min_size: int | None = None
    block_shape: list[int]


class AgglomerateStage(Strict):
    """A segmentation from fragments and region graph (file inputs)."""

    merge_function: str
    min_size: int
    threshold: float


class MutexStage(Strict):
    """A segmentation from fragments and region graph (file inputs) by mutex watershed."""

    bias: float


#: a segmentation's stage: the agglomeration's or mutex watershed's parameters (their
#: keys tell them apart, as they do the parameter sets of validation)
SegmentStage = AgglomerateStage | MutexStage


def segment_stage(parameters: dict[str, Any]) -> SegmentStage:
    """The stage of a parameter set (a chosen one, or params handed to a script)."""
    return TypeAdapter(SegmentStage).validate_python(parameters)


class ChoiceStage(Strict):
    """Which iteration and parameters an apply target uses: the pinned values, and the
    run's criterion for what is not pinned (read from the selection)."""

    criterion: str
    stable: bool = False
    iteration: int | None = None
    merge_function: str | None = None
    min_size: int | None = None
    threshold: float | None = None
    bias: float | None = None

    @classmethod
    def of(cls, entry: ApplyConfig, run: RunConfig) -> ChoiceStage:
        return cls(
            criterion=run.criterion,
            stable=run.selection == "stable",
            iteration=entry.iteration,
            merge_function=entry.merge_function,
            min_size=entry.min_size,
            threshold=entry.threshold,
            bias=entry.bias,
        )
