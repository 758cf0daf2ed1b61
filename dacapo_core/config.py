"""The experiment config: typed models with documented defaults, and one-line errors.

Every key except ``datasets`` and a run's ``datasplit`` has a default, so a minimal
config works. The models are the single source of truth: the JSON schema under
``workflow/schemas/`` is generated from them (``dacapo-flow schema``).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from . import tta
from .errors import ConfigError
from .segment.fragments import FragmentOptions
from .strict import Strict

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Shape = list[Annotated[int, Field(gt=0)]]

#: criterion of affinities runs -> "lower" or "higher" is better
CRITERIA: dict[str, str] = {
    "voi": "lower",
    "voi_split": "lower",
    "voi_merge": "lower",
    "arand": "lower",
}

#: criterion of class runs (per class, then the mean over classes) -> its direction;
#: f1 is the detection F1 of an instance class, the voxel F1 (Dice) of the others
CLASS_CRITERIA: dict[str, str] = {
    "dice": "higher",
    "iou": "higher",
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "surface_distance": "lower",
}

#: every criterion's direction
DIRECTIONS: dict[str, str] = {**CRITERIA, **CLASS_CRITERIA}


class DatasetConfig(Strict):
    """A named volume: a zarr container and array paths inside it."""

    container: str = Field(description="path of the zarr container")
    raw: str = Field(description="raw intensities inside the container")
    gt: str | None = Field(None, description="instance labels (0 = background/boundary)")
    mask: str | None = Field(None, description="nonzero where gt is labelled")
    classes: list[Name] | None = Field(
        None,
        description="class tasks: the classes annotated in this crop (default: all of a "
        "run's classes); the others are unknown here, masked out of the loss",
    )


class DatasetTable(Strict):
    """Many datasets in one CSV file (experiments have tens to hundreds of crops): a
    header row, then one dataset per row. Its columns are ``name`` and the keys of a
    dataset entry (``container`` and ``raw`` required; ``gt``, ``mask``, ``classes``
    separated by ``;``); an empty cell leaves its key out. Each row is a dataset of its
    own name, and the table's name in a datasplit stands for all of its rows."""

    csv: str = Field(
        description="CSV file, one dataset per row (relative to the working directory, as "
        "container)"
    )


#: a CSV table's columns: the dataset's name, then the keys of a dataset entry
TABLE_COLUMNS = ("name", *DatasetConfig.model_fields)
#: the columns every row fills
REQUIRED_COLUMNS = (
    "name",
    *(key for key, field in DatasetConfig.model_fields.items() if field.is_required()),
)


@dataclass(frozen=True)
class TableRow:
    """Where a dataset of a CSV table is written, so that an error names its cell; rows
    are numbered as a spreadsheet numbers them (the header is row 1)."""

    table: str
    csv: str
    row: int

    @property
    def where(self) -> str:
        return f"datasets.{self.table}: {self.csv} row {self.row}"

    def column(self, name: str) -> str:
        return f"{self.where}: column '{name}'"


class DataSplit(Strict):
    """Datasets by name; a CSV table's name stands for all of its rows."""

    train: list[Name] = Field(min_length=1)
    validate_: list[Name] = Field(default_factory=list, alias="validate")
    train_weights: list[float] | None = Field(
        None,
        description="sampling weight per entry of train (default: equal); a CSV table's "
        "weight is each of its rows'",
    )


#: the network head's output function, one per task
Activation = Literal["sigmoid", "tanh", "softmax"]


class AffinitiesTask(Strict):
    """gt -> affinities for a neighbourhood of offsets (voxels), with balanced weights."""

    activation: ClassVar[Activation] = "sigmoid"
    type: Literal["affinities"] = "affinities"
    neighborhood: list[list[int]] = Field(
        default=[[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0], [0, 3, 0], [0, 0, 3]],
        description="offsets; the first ones must be the unit offsets along each axis "
        "(2 entries per offset for a 2D network: within sections on a 3D stack)",
    )
    lsds: bool = Field(
        False,
        description="also train local shape descriptors (Sheridan et al. 2022) as an "
        "auxiliary target: 10 more head channels in 3D, 6 in 2D; predictions keep only "
        "the affinities",
    )
    lsd_sigma: float = Field(
        80,
        gt=0,
        description="world units: the Gaussian's sigma of the LSDs' neighbourhood "
        "(80 = 10 voxels of 8 nm EM, the paper's and DaCapo's choice)",
    )
    lsd_downsample: int = Field(
        2,
        ge=1,
        description="compute the LSD target on every n-th voxel per axis, each value "
        "repeated (lsd's downsample): n^dims times fewer voxels to filter",
    )
    lsds_weight: float = Field(
        1,
        ge=0,
        description="weight of the LSDs' mean squared error beside the affinities' loss",
    )

    @field_validator("neighborhood")
    @classmethod
    def _nearest_first(cls, value: list[list[int]]) -> list[list[int]]:
        dims = len(value[0]) if value else 0
        if dims not in (2, 3) or any(len(v) != dims for v in value):
            raise ValueError("offsets must all have 2 or 3 entries")
        units = [[int(i == d) for i in range(dims)] for d in range(dims)]
        if value[:dims] != units:
            raise ValueError(f"must start with the unit offsets {units} (used for fragments)")
        return value


class ClassDefinition(Strict):
    """Which voxels of a crop belong to a class: label ids of its ``gt``, ``all`` of
    them (instance labels binarised), or the nonzero voxels of its own ``array``."""

    labels: list[Annotated[int, Field(gt=0)]] | Literal["all"] | None = Field(
        None, description="gt label ids grouped into the class, or all (every nonzero id)"
    )
    array: str | None = Field(
        None, description="an array in each dataset's container, nonzero = the class"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ClassDefinition:
        if (self.labels is None) == (self.array is None):
            raise ValueError("give either labels or array")
        return self


class ClassTask(Strict):
    """A semantic task: one output per class, named in ``classes``."""

    classes: dict[Name, ClassDefinition] = Field(
        min_length=1,
        description="class name -> {labels: [ids]}, {labels: all} or {array: PATH}",
    )


class DistancesTask(ClassTask):
    """Per class, the signed distance (world units, positive inside) to its boundary:
    target = tanh(distance / scale), the distance clipped at ``clip``. A voxel whose
    distance the crop cannot tell (a labelled boundary is not nearer than the crop's
    edge, and the edge is nearer than ``clip``) is masked out of the loss. Classes may
    overlap (e.g. an organelle and its membrane)."""

    activation: ClassVar[Activation] = "tanh"
    type: Literal["distances"]
    scale: float = Field(50, gt=0, description="world units: target = tanh(distance / scale)")
    clip: float = Field(150, gt=0, description="world units: distances beyond are clipped")


class OneHotTask(ClassTask):
    """Background + classes, one voxel one class: softmax head, cross-entropy loss. A
    crop that leaves a class unannotated cannot tell its background from that class:
    its voxels outside the annotated classes are masked out of the loss."""

    activation: ClassVar[Activation] = "softmax"
    type: Literal["one_hot"]

    @field_validator("classes")
    @classmethod
    def _exclusive(cls, value: dict[str, ClassDefinition]) -> dict[str, ClassDefinition]:
        grouped = [(name, d.labels) for name, d in value.items() if d.labels is not None]
        for i, (name, labels) in enumerate(grouped):
            for other, other_labels in grouped[:i]:
                if "all" in (labels, other_labels) or set(labels) & set(other_labels):
                    raise ValueError(
                        f"'{name}' overlaps '{other}' (one_hot classes exclude each other)"
                    )
        return value


def _task_type(value: Any) -> str:
    """The task's ``type``; affinities where the config leaves it out."""
    if isinstance(value, dict):
        return value.get("type", "affinities")
    return value.type


#: the tasks' ``type`` values
TASK_TYPES = ("affinities", "distances", "one_hot")


Task = Annotated[
    Annotated[AffinitiesTask, Tag("affinities")]
    | Annotated[DistancesTask, Tag("distances")]
    | Annotated[OneHotTask, Tag("one_hot")],
    Discriminator(_task_type),
]


#: shape keys of a 2D run (2D ``neighborhood`` or ``input_shape``) that the config leaves out
DEFAULTS_2D: dict[str, dict[str, Any]] = {
    "task": {"neighborhood": [[1, 0], [0, 1], [3, 0], [0, 3]]},
    "architecture": {
        "input_shape": [132, 132],
        "eval_shape_increase": [64, 64],
        "downsample_factors": [[2, 2], [2, 2]],
    },
}


class UNetConfig(Strict):
    """A UNet with valid convolutions; its output shape follows from ``input_shape``.

    Shapes of two entries make a 2D network. On a 3D stack it sees one section at
    a time: trained on single sections, it predicts each section on its own.
    """

    type: Literal["unet"] = "unet"
    input_shape: Shape = Field(
        [68, 68, 68],
        description="2D runs: default [132, 132]. 3D: 68^3 with fmap_inc_factor 3 makes "
        "about 2.7x the iterations per minute of 76^3 with 4 on CPU, and on real EM its test "
        "VOI was 0.66 against 1.00 after about 10 minutes of training (bench/defaults_learn.py)",
    )
    eval_shape_increase: list[Annotated[int, Field(ge=0)]] = Field(
        [32, 32, 32], description="2D runs: default [64, 64]"
    )
    fmaps: int = Field(12, gt=0)
    fmap_inc_factor: int = Field(3, gt=0)
    downsample_factors: list[Shape] = Field(
        [[2, 2, 2], [2, 2, 2]], description="2D runs: default [[2, 2], [2, 2]]"
    )
    kernel_size: int = Field(3, ge=1)


class SimpleAugment(Strict):
    type: Literal["simple"] = "simple"
    mirror: bool = True
    transpose: bool = True


class ElasticAugment(Strict):
    """Smooth random deformation (and rotation) along the network's axes (in-plane for a
    2D network on a stack); spacing and jitter in voxels."""

    type: Literal["elastic"] = "elastic"
    control_point_spacing: Shape | None = Field(None, description="default: 10 per axis")
    jitter_sigma: list[float] | None = Field(None, description="default: 1 per axis")
    rotate: bool = True
    subsample: int = Field(2, ge=1)


class IntensityAugment(Strict):
    """raw * scale + shift, each drawn uniformly from its range."""

    type: Literal["intensity"] = "intensity"
    scale: tuple[float, float] = (0.9, 1.1)
    shift: tuple[float, float] = (-0.1, 0.1)


class GammaAugment(Strict):
    """raw ** gamma (raw in [0, 1]), gamma drawn uniformly from ``gamma``."""

    type: Literal["gamma"] = "gamma"
    gamma: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (0.75, 1.33)


class NoiseAugment(Strict):
    """Additive Gaussian noise of variance ``var`` on raw in [0, 1], with probability ``p``."""

    type: Literal["noise"] = "noise"
    var: float = Field(0.001, gt=0)
    p: float = Field(0.5, ge=0, le=1)


class DefectAugment(Strict):
    """Anisotropic EM: whole sections along ``axis`` missing (zero) or of low contrast."""

    type: Literal["defect"] = "defect"
    prob_missing: float = Field(0.05, ge=0, le=1)
    prob_low_contrast: float = Field(0.05, ge=0, le=1)
    contrast_scale: float = Field(0.1, ge=0, le=1)
    axis: int = Field(0, ge=0, le=2)


Augment = Annotated[
    SimpleAugment | ElasticAugment | IntensityAugment | GammaAugment | NoiseAugment | DefectAugment,
    Field(discriminator="type"),
]


class TrainerConfig(Strict):
    batch_size: int = Field(1, gt=0)
    optimizer: Literal["adam", "adamw", "radam"] = "adam"
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup: int = Field(0, ge=0, description="iterations of linear learning-rate warm-up")
    decay: Literal["none", "cosine", "linear"] = Field(
        "none", description="learning-rate decay after warm-up, to 0 at decay_iterations"
    )
    decay_iterations: int = Field(
        100000,
        gt=0,
        description="horizon of the decay (not train_until: raising it must not change "
        "the iterations already trained)",
    )
    ema_decay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay of an exponential moving average of the weights, updated "
        "every iteration (e.g. 0.999; warmed up as (1 + n) / (10 + n) after n updates); "
        "0: off. Checkpoints then predict (validate, "
        "apply, export) with the average, which changes less between checkpoints than "
        "the trained weights, and keep those to resume from",
    )
    min_masked: float = Field(0.1, ge=0, le=1)
    snapshot_interval: int = Field(1000, gt=0)
    augments: list[Augment] = Field(default_factory=lambda: [SimpleAugment(), IntensityAugment()])
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = Field(
        False,
        description="bf16 autocast of the network's forward pass, in training and in "
        "the checkpoint's predictions (the loss stays float32). Faster on CPUs with bf16 "
        "matrix units (Intel AMX); on an H200 the default network's step was slower "
        "(0.62x: its convolutions are too small to gain). Networks trained in bf16 "
        "segmented worse on real EM (validation VOI 0.56 vs 0.44 over three seeds). "
        "README: training options",
    )
    num_data_fetchers: int = Field(
        1,
        ge=0,
        description="processes that prepare batches ahead of the network (0: in the "
        "training process); batch i is the same either way",
    )

    def learning_rate_factor(self, iteration: int) -> float:
        """Multiplier of ``learning_rate`` at ``iteration`` (0-based steps taken)."""
        if iteration < self.warmup:
            return (iteration + 1) / self.warmup
        progress = min(1.0, (iteration - self.warmup) / max(1, self.decay_iterations - self.warmup))
        if self.decay == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if self.decay == "linear":
            return 1.0 - progress
        return 1.0


class WatershedConfig(Strict):
    """Fragments (watershed on affinities) + hierarchical agglomeration, a grid sweep; and
    optionally mutex watershed of the same region graph, a sweep of biases."""

    type: Literal["watershed"] = "watershed"
    fragments: FragmentOptions = FragmentOptions()
    thresholds: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default=[round(0.05 * i, 2) for i in range(1, 20)],
        min_length=1,
        description="default 0.05 .. 0.95: the graph sweep makes a fine grid cheap, and on "
        "real EM the best threshold fell between steps of 0.1 (bench/defaults_learn.py)",
    )
    merge_function: list[Annotated[str, Field(pattern=r"^(mean|hist_quant_[1-9][0-9]?)$")]] = Field(
        default=["mean", "hist_quant_75"],
        min_length=1,
        description="mean or hist_quant_Q (Q in 1..99)",
    )
    min_size: list[Annotated[int, Field(ge=0)]] = Field(
        default=[0],
        min_length=1,
        description="fragments smaller than this (voxels) merge into their best neighbour first",
    )
    biases: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default=[],
        description="mutex watershed on the region graph, one parameter set per bias, swept "
        "beside the agglomeration grid: an edge (nearest-neighbour or long-range) attracts "
        "where its mean affinity is above the bias, repels where below; one superblock only",
    )

    @model_validator(mode="before")
    @classmethod
    def _long_range_for_biases(cls, data: Any) -> Any:
        """Mutex watershed needs the long-range edges: biases turn them on."""
        if not isinstance(data, dict) or not data.get("biases"):
            return data
        fragments = data.get("fragments") or {}
        if isinstance(fragments, BaseModel):
            fragments = fragments.model_dump(exclude_unset=True)
        if not isinstance(fragments, dict):
            return data  # the field's own validation names it
        if fragments.get("long_range") is False:
            raise ValueError("fragments.long_range: biases (mutex watershed) need it")
        return {**data, "fragments": {**fragments, "long_range": True}}

    def parameter_sets(self) -> list[dict[str, Any]]:
        """Every combination of the grid, then each bias, in a stable order."""
        grid = [
            {"merge_function": m, "min_size": s, "threshold": t}
            for m in self.merge_function
            for s in sorted(self.min_size)
            for t in sorted(self.thresholds)
        ]
        return grid + [{"bias": b} for b in sorted(self.biases)]


def _known_criterion(value: str) -> str:
    if value not in DIRECTIONS:
        raise ValueError(f"unknown criterion '{value}' (choose from {sorted(DIRECTIONS)})")
    return value


class InstanceOptions(Strict):
    """An instance class: connected components (face-connected) of its binary array."""

    min_size: int = Field(0, ge=0, description="voxels: smaller components become background")


class ThresholdConfig(Strict):
    """Class runs: one binary array per class, the prediction above a threshold chosen
    per class from ``thresholds`` in validation; instance classes also get their
    connected components."""

    type: Literal["threshold"]
    thresholds: list[float] = Field(
        default=[-0.5, -0.25, 0.0, 0.25, 0.5],
        min_length=1,
        description="in the prediction's units: tanh(distance / scale) in (-1, 1) for "
        "distances, a probability in (0, 1) for one_hot",
    )
    instances: dict[Name, InstanceOptions] = Field(
        default_factory=dict, description="instance classes: class name -> {min_size: voxels}"
    )

    def parameter_sets(self) -> list[dict[str, Any]]:
        return [{"threshold": t} for t in sorted(self.thresholds)]


class ArgmaxConfig(Strict):
    """one_hot runs: one class-label array (label k: the k-th class, 0: background)."""

    type: Literal["argmax"]

    def parameter_sets(self) -> list[dict[str, Any]]:
        return [{}]


#: the post-processors' ``type`` values, and the tasks each serves
POST_PROCESSOR_TASKS: dict[str, tuple[str, ...]] = {
    "watershed": ("affinities",),
    "threshold": ("distances", "one_hot"),
    "argmax": ("one_hot",),
}


def _post_processor_type(value: Any) -> str:
    """The post-processor's ``type``; watershed where the config leaves it out."""
    if isinstance(value, dict):
        return value.get("type", "watershed")
    return value.type


PostProcessor = Annotated[
    Annotated[WatershedConfig, Tag("watershed")]
    | Annotated[ThresholdConfig, Tag("threshold")]
    | Annotated[ArgmaxConfig, Tag("argmax")],
    Discriminator(_post_processor_type),
]


Criterion = Annotated[str, AfterValidator(_known_criterion)]


class StartConfig(Strict):
    """Fine-tuning: start from another run's best checkpoint by ``criterion``, or from a
    file (``path``): a BioImage.IO model package (``.zip`` or its ``rdf.yaml``) with
    PyTorch state-dict weights, or a PyTorch checkpoint or state dict of a compatible UNet.
    Layers whose shapes fit are loaded, the others initialised fresh."""

    run: Name | None = Field(None, description="another run of this experiment")
    criterion: Criterion = Field("voi", description="with run: which selection to start from")
    path: str | None = Field(
        None, description="a model file (relative to the working directory); exclusive with run"
    )


class RunConfig(Strict):
    repetitions: int = Field(1, ge=1)
    datasplit: DataSplit
    task: Task = Field(
        AffinitiesTask(),
        description="affinities (default), distances or one_hot (by its type); the network "
        "head follows: sigmoid, tanh, softmax",
    )
    architecture: UNetConfig = UNetConfig()
    trainer: TrainerConfig = TrainerConfig()
    train_until: int = Field(2000, gt=0)
    validation_interval: int = Field(500, gt=0)
    post_processor: PostProcessor = Field(
        WatershedConfig(),
        description="watershed (affinities, the default), threshold (class runs; the "
        "default for distances) or argmax (one_hot; its default), by its type",
    )
    criterion: Criterion = Field(
        "voi",
        description=f"affinities: {', '.join(CRITERIA)}; class runs (default dice): "
        f"{', '.join(CLASS_CRITERIA)}",
    )
    start: StartConfig | None = Field(
        None, description="initialise from another run's selected checkpoint (fine-tuning)"
    )
    selection: Literal["best", "stable"] = Field(
        "best",
        description="affinities: best (the best value) or stable (the best worst-case over "
        "each threshold and its neighbours: a choice off a steep edge of the threshold curve)",
    )
    prediction_dtype: Literal["float32", "uint8"] = Field(
        "float32",
        description="how validation and apply store affinities (uint8: a quarter of the disk, "
        "steps of 1/255); one policy for both, so tuned thresholds mean the same",
    )
    test_time_augmentation: tta.Mode = Field(
        "none",
        description="validation and apply average the prediction over views of the input, "
        "each undone on the output: mirror (every mirror of the network's axes: 8 views in "
        "3D, 4 in 2D) or mirror_transpose (also every transpose of network axes of equal "
        "voxel size: up to 48 views); as many times the prediction's cost. A view that does "
        "not map the affinities' neighbourhood onto itself is left out (an error where no "
        "transpose does)",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_classes(cls, data: Any) -> Any:
        """A class run's post-processor and criterion default by its task: threshold
        (distances) or argmax (one_hot), and dice. A given post-processor names its type."""
        if not isinstance(data, dict) or not isinstance(data.get("task"), dict):
            return data
        kind = _task_type(data["task"])
        if kind == "affinities":
            return data
        data = dict(data)
        data.setdefault("criterion", "dice")
        if data.get("post_processor") is None:
            data["post_processor"] = {"type": "threshold" if kind == "distances" else "argmax"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_2d(cls, data: Any) -> Any:
        """A 2D ``neighborhood`` or ``input_shape`` makes the run 2D: the shape keys it
        leaves out get 2D defaults, not the 3D ones."""
        if not isinstance(data, dict):
            return data
        parts = {key: data.get(key) or {} for key in DEFAULTS_2D}
        if not all(isinstance(part, dict) for part in parts.values()):
            return data
        neighborhood = parts["task"].get("neighborhood")
        sequence = (list, tuple)
        first = neighborhood[0] if isinstance(neighborhood, sequence) and neighborhood else None
        given = (first, parts["architecture"].get("input_shape"))
        if not any(isinstance(shape, sequence) and len(shape) == 2 for shape in given):
            return data
        # a class task has no offsets: only its architecture gets 2D defaults
        keys = [k for k in parts if k != "task" or _task_type(parts[k]) == "affinities"]
        return {**data, **{key: {**DEFAULTS_2D[key], **parts[key]} for key in keys}}

    def iterations(self) -> list[int]:
        """Checkpoint iterations: every validation interval, and train_until itself."""
        its = list(range(self.validation_interval, self.train_until, self.validation_interval))
        return its + [self.train_until]


#: a pinned merge function or minimal size is validated as one entry of the post_processor grid
_MergeFunction = get_args(WatershedConfig.model_fields["merge_function"].annotation)[0]
_MinSize = get_args(WatershedConfig.model_fields["min_size"].annotation)[0]
_Bias = get_args(WatershedConfig.model_fields["biases"].annotation)[0]


#: block edge (voxels) per axis where no block shape is given
BLOCK_EDGE = 128


def block_shape_or_default(block_shape: Sequence[int] | None, dims: int) -> list[int]:
    """``block_shape`` (voxels), or ``BLOCK_EDGE`` per axis of ``dims``-D data."""
    return list(block_shape or [BLOCK_EDGE] * dims)


class ApplyConfig(Strict):
    """A target of a run, or of an ensemble of runs. Iteration and post-processing default
    to the run's selection (best.json, its ``criterion``); each may be pinned instead.

    An ensemble (``runs``, or ``run`` with ``repetitions: all``) averages its members'
    predictions, each member at its own selected iteration; its post-processing is
    selected on its own validation (the members' validation predictions averaged)."""

    run: Name | None = Field(None, description="the run to apply (exclusive with runs)")
    runs: list[Name] | None = Field(
        None,
        min_length=2,
        description="an ensemble of these runs: their predictions averaged (exclusive with run)",
    )
    repetitions: Literal["all"] | None = Field(
        None, description="with run: an ensemble of all of the run's repetitions"
    )
    ensemble: Name | None = Field(
        None,
        description="an ensemble's name (results/ensembles/NAME; default: its runs joined "
        "by '+', or the run's name with repetitions: all)",
    )
    input: Name
    name: Name | None = Field(None, description="target name (default: the input's name)")
    roi: str | None = Field(None, description='world units, "[z0:z1,y0:y1,x0:x1]"')
    num_workers: int = Field(2, ge=1)
    block_shape: Shape | None = Field(
        None, description=f"voxels; default {BLOCK_EDGE} per axis of the input"
    )
    superblock_shape: Shape | None = Field(
        None,
        description="voxels, a multiple of block_shape: each superblock is its own job for "
        "prediction, fragments and edges, the agglomeration octree and relabelling (default: "
        "the whole target is one superblock; size it so one job's blocks fit its time and "
        "memory, docs/cluster.md)",
    )
    threshold: float | None = Field(None, gt=0, lt=1, description="default: selected")
    iteration: int | None = Field(
        None,
        gt=0,
        description="default: selected; pinned: unpinned parameters are the best at this iteration",
    )
    merge_function: _MergeFunction | None = Field(None, description="default: selected")
    min_size: _MinSize | None = Field(None, description="default: selected")
    bias: _Bias | None = Field(
        None, description="mutex watershed at this bias, instead of the agglomeration"
    )

    @property
    def target(self) -> str:
        return self.name or self.input

    @property
    def ensemble_name(self) -> str | None:
        """The ensemble's name; None for a single run."""
        if self.runs is not None:
            return self.ensemble or "+".join(self.runs)
        if self.repetitions is not None:
            return self.ensemble or self.run
        return None

    def blocks(self, dims: int) -> list[int]:
        """The block shape (voxels) on the ``dims``-D input."""
        return block_shape_or_default(self.block_shape, dims)


class DemoConfig(Strict):
    """A synthetic EM-like volume, made by the workflow itself."""

    container: str = "data/demo.zarr"
    voxel_size: Shape = [8, 8, 8]
    kind: Literal["cells", "organelles"] = Field(
        "cells",
        description="cells: dense cell labels (affinities); organelles: mitochondria "
        "(instances), ER and vesicles, for class runs (README): one container per "
        "region inside container (a folder), e.g. CONTAINER/train.zarr",
    )

    def holds(self, container: str) -> bool:
        """Whether the demo makes ``container`` (itself, or a container inside it)."""
        return container == self.container or container.startswith(f"{self.container}/")


class ExperimentConfig(Strict):
    """The experiment; its CSV tables of datasets expanded into their rows (read when
    it is validated: a mistake in a table raises ConfigError naming its row and column)."""

    seed: int = 42
    demo: DemoConfig | None = None
    datasets: dict[Name, DatasetConfig] = Field(min_length=1)
    runs: dict[Name, RunConfig] = Field(min_length=1)
    apply: list[ApplyConfig] = Field(default_factory=list)
    keep_validation_predictions: bool = Field(
        True,
        description="false: delete each validation prediction once its fragments and region "
        "graph are made (saves disk; changing the fragment options then predicts again)",
    )
    #: dataset name -> the CSV row it comes from (the datasets of CSV tables only)
    _rows: dict[str, TableRow] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _expand(
        cls, data: Any, handler: ModelWrapValidatorHandler[ExperimentConfig]
    ) -> ExperimentConfig:
        """CSV tables become datasets before validation, remembering their rows for errors."""
        data, rows = _expand_tables(data)
        cfg = handler(data)
        if rows:  # not when ``data`` was an ExperimentConfig already
            cfg._rows = rows
        return cfg

    def key(self, dataset: str, key: str, index: int | None = None) -> str:
        """Where an error about a dataset's key points: ``datasets.NAME.KEY[INDEX]``, or
        the CSV row and column of a table's dataset."""
        row = self._rows.get(dataset)
        if row is not None:
            return row.column(key)
        return f"datasets.{dataset}.{key}" + ("" if index is None else f"[{index}]")

    @property
    def tables(self) -> dict[str, list[str]]:
        """CSV table name -> the names of its datasets, in row order."""
        tables: dict[str, list[str]] = {}
        for name, row in self._rows.items():
            tables.setdefault(row.table, []).append(name)
        return tables

    def repetitions(self, name: str) -> list[str]:
        """The resolved names of run ``name``: itself, or ``NAME__k`` per repetition."""
        count = self.runs[name].repetitions
        return [name] if count == 1 else [f"{name}__{k}" for k in range(count)]

    def resolved_runs(self) -> dict[str, ResolvedRun]:
        """Run name -> run, with repetitions expanded to ``NAME__k``."""
        out = {}
        for name, run in self.runs.items():
            for k, rname in enumerate(self.repetitions(name)):
                out[rname] = ResolvedRun(name=rname, base=name, seed=self.seed + k, run=run)
        return out

    def members(self, entry: ApplyConfig) -> list[str]:
        """The resolved runs an apply entry predicts with: its ensemble's members, or its run."""
        if entry.runs is not None:
            return list(entry.runs)
        if entry.repetitions is not None:
            return self.repetitions(entry.run)
        return [entry.run]

    def ensembles(self) -> dict[str, list[str]]:
        """Ensemble name -> its members, of the apply entries that name ensembles."""
        return {
            entry.ensemble_name: self.members(entry)
            for entry in self.apply
            if entry.ensemble_name is not None
        }


class ResolvedRun(BaseModel):
    """One run of an experiment: its config plus the seed of its repetition."""

    model_config = ConfigDict(frozen=True)
    name: str
    base: str
    seed: int
    run: RunConfig


class _WrittenConfig(ExperimentConfig):
    """An experiment config as written: a dataset entry may be a CSV table of datasets.
    (The JSON schema's model; ExperimentConfig validates and expands the tables.)"""

    model_config = ConfigDict(title="ExperimentConfig")
    datasets: dict[Name, DatasetConfig | DatasetTable] = Field(
        min_length=1, description="a dataset, or {csv: FILE}: a CSV table of datasets"
    )


def _problem(error: ErrorDetails) -> str:
    """What is wrong with a value, the end of a one-line error."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "missing required key"
    return f"{error['msg']} (got {error.get('input')!r})"


def _format(error: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One line: the first error's key (under ``prefix``) and what is wrong."""
    first = error.errors()[0]
    loc = (*prefix, *first["loc"])
    # a task's or post-processor's type appears in the location after it (the union's tag)
    unions = {"task": TASK_TYPES, "post_processor": tuple(POST_PROCESSOR_TASKS)}
    tags = [i for i in range(1, len(loc)) if loc[i] in unions.get(loc[i - 1], ())]
    kept = [p for i, p in enumerate(loc) if i not in tags]
    where = ".".join(str(p) for p in kept if not str(p).startswith("function-"))
    return f"{where}: {_problem(first)}"


#: CSV table entries of ``datasets`` by name, as written
_TABLES = TypeAdapter(dict[Name, DatasetTable])


def _expand_tables(data: Any) -> tuple[Any, dict[str, TableRow]]:
    """The config with each CSV table's datasets in place of the table, and of its name
    in datasplits (its train weight repeated per row); and each such dataset's row.
    Data of another shape is returned as it is, for the models to report."""
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        return data, {}
    entries = {n: e for n, e in data["datasets"].items() if isinstance(e, dict) and "csv" in e}
    try:
        tables = _TABLES.validate_python(entries)
    except ValidationError as e:
        raise ConfigError(_format(e, ("datasets",))) from None
    read = _table_datasets(set(data["datasets"]), tables)
    datasets: dict[str, Any] = {}
    for name, entry in data["datasets"].items():
        if name in read:  # a table's datasets where the table was, in row order
            datasets.update({n: dataset for n, (_, dataset) in read[name].items()})
        else:
            datasets[name] = entry
    names = {table: list(rows) for table, rows in read.items()}
    expanded = {**data, "datasets": datasets}
    if isinstance(data.get("runs"), dict):
        expanded["runs"] = {n: _expand_split(n, run, names) for n, run in data["runs"].items()}
    return expanded, {n: row for rows in read.values() for n, (row, _) in rows.items()}


def _table_datasets(
    names: set[str], tables: dict[str, DatasetTable]
) -> dict[str, dict[str, tuple[TableRow, DatasetConfig]]]:
    """Table name -> its datasets by name, with their rows; a row naming a dataset that
    ``names`` or an earlier row has is an error."""
    taken = {name: f"datasets.{name}" for name in names}
    read: dict[str, dict[str, tuple[TableRow, DatasetConfig]]] = {}
    for table_name, table in tables.items():
        rows = read[table_name] = {}
        for name, row, dataset in _read_table(table_name, table):
            if name in taken:
                raise ConfigError(
                    f"{row.column('name')}: dataset '{name}' is already defined ({taken[name]})"
                )
            taken[name] = row.where
            rows[name] = (row, dataset)
    return read


def _read_table(name: str, table: DatasetTable) -> list[tuple[str, TableRow, DatasetConfig]]:
    """A CSV table's datasets in row order; a mistake in the file is one ConfigError
    naming its row and column."""
    where = f"datasets.{name}: {table.csv}"
    try:
        # utf-8-sig: spreadsheets often start the file with a byte-order mark
        with open(table.csv, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = _header(where, reader.fieldnames)
            rows = [_table_row(TableRow(name, table.csv, reader.line_num), r) for r in reader]
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{where}: not a readable CSV file ({e})") from None
    if not rows:
        raise ConfigError(f"{where}: no rows after the header")
    return rows


def _header(where: str, columns: Sequence[str] | None) -> list[str]:
    """The header row's column names (spaces around them dropped): the required ones,
    each once, all of them keys of a dataset entry."""
    if not columns:
        raise ConfigError(f"{where}: empty (expected a header row: {', '.join(TABLE_COLUMNS)})")
    names = [column.strip() for column in columns]
    for column in names:
        if column not in TABLE_COLUMNS:
            raise ConfigError(
                f"{where} row 1: column '{column}' is not a dataset key (columns: "
                f"{', '.join(TABLE_COLUMNS)})"
            )
        if names.count(column) > 1:
            raise ConfigError(f"{where} row 1: column '{column}' twice")
    for column in REQUIRED_COLUMNS:
        if column not in names:
            raise ConfigError(
                f"{where} row 1: no column '{column}' (required: {', '.join(REQUIRED_COLUMNS)})"
            )
    return names


def _table_row(
    row: TableRow, cells: dict[str | None, str | None]
) -> tuple[str, TableRow, DatasetConfig]:
    """One row's dataset name and dataset: an empty cell leaves its key out, classes are
    separated by ';'."""
    if None in cells:  # csv.DictReader's key of the cells beyond the header's columns
        raise ConfigError(f"{row.where}: more cells than the header has columns")
    filled = {str(k): v.strip() for k, v in cells.items() if v is not None and v.strip()}
    name = filled.pop("name", "")
    if not name:
        raise ConfigError(f"{row.column('name')} is empty")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"{row.column('name')}: '{name}' is not a name (letters, digits, _ . -)")
    if "classes" in filled:
        filled["classes"] = [c.strip() for c in filled["classes"].split(";") if c.strip()]
    try:
        return name, row, DatasetConfig.model_validate(filled)
    except ValidationError as e:
        first = e.errors()[0]
        column = row.column(str(first["loc"][0]))
        if first["type"] == "missing":
            raise ConfigError(f"{column} is empty") from None
        raise ConfigError(f"{column}: {_problem(first)}") from None


def _expand_split(run_name: str, run: Any, tables: dict[str, list[str]]) -> Any:
    """A run whose datasplit names each table's datasets instead of the table, with the
    table's train weight for each of them; train_weights, as written, has one weight
    per entry of train."""
    split = run.get("datasplit") if isinstance(run, dict) else None
    if not isinstance(split, dict):
        return run
    expanded = {**split}
    for role in ("train", "validate"):
        if isinstance(split.get(role), list):
            expanded[role] = [n for entry in split[role] for n in _entry(entry, tables)]
    train, weights = split.get("train"), split.get("train_weights")
    if isinstance(train, list) and isinstance(weights, list):
        if len(weights) != len(train):
            raise ConfigError(
                f"runs.{run_name}.datasplit.train_weights: one weight per entry of train"
            )
        expanded["train_weights"] = [
            w for entry, w in zip(train, weights, strict=True) for _ in _entry(entry, tables)
        ]
    return {**run, "datasplit": expanded}


def _entry(entry: Any, tables: dict[str, list[str]]) -> list[Any]:
    """The datasets a datasplit entry stands for: a table's, or itself."""
    return tables.get(entry, [entry]) if isinstance(entry, str) else [entry]


def parse(data: dict[str, Any]) -> ExperimentConfig:
    """Validate a config dict; raise ConfigError with one line naming the key."""
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e)) from None
    _check_references(cfg)
    return cfg


def load(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse(data)


def _check_references(cfg: ExperimentConfig) -> None:
    """Names that point elsewhere in the config must exist."""
    runs = cfg.resolved_runs()
    for name, run in cfg.runs.items():
        split = run.datasplit
        for role, names in (("train", split.train), ("validate", split.validate_)):
            for i, ds in enumerate(names):
                if ds not in cfg.datasets:
                    raise ConfigError(f"runs.{name}.datasplit.{role}[{i}]: unknown dataset '{ds}'")
                if ds in names[:i]:
                    raise ConfigError(
                        f"runs.{name}.datasplit.{role}[{i}]: dataset '{ds}' twice (a CSV "
                        "table's name stands for all of its datasets)"
                    )
                if cfg.datasets[ds].gt is None:
                    raise ConfigError(f"{cfg.key(ds, 'gt')}: needed to {role} run '{name}'")
        arch = run.architecture
        task = run.task
        dims = len(task.neighborhood[0] if isinstance(task, AffinitiesTask) else arch.input_shape)
        for key in ("input_shape", "eval_shape_increase"):
            if len(getattr(arch, key)) != dims:
                raise ConfigError(f"runs.{name}.architecture.{key}: needs {dims} entries")
        for i, factor in enumerate(arch.downsample_factors):
            if len(factor) != dims:
                raise ConfigError(
                    f"runs.{name}.architecture.downsample_factors[{i}]: needs {dims} entries"
                )
        transposed = run.test_time_augmentation == "mirror_transpose"
        offsets = task.neighborhood if isinstance(task, AffinitiesTask) else None
        if transposed and offsets and not tta.transposable(offsets):
            raise ConfigError(
                f"runs.{name}.test_time_augmentation: no transpose of axes maps the "
                "neighborhood onto itself (give each axis the same offsets, or use mirror)"
            )
        post = run.post_processor
        if isinstance(post, WatershedConfig) and post.fragments.method == "waterz" and dims != 3:
            raise ConfigError(
                f"runs.{name}.post_processor.fragments.method: waterz needs 3D affinities "
                "(use seeded)"
            )
        for i, augment in enumerate(run.trainer.augments):
            if isinstance(augment, DefectAugment) and dims != 3:
                where = f"runs.{name}.trainer.augments[{i}]"
                raise ConfigError(f"{where}: defect needs a 3D network (it alters whole sections)")
            for key in ("control_point_spacing", "jitter_sigma"):
                value = getattr(augment, key, None)
                if value is not None and len(value) != dims:
                    where = f"runs.{name}.trainer.augments[{i}].{key}"
                    raise ConfigError(f"{where}: needs {dims} entries")
    _check_classes(cfg)
    _check_post_processors(cfg)
    _check_starts(cfg, runs)
    targets, ensembles = set(), {}
    for i, entry in enumerate(cfg.apply):
        members = _check_members(cfg, i, entry, runs)
        if entry.input in cfg.tables:
            raise ConfigError(
                f"apply[{i}].input: '{entry.input}' is a CSV table; apply one of its datasets"
            )
        if entry.input not in cfg.datasets:
            raise ConfigError(f"apply[{i}].input: unknown dataset '{entry.input}'")
        source = entry.run if entry.ensemble_name is None else f"ensemble '{entry.ensemble_name}'"
        if (source, entry.target) in targets:
            raise ConfigError(f"apply[{i}]: target '{entry.target}' of {source} twice")
        targets.add((source, entry.target))
        if entry.ensemble_name is not None:
            known = ensembles.setdefault(entry.ensemble_name, members)
            if known != members:
                raise ConfigError(
                    f"apply[{i}].ensemble: '{entry.ensemble_name}' names another ensemble "
                    f"({', '.join(known)}); give this one another name"
                )
        if entry.roi is not None and not re.fullmatch(r"\[[-0-9:, ]+\]", entry.roi):
            raise ConfigError(f"apply[{i}].roi: expected '[z0:z1,y0:y1,x0:x1]', got {entry.roi!r}")
        if isinstance(runs[members[0]].run.task, ClassTask):
            for key in ("threshold", "merge_function", "min_size", "bias"):
                if getattr(entry, key) is not None:
                    raise ConfigError(
                        f"apply[{i}].{key}: a class run's target pins only its iteration "
                        "(thresholds are chosen per class)"
                    )
        else:
            _check_mutex_pins(f"apply[{i}]", entry, runs[members[0]].run.post_processor)


def _check_mutex_pins(where: str, entry: ApplyConfig, post: WatershedConfig) -> None:
    """A target's pins name one kind of parameter set (the agglomeration's or mutex
    watershed's), and mutex watershed has the long-range edges it needs."""
    keys = ("threshold", "merge_function", "min_size")
    agglomeration = [k for k in keys if getattr(entry, k) is not None]
    if entry.bias is not None and agglomeration:
        raise ConfigError(f"{where}.bias: pins mutex watershed; drop {', '.join(agglomeration)}")
    if entry.bias is not None and not post.fragments.long_range:
        raise ConfigError(
            f"{where}.bias: the run's region graph has no long-range edges "
            "(give its post_processor biases)"
        )
    if post.biases and entry.bias is None and 0 < len(agglomeration) < 3:
        raise ConfigError(
            f"{where}: the run also sweeps mutex watershed biases; pin all of threshold, "
            "merge_function and min_size, or bias"
        )
    if post.fragments.long_range and entry.superblock_shape is not None:
        raise ConfigError(
            f"{where}.superblock_shape: the run's long-range edges (mutex watershed "
            "biases) need one superblock: drop superblock_shape"
        )


#: what an ensemble's members share: its validation and post-processing are theirs
ENSEMBLE_SHARED = ("task", "prediction_dtype", "post_processor", "criterion")


def _check_members(
    cfg: ExperimentConfig, i: int, entry: ApplyConfig, runs: dict[str, ResolvedRun]
) -> list[str]:
    """An apply entry names one run, or an ensemble of runs that share task (so
    neighbourhood and dimensions), validation datasets, post-processing, criterion and
    prediction dtype; returns the members (the run alone for a single run)."""
    where = f"apply[{i}]"
    if (entry.run is None) == (entry.runs is None):
        raise ConfigError(f"{where}: needs exactly one of run and runs")
    if entry.runs is not None and entry.repetitions is not None:
        raise ConfigError(f"{where}.repetitions: only with run (runs lists the members)")
    if entry.ensemble is not None and entry.ensemble_name is None:
        raise ConfigError(f"{where}.ensemble: names an ensemble (runs, or run with repetitions)")
    if entry.repetitions is not None:
        if entry.run not in cfg.runs:
            raise ConfigError(f"{where}.run: unknown run '{entry.run}' (repetitions: all)")
        if cfg.runs[entry.run].repetitions == 1:
            raise ConfigError(
                f"{where}.repetitions: run '{entry.run}' has one repetition (all needs "
                "repetitions > 1)"
            )
    for j, name in enumerate(entry.runs or [entry.run]):
        key = f"{where}.run" if entry.runs is None else f"{where}.runs[{j}]"
        if name not in runs and entry.repetitions is None:
            raise ConfigError(f"{key}: unknown run '{name}'")
        if entry.runs is not None and name in entry.runs[:j]:
            raise ConfigError(f"{key}: run '{name}' twice")
    members = cfg.members(entry)
    if len(members) == 1:
        return members
    first = runs[members[0]].run
    if isinstance(first.task, ClassTask):
        raise ConfigError(
            f"{where}: ensembles average affinities runs for now ('{members[0]}' is a "
            f"{first.task.type} run)"
        )
    if entry.iteration is not None:
        raise ConfigError(
            f"{where}.iteration: each member of an ensemble uses its own selected iteration"
        )
    for name in members[1:]:
        run = runs[name].run
        differs = [k for k in ENSEMBLE_SHARED if getattr(run, k) != getattr(first, k)]
        if run.datasplit.validate_ != first.datasplit.validate_:
            differs.insert(1, "datasplit.validate")
        if differs:
            raise ConfigError(
                f"{where}: run '{name}' differs from '{members[0]}' in {differs[0]} (an "
                "ensemble's members share task, validation datasets, post_processor, "
                "criterion and prediction_dtype)"
            )
    return members


def _check_classes(cfg: ExperimentConfig) -> None:
    """A dataset's ``classes`` are classes of the class runs that train or validate on it."""
    defined: dict[str, set[str]] = {name: set() for name in cfg.datasets}
    for run in cfg.runs.values():
        if isinstance(run.task, ClassTask):
            for ds in (*run.datasplit.train, *run.datasplit.validate_):
                defined[ds] |= set(run.task.classes)
    for name, dataset in cfg.datasets.items():
        for i, cls in enumerate(dataset.classes or []):
            if cls not in defined[name]:
                known = ", ".join(sorted(defined[name])) or "none"
                raise ConfigError(
                    f"{cfg.key(name, 'classes', i)}: unknown class '{cls}' (classes of the "
                    f"runs using it: {known})"
                )


def _check_post_processors(cfg: ExperimentConfig) -> None:
    """A run's post-processor and criterion fit its task."""
    for name, run in cfg.runs.items():
        where = f"runs.{name}"
        task, post = run.task, run.post_processor
        if task.type not in POST_PROCESSOR_TASKS[post.type]:
            fits = [t for t, tasks in POST_PROCESSOR_TASKS.items() if task.type in tasks]
            raise ConfigError(
                f"{where}.post_processor.type: {post.type} does not post-process {task.type} "
                f"predictions (use {' or '.join(fits)})"
            )
        criteria = CRITERIA if isinstance(task, AffinitiesTask) else CLASS_CRITERIA
        if run.criterion not in criteria:
            raise ConfigError(
                f"{where}.criterion: '{run.criterion}' does not score {task.type} runs "
                f"(choose from {', '.join(criteria)})"
            )
        if isinstance(post, ThresholdConfig):
            low = -1.0 if isinstance(task, DistancesTask) else 0.0
            for i, threshold in enumerate(post.thresholds):
                if not low < threshold < 1:
                    raise ConfigError(
                        f"{where}.post_processor.thresholds[{i}]: {threshold} is outside "
                        f"({low:g}, 1), the range of {task.type} predictions"
                    )
            for cls in post.instances:
                if cls not in task.classes:
                    raise ConfigError(
                        f"{where}.post_processor.instances.{cls}: unknown class '{cls}' "
                        f"(classes: {', '.join(task.classes)})"
                    )


def check_workflow_support(cfg: ExperimentConfig) -> None:
    """What the workflow cannot do yet stops it before any job, not after training:
    class post-processing of an apply target cut into superblocks."""
    runs = cfg.resolved_runs()
    for i, entry in enumerate(cfg.apply):
        if entry.ensemble_name is not None and entry.superblock_shape:
            raise ConfigError(
                f"apply[{i}].superblock_shape: an ensemble predicts a target as one "
                "superblock for now (leave superblock_shape out)"
            )
        if isinstance(runs[cfg.members(entry)[0]].run.task, ClassTask) and entry.superblock_shape:
            raise ConfigError(
                f"apply[{i}].superblock_shape: class runs post-process a target as one "
                "superblock for now (leave superblock_shape out)"
            )


def _check_starts(cfg: ExperimentConfig, runs: dict[str, ResolvedRun]) -> None:
    """A fine-tuned run starts from an existing run (or a file), and never (indirectly)
    from itself."""
    for name, run in cfg.runs.items():
        start = run.start
        if start is not None and (start.run is None) == (start.path is None):
            raise ConfigError(f"runs.{name}.start: needs exactly one of run and path")
    for name, resolved in runs.items():
        seen = [name]
        while (start := runs[seen[-1]].run.start) is not None and start.run is not None:
            if start.run not in runs:
                raise ConfigError(f"runs.{resolved.base}.start.run: unknown run '{start.run}'")
            if start.run in seen:
                chain = " -> ".join([*seen, start.run])
                raise ConfigError(f"runs.{resolved.base}.start.run: starts from itself ({chain})")
            seen.append(start.run)


def json_schema() -> dict[str, Any]:
    """The JSON schema of the config, for snakemake.utils.validate and editors."""
    schema = _WrittenConfig.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
