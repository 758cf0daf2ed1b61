# Config loading and validation, wildcard constraints and input functions.
# A bad config stops here with one line naming the key: no job is planned.
import re
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from dacapo_core import config as dconfig
from dacapo_core import preflight, provenance
from dacapo_core.arrays import array_path, open_array, read_json
from dacapo_core.layout import (
    ARGMAX,
    BEST,
    CLASS_INSTANCES,
    CLASS_MASK,
    BEST_PREDICTION,
    BEST_PREDICTIONS,
    CHECKPOINT,
    CHOICE,
    DATASET_SCORES,
    ENSEMBLE,
    ENSEMBLE_ITERATION,
    FIGURES,
    FIGURE,
    FRAGMENTS,
    GRAPH,
    MEMBER_PREDICTION,
    MEMBERS,
    OCTREE,
    OCTREE_LABELS,
    OCTREE_RESULT,
    PREDICTION,
    PREPARED,
    SUPERBLOCK_DONE,
    RUN_JSON,
    SCORES,
    SEGMENTATION,
    TRAINING_STATS,
    apply,
    figure,
    path,
    validation,
)
from dacapo_core.errors import UserError
from dacapo_core.segment.hierarchy import parent
from dacapo_core.segment.octree import Octree
from dacapo_core.select import apply_choice, apply_inputs
from dacapo_core.stages import (
    AverageStage,
    ChoiceStage,
    ClassPostStage,
    ClassScoreStage,
    PredictStage,
    ScoreStage,
    TrainStage,
    segment_stage,
)
from dacapo_core.superblocks import Superblocks

DEMO_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"


def schema_error(error: WorkflowError) -> str:
    """One line from snakemake's wrapped jsonschema error: the key path and the problem."""
    cause = error.__context__  # snakemake raises while handling the jsonschema error
    if not isinstance(cause, jsonschema.ValidationError):
        return str(error).splitlines()[0]
    where = ".".join(str(p) for p in cause.absolute_path) or "config"
    return f"{where}: {cause.message}"


def load_experiment(raw: dict) -> dconfig.ExperimentConfig:
    """The experiment: --configfile as given, or the embedded demo without one."""
    data = dict(raw) if "datasets" in raw else {**yaml.safe_load(DEMO_CONFIG.read_text()), **raw}
    try:
        try:
            validate(data, "../schemas/config.schema.json", set_default=False)
        except WorkflowError as e:
            raise dconfig.ConfigError(schema_error(e)) from None
        experiment = dconfig.parse(data)
        dconfig.check_workflow_support(experiment)
        preflight.check(experiment)
    except dconfig.ConfigError as e:
        sys.exit(f"config error: {e}")
    return experiment


EXPERIMENT = load_experiment(config)
RUNS = EXPERIMENT.resolved_runs()
DATASETS = EXPERIMENT.datasets
#: ensembles/NAME -> the ensemble's members
ENSEMBLES = {path(ENSEMBLE, name=n): m for n, m in EXPERIMENT.ensembles().items()}
#: what rules keyed by {run} validate, select and apply: the runs, and each ensemble as a
#: run with its members' shared config (task, validation, post-processing, criterion)
SOURCES = {
    **RUNS,
    **{
        name: dconfig.ResolvedRun(name=name, base=name, seed=EXPERIMENT.seed, run=RUNS[m[0]].run)
        for name, m in ENSEMBLES.items()
    },
}


def source(entry: dconfig.ApplyConfig) -> str:
    """Whose results an apply target is: its run's, or its ensemble's."""
    name = entry.ensemble_name
    return entry.run if name is None else path(ENSEMBLE, name=name)


APPLY = {(source(a), a.target): a for a in EXPERIMENT.apply}


def superblock_plans() -> dict[tuple[str, str], Superblocks]:
    """The apply targets of several superblocks, cut when the DAG is built."""
    plans = {}
    for (run, target), entry in APPLY.items():
        if entry.superblock_shape is None:
            continue
        try:
            plan = Superblocks.of_target(entry, array(entry.input, "raw"))
        except UserError as e:
            sys.exit(f"config error: apply target {target}: {e}")
        if len(plan) > 1:
            plans[(run, target)] = plan
    return plans


def is_class_run(name: str) -> bool:
    return isinstance(RUNS[name].run.task, dconfig.ClassTask)


def runs_regex(names) -> str:
    """A wildcard constraint matching exactly these runs (none: matching nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


#: wildcard constraints of the rules that only affinities or only class runs have (ensembles
#: are of affinities runs), only trained runs or only ensembles
AFFINITY_RUNS = runs_regex([*(n for n in RUNS if not is_class_run(n)), *ENSEMBLES])
CLASS_RUNS = runs_regex(n for n in RUNS if is_class_run(n))
TRAINED_RUNS = runs_regex(RUNS)
ENSEMBLE_RUNS = runs_regex(ENSEMBLES)
MEMBER_RUNS = runs_regex(sorted({m for members in ENSEMBLES.values() for m in members}))

#: validation jobs go ahead of the next training chunk when both want the cores (a
#: workstation): each checkpoint is scored as soon as it is written, not after training
#: ends; the total time is the same. (Rule fragments also serves apply targets: theirs
#: go ahead of another run's training too, which only finishes results sooner.)
VALIDATION_PRIORITY = 1


def run_record(name: str) -> dict:
    """run.json's content: the resolved run (an ensemble: its members') and the datasets."""
    if name in ENSEMBLES:
        run = {m: RUNS[m].model_dump(mode="json", by_alias=True) for m in ENSEMBLES[name]}
        run = {"members": run}
    else:
        run = RUNS[name].model_dump(mode="json", by_alias=True)
    return {"run": run, "datasets": {n: d.model_dump(mode="json") for n, d in DATASETS.items()}}


# Config hashes for the provenance each script records: in the config, not in params,
# so that a record never reruns a job.
config["config_hashes"] = {name: provenance.config_hash(run_record(name)) for name in SOURCES}


wildcard_constraints:
    run=rf"[A-Za-z0-9_.-]+|{ENSEMBLE_RUNS}",
    it=r"\d+",
    dataset=r"[A-Za-z0-9_.-]+",
    target=r"[A-Za-z0-9_.-]+",
    volume=r"validation/\d+/[A-Za-z0-9_.-]+|apply/[A-Za-z0-9_.-]+",
    sb=r"\d+(?:_\d+)*",
    chunk=r"\d+(?:_\d+)*",
    level=r"\d+",
    cls=r"[A-Za-z0-9_.-]+",


def keep_or_temp(path):
    """Validation predictions are temporary unless the config keeps them."""
    return path if EXPERIMENT.keep_validation_predictions else temp(path)


def by_attempt(amount: int):
    """A resource that grows with each retry (a job killed for memory or time)."""
    return lambda wildcards, attempt: amount * attempt


def run_of(wildcards):
    return SOURCES[wildcards.run]


def container(name: str) -> str:
    """The zarr container of a dataset; the demo's folder where the demo makes it."""
    own = DATASETS[name].container
    return EXPERIMENT.demo.container if EXPERIMENT.demo and EXPERIMENT.demo.holds(own) else own


def array(name: str, role: str) -> str:
    ds = DATASETS[name]
    return array_path(ds.container, getattr(ds, role))


def stage(model) -> dict:
    """A stage model as params (Snakemake tracks builtin values only)."""
    return model.model_dump(mode="json")


def dataset_dims(name: str) -> int:
    """Spatial dimensions of a dataset's raw (the demo's before it is made)."""
    if EXPERIMENT.demo is not None and EXPERIMENT.demo.holds(DATASETS[name].container):
        return len(EXPERIMENT.demo.voxel_size)
    return open_array(array(name, "raw")).voxel_size.dims


def checkpoint_path(run: str, iteration: int) -> str:
    return path(CHECKPOINT, run=run, it=iteration)


def train_inputs(wildcards) -> dict:
    run = run_of(wildcards).run
    inputs = {"data": sorted({container(n) for n in run.datasplit.train})}
    it = int(wildcards.it)
    its = run.iterations()
    if it not in its:
        raise WorkflowError(f"run {wildcards.run}: {it} is not a checkpoint iteration {its}")
    previous = its.index(it) - 1
    if previous >= 0:
        inputs["start"] = checkpoint_path(wildcards.run, its[previous])
    elif run.start is not None and run.start.path is not None:  # a model file: see pretrained
        inputs["init_file"] = run.start.path
    elif run.start is not None:  # fine-tuning: the other run's selection picks one of these
        inputs["init_best"] = path(BEST, run=run.start.run)
        inputs["init_checkpoints"] = run_checkpoints(run.start.run)
    return inputs


def train_stage(wildcards) -> dict:
    return stage(TrainStage.of(run_of(wildcards), DATASETS))


def validated_iterations(name: str) -> list[int]:
    """A run's checkpoint iterations, or an ensemble's one state (see layout.ENSEMBLE)."""
    return [ENSEMBLE_ITERATION] if name in ENSEMBLES else RUNS[name].run.iterations()


def validation_scores(wildcards) -> list[str]:
    return [path(SCORES, run=wildcards.run, it=it) for it in validated_iterations(wildcards.run)]


def validate_predict_stage(wildcards) -> dict:
    return stage(PredictStage.validation(run_of(wildcards).run, DATASETS[wildcards.dataset]))


def score_stage(wildcards) -> dict:
    return stage(ScoreStage.of(run_of(wildcards).run, DATASETS[wildcards.dataset]))


def class_score_stage(wildcards) -> dict:
    return stage(ClassScoreStage.of(run_of(wildcards).run, DATASETS[wildcards.dataset]))


def class_default(run: dconfig.RunConfig) -> dict:
    """The parameters of a class no validation crop scored: the boundary (distances,
    0) or an even chance (one_hot, 0.5)."""
    return {"threshold": 0.0 if isinstance(run.task, dconfig.DistancesTask) else 0.5}


def class_post_stage(wildcards) -> dict:
    """A class of an apply target: its chosen threshold."""
    run = run_of(wildcards).run
    chosen = choice(wildcards, parameters=True)["classes"]
    params = chosen.get(wildcards.cls, class_default(run))
    entry = apply_entry(wildcards)
    return stage(
        ClassPostStage(
            name=wildcards.cls,
            threshold=params["threshold"],
            block_shape=entry.blocks(dataset_dims(entry.input)),
        )
    )


def components_stage(wildcards) -> dict:
    """An instance class of an apply target: its min_size (the threshold is its input's)."""
    entry = apply_entry(wildcards)
    return stage(
        ClassPostStage(
            name=wildcards.cls,
            min_size=run_of(wildcards).run.post_processor.instances[wildcards.cls].min_size,
            block_shape=entry.blocks(dataset_dims(entry.input)),
        )
    )


def class_post_inputs(wildcards) -> dict[str, str]:
    """An apply target's prediction; until the choice is known, also the checkpoint
    ``choose`` (see ``segment_inputs``)."""
    choice(wildcards, parameters=True)
    return {"prediction": path(apply(PREDICTION), run=wildcards.run, target=wildcards.target)}


def argmax_stage(wildcards) -> dict:
    entry = apply_entry(wildcards)
    return {"block_shape": entry.blocks(dataset_dims(entry.input))}


def apply_outputs(run: str, target: str) -> list[str]:
    """What an apply target ends in: its segmentation (affinities), its argmax labels
    (argmax), or each class's binary array and each instance class's instances."""
    post = SOURCES[run].run.post_processor
    names = {"run": run, "target": target}
    if isinstance(post, dconfig.WatershedConfig):
        return [path(apply(SEGMENTATION), **names)]
    if isinstance(post, dconfig.ArgmaxConfig):
        return [path(apply(ARGMAX), **names)]
    classes = SOURCES[run].run.task.classes
    return [path(apply(CLASS_MASK), cls=c, **names) for c in classes] + [
        path(apply(CLASS_INSTANCES), cls=c, **names) for c in post.instances
    ]


def fragment_stage(wildcards) -> dict:
    """The fragment options; the blocks are the prediction's chunks (a file input)."""
    return stage(run_of(wildcards).run.post_processor.fragments)


def apply_entry(wildcards) -> dconfig.ApplyConfig:
    return APPLY[(wildcards.run, wildcards.target)]


def choice_stage(wildcards) -> ChoiceStage:
    return ChoiceStage.of(apply_entry(wildcards), run_of(wildcards).run)


def choice_inputs(wildcards) -> dict[str, str]:
    return apply_inputs(choice_stage(wildcards), wildcards.run)


def choice(wildcards, parameters: bool) -> dict:
    """An apply target's iteration (and parameters): from the config where it pins
    them, else from the checkpoint `choose`, so that until the selection is known
    the asking rule waits for it, and afterwards depends on the choice itself, not
    on when best.json was written."""
    pins = choice_stage(wildcards)
    if not apply_inputs(pins, wildcards.run, parameters):  # all it needs is pinned
        return apply_choice(pins, parameters=parameters)
    chosen = checkpoints.choose.get(run=wildcards.run, target=wildcards.target).output[0]
    return read_json(chosen)


def predict_checkpoint(wildcards) -> str:
    return checkpoint_path(wildcards.run, choice(wildcards, parameters=False)["iteration"])


def predict_stage(wildcards) -> dict:
    entry = apply_entry(wildcards)
    return stage(
        PredictStage.target(
            run_of(wildcards).run,
            entry,
            DATASETS[entry.input],
            dataset_dims(entry.input),
            choice(wildcards, parameters=False)["iteration"],
        )
    )


def segment_inputs(wildcards) -> dict[str, str]:
    """Fragments and graph; until the choice is known, also the checkpoint `choose`
    (Snakemake adds it when `choice` raises), so the params below can read it."""
    choice(wildcards, parameters=True)
    return {
        name: path(apply(pattern), run=wildcards.run, target=wildcards.target)
        for name, pattern in (("fragments", FRAGMENTS), ("graph", GRAPH))
    }


def agglomerate_stage(wildcards) -> dict:
    """The chosen parameters: the agglomeration's, or mutex watershed's (one superblock)."""
    return stage(segment_stage(choice(wildcards, parameters=True)["parameters"]))


def member_iterations(wildcards) -> dict[str, int]:
    """An ensemble's members' iterations, from the checkpoint ensemble_members (see
    ``choice``: until they are known, the asking rule waits for it)."""
    return read_json(checkpoints.ensemble_members.get(run=wildcards.run).output[0])


def member_validation(wildcards) -> dict[str, tuple[str, str]]:
    """Each member's validation prediction of the dataset at its iteration, and the
    output that holds it: beside its scores, or (keep_validation_predictions: false)
    predicted again for viewing under validation/best/."""
    found = {}
    for member, it in member_iterations(wildcards).items():
        names = {"run": member, "it": it, "dataset": wildcards.dataset}
        if EXPERIMENT.keep_validation_predictions:
            found[member] = (path(validation(PREDICTION), **names),) * 2
        else:
            found[member] = (path(BEST_PREDICTION, **names), path(BEST_PREDICTIONS, **names))
    return found


def ensemble_validation_inputs(wildcards) -> list[str]:
    return sorted({output for _, output in member_validation(wildcards).values()})


def ensemble_validation_stage(wildcards) -> dict:
    members = {m: prediction for m, (prediction, _) in member_validation(wildcards).items()}
    return stage(AverageStage(members=members, dtype=run_of(wildcards).run.prediction_dtype))


def member_predictions(wildcards) -> dict[str, str]:
    """Each member's prediction of an ensemble's apply target."""
    names = {"run": wildcards.run, "target": wildcards.target}
    return {m: path(MEMBER_PREDICTION, member=m, **names) for m in ENSEMBLES[wildcards.run]}


def ensemble_predict_stage(wildcards) -> dict:
    dtype = run_of(wildcards).run.prediction_dtype
    return stage(AverageStage(members=member_predictions(wildcards), dtype=dtype))


def member_checkpoint(wildcards) -> str:
    return checkpoint_path(wildcards.member, member_iterations(wildcards)[wildcards.member])


def member_predict_stage(wildcards) -> dict:
    """A member's prediction of an ensemble's target: the target's, with the member's
    network at its iteration."""
    entry = apply_entry(wildcards)
    return stage(
        PredictStage.target(
            RUNS[wildcards.member].run,
            entry,
            DATASETS[entry.input],
            dataset_dims(entry.input),
            member_iterations(wildcards)[wildcards.member],
        )
    )


PLANS = superblock_plans()
#: the targets that superblocks.smk makes (a regex of their names; none: matches nothing)
SUPERBLOCK_TARGETS = "|".join(re.escape(target) for _, target in PLANS) or "(?!)"


def plan_of(wildcards) -> Superblocks:
    return PLANS[(wildcards.run, wildcards.target)]


def superblock_done(step: str):
    """Input function: the done-files of every superblock's job of ``step``."""

    def done(wildcards) -> list[str]:
        plan = plan_of(wildcards)
        return [
            path(SUPERBLOCK_DONE, run=wildcards.run, target=wildcards.target, step=step, sb=name)
            for name in map(plan.name, plan.indices())
        ]

    return done


def fragments_behind(wildcards) -> list[str]:
    """The superblock's fragments and those of the superblocks behind it, whose faces
    its edges read."""
    plan = plan_of(wildcards)
    index = plan.parse(wildcards.sb)
    return [
        path(SUPERBLOCK_DONE, run=wildcards.run, target=wildcards.target, step="fragments", sb=n)
        for n in map(plan.name, [index, *plan.around(index, behind=True)])
    ]


def octree(wildcards) -> Octree:
    """The agglomeration octree of a target's superblocks (its files' paths)."""
    graph = path(apply(GRAPH), run=wildcards.run, target=wildcards.target)
    work = path(OCTREE, run=wildcards.run, target=wildcards.target)
    return Octree(Path(graph) / "rows", Path(work), plan_of(wildcards).grid)


def octree_inputs(wildcards) -> dict[str, object]:
    """A chunk's job up the tree: the graph's shards (leaves), or its children's and its
    neighbours' children's results; and the choice (see ``segment_inputs``)."""
    choice(wildcards, parameters=True)
    tree, level = octree(wildcards), int(wildcards.level)
    chunk = Superblocks.parse(wildcards.chunk)
    below = [] if level == 0 else tree.inputs(level, chunk) + tree.around(level, chunk)
    graph = path(apply(GRAPH), run=wildcards.run, target=wildcards.target)
    return {"graph": graph, "below": sorted({str(p) for p in below})}


def label_inputs(wildcards) -> dict[str, object]:
    """A chunk's job down the tree: its result and its parent's labels (none at the
    root); and the choice (see ``segment_inputs``)."""
    choice(wildcards, parameters=True)
    tree, level = octree(wildcards), int(wildcards.level)
    chunk = Superblocks.parse(wildcards.chunk)
    above = [] if level + 1 == len(tree.grids()) else [tree.labels(level + 1, parent(chunk))]
    return {"result": str(tree.result(level, chunk)), "above": [str(p) for p in above]}


def run_checkpoints(name: str) -> list[str]:
    """All checkpoints of a run: a rule that reads best.json picks one of them."""
    return [checkpoint_path(name, it) for it in RUNS[name].run.iterations()]


def checkpoints_of_run(wildcards) -> list[str]:
    return run_checkpoints(wildcards.run)


def best_predictions(run: str) -> list[str]:
    """Predictions kept for viewing when validation predictions are temporary."""
    if EXPERIMENT.keep_validation_predictions:
        return []
    return [path(BEST_PREDICTIONS, run=run, dataset=d) for d in RUNS[run].run.datasplit.validate_]


def run_figures(name: str) -> list[str]:
    """The report's figures of a run: a class run has no example slices yet, and one
    without thresholds (argmax) no threshold sweep."""
    if not is_class_run(name):
        return list(FIGURES)
    sweep = isinstance(RUNS[name].run.post_processor, dconfig.ThresholdConfig)
    return ["loss", "scores"] + ["thresholds"] * sweep


def all_targets() -> list[str]:
    targets = []
    for name in SOURCES:
        targets += [path(RUN_JSON, run=name), path(BEST, run=name)]
    for name in RUNS:
        targets += [path(FIGURE, run=name, name=f) for f in run_figures(name)]
        targets += best_predictions(name)
    for run, target in APPLY:
        targets += apply_outputs(run, target)
    return targets


# Inputs of the on-request rules in share.smk (export, tensorboard).
def training_stats_of_run(wildcards) -> list[str]:
    return [path(TRAINING_STATS, run=wildcards.run, it=it) for it in run_of(wildcards).run.iterations()]


def export_data(wildcards) -> list[str]:
    """The training raw (its dtype sets the scaling) and the test input's (validation)."""
    split = run_of(wildcards).run.datasplit
    return sorted({container(n) for n in (*split.train, *split.validate_)})
