"""Where a workflow's results live: the one place the results layout is spelled out.

Paths are patterns relative to the workflow's working directory, with
Snakemake's wildcards (``{run}``, ``{it}``, ``{dataset}``, ``{target}``,
``{volume}``). Rules use them as they are; code fills them in with ``path``.
A *volume* is one prediction with what is made from it: a validation dataset at
an iteration (``validation/{it}/{dataset}``) or an apply target
(``apply/{target}``).
"""

from __future__ import annotations

from pathlib import Path

RUN = "results/{run}"
RUN_JSON = f"{RUN}/run.json"
CHECKPOINT = f"{RUN}/checkpoints/{{it}}.pt"
TRAINING_STATS = f"{RUN}/training_stats/{{it}}.json"
SNAPSHOTS = f"{RUN}/snapshots"

#: a prediction and what is made from it, in one zarr container; its graph beside it
VOLUME = f"{RUN}/{{volume}}.zarr"
PREDICTION = f"{VOLUME}/prediction"
FRAGMENTS = f"{VOLUME}/fragments"
SEGMENTATION = f"{VOLUME}/segmentation"
GRAPH = f"{VOLUME}.graph"
#: a class run's post-processing: a class's binary array (threshold), an instance
#: class's connected components, or the class labels of a one_hot run (argmax)
CLASS_MASK = f"{VOLUME}/classes/{{cls}}"
CLASS_INSTANCES = f"{VOLUME}/instances/{{cls}}"
ARGMAX = f"{VOLUME}/argmax"

VALIDATION_VOLUME = "validation/{it}/{dataset}"
APPLY_VOLUME = "apply/{target}"
DATASET_SCORES = f"{RUN}/validation/{{it}}/{{dataset}}.scores.json"
SCORES = f"{RUN}/validation/{{it}}/scores.json"
BEST = f"{RUN}/best.json"
#: selected iterations predicted again, when validation predictions are temporary
BEST_PREDICTIONS = f"{RUN}/validation/best/{{dataset}}"
BEST_PREDICTION = f"{BEST_PREDICTIONS}/{{it}}.zarr/prediction"
CHOICE = f"{RUN}/apply/{{target}}.choice.json"
#: an apply target of several superblocks (``superblocks.smk``): a marker per staged
#: array (``{step}``: predict, fragments, segment), a done-file per superblock job, the
#: agglomeration octree's shards and lookup tables (``segment.octree.Octree``)
SUPERBLOCKS = f"{RUN}/apply/{{target}}.superblocks"
PREPARED = f"{SUPERBLOCKS}/{{step}}.prepared"
SUPERBLOCK_DONE = f"{SUPERBLOCKS}/{{step}}/{{sb}}.done"
OCTREE = f"{SUPERBLOCKS}/octree"
OCTREE_RESULT = f"{OCTREE}/level{{level}}/{{chunk}}.sqlite"
OCTREE_LABELS = f"{OCTREE}/labels/level{{level}}/{{chunk}}.npz"
#: an ensemble (an apply entry naming several runs) stands where a run's name does, as
#: ``ensembles/NAME``: its run.json, validation, best.json and apply targets are a run's.
#: It has one state to validate, its members at their own selected iterations
#: (``MEMBERS``), filed as iteration ``ENSEMBLE_ITERATION`` (no checkpoint has it).
ENSEMBLE = "ensembles/{name}"
ENSEMBLE_ITERATION = 0
MEMBERS = f"{RUN}/members.json"
#: a member's prediction of an ensemble's apply target (temporary: averaged, then deleted)
MEMBER_PREDICTION = f"{RUN}/apply/{{target}}.members/{{member}}.zarr/prediction"
FIGURE = f"{RUN}/report/{{name}}.png"
#: the checkpoint a criterion selects, as a BioImage.IO model package (on request)
EXPORT = f"{RUN}/export/{{criterion}}.bioimageio.zip"
#: TensorBoard event files made from training_stats and validation scores (on request)
TENSORBOARD = f"{RUN}/tensorboard"
#: the report's figures of each run
FIGURES = ("loss", "scores", "thresholds", "slices")


def validation(pattern: str) -> str:
    """A volume pattern (PREDICTION, FRAGMENTS, ...) for a validation dataset."""
    return pattern.replace("{volume}", VALIDATION_VOLUME)


def apply(pattern: str) -> str:
    """A volume pattern (PREDICTION, FRAGMENTS, ...) for an apply target."""
    return pattern.replace("{volume}", APPLY_VOLUME)


def figure(name: str) -> str:
    """The pattern of one of a run's report figures."""
    return FIGURE.replace("{name}", name)


def ensemble(name: str) -> str:
    """What stands for the run in an ensemble's paths (``results/ensembles/NAME``)."""
    return path(ENSEMBLE, name=name)


def path(pattern: str, **wildcards: object) -> str:
    """``pattern`` with its wildcards filled in."""
    return pattern.format(**wildcards)


def of_run(run_dir: str | Path, pattern: str, **wildcards: object) -> Path:
    """``pattern`` (a run's file) filled in, under the run's directory ``run_dir``."""
    return Path(run_dir) / path(pattern.removeprefix(f"{RUN}/"), **wildcards)
