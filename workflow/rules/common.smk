# Config loading and validation, wildcard constraints and input functions.
# A bad config stops here with one line naming the key: no job is planned.
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from dacapo_core import config as dconfig
from dacapo_core import preflight
from dacapo_core.select import apply_inputs

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
        preflight.check(experiment)
    except dconfig.ConfigError as e:
        sys.exit(f"config error: {e}")
    return experiment


EXPERIMENT = load_experiment(config)
RUNS = EXPERIMENT.resolved_runs()
DATASETS = EXPERIMENT.datasets
APPLY = {(a.run, a.target): a for a in EXPERIMENT.apply}


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    it=r"\d+",
    dataset=r"[A-Za-z0-9_.-]+",
    target=r"[A-Za-z0-9_.-]+",


def keep_or_temp(path):
    """Validation predictions are temporary unless the config keeps them."""
    return path if EXPERIMENT.keep_validation_predictions else temp(path)


def by_attempt(amount: int):
    """A resource that grows with each retry (a job killed for memory or time)."""
    return lambda wildcards, attempt: amount * attempt


def run_of(wildcards):
    return RUNS[wildcards.run]


def container(name: str) -> str:
    """The zarr container of a dataset (made by make_demo_data for the demo)."""
    return DATASETS[name].container


def array(name: str, role: str) -> str:
    ds = DATASETS[name]
    return f"{ds.container}/{getattr(ds, role)}"


def train_inputs(wildcards) -> dict:
    run = run_of(wildcards).run
    inputs = {"data": sorted({container(n) for n in run.datasplit.train})}
    it = int(wildcards.it)
    its = run.iterations()
    if it not in its:
        raise WorkflowError(f"run {wildcards.run}: {it} is not a checkpoint iteration {its}")
    previous = its.index(it) - 1
    if previous >= 0:
        inputs["start"] = f"results/{wildcards.run}/checkpoints/{its[previous]}.pt"
    elif run.start is not None:  # fine-tuning: the other run's selection picks one of these
        inputs["init_best"] = f"results/{run.start.run}/best.json"
        inputs["init_checkpoints"] = run_checkpoints(run.start.run)
    return inputs


def validation_scores(wildcards) -> list[str]:
    return [
        f"results/{wildcards.run}/validation/{it}/scores.json"
        for it in run_of(wildcards).run.iterations()
    ]


def apply_entry(wildcards) -> dconfig.ApplyConfig:
    return APPLY[(wildcards.run, wildcards.target)]


def run_checkpoints(name: str) -> list[str]:
    """All checkpoints of a run: a rule that reads best.json picks one of them."""
    return [f"results/{name}/checkpoints/{it}.pt" for it in RUNS[name].run.iterations()]


def checkpoints_of_run(wildcards) -> list[str]:
    return run_checkpoints(wildcards.run)


def apply_checkpoints(wildcards) -> list[str]:
    """The checkpoint pinned by the config, or all of them (best.json picks one)."""
    entry = apply_entry(wildcards)
    if entry.iteration:
        return [f"results/{wildcards.run}/checkpoints/{entry.iteration}.pt"]
    return checkpoints_of_run(wildcards)


def apply_selection(parameters: bool):
    """Input function: best.json, the pinned iteration's scores.json, or nothing when
    the config pins it all (select.apply_inputs); parameters=False for the iteration only."""
    return lambda w: apply_inputs(apply_entry(w), f"results/{w.run}", parameters)


def best_predictions(run: str) -> list[str]:
    """Predictions kept for viewing when validation predictions are temporary."""
    if EXPERIMENT.keep_validation_predictions:
        return []
    return expand(
        "results/{run}/validation/best/{dataset}",
        run=run,
        dataset=RUNS[run].run.datasplit.validate_,
    )


def all_targets() -> list[str]:
    targets = []
    for name in RUNS:
        targets += [
            f"results/{name}/run.json",
            f"results/{name}/best.json",
            f"results/{name}/report/loss.png",
            f"results/{name}/report/scores.png",
            f"results/{name}/report/thresholds.png",
            f"results/{name}/report/slices.png",
        ]
        targets += best_predictions(name)
    for run, target in APPLY:
        targets.append(f"results/{run}/apply/{target}.zarr/segmentation")
    return targets
