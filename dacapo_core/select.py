"""Choosing the best iteration and post-processing parameters, per criterion.

Several validation datasets are aggregated by their mean; ties go to the
earlier iteration (then the earlier parameter set), so adding iterations never
changes a choice unless a later one is strictly better.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import layout
from .arrays import DataError, read_json
from .config import CLASS_CRITERIA, CRITERIA
from .stages import ChoiceStage

if TYPE_CHECKING:
    import xarray as xr


def load_scores(score_files: Iterable[str | Path]) -> xr.DataArray:
    """All scores of a run: (iteration, parameters, dataset, criterion)."""
    import xarray as xr  # here: its imports (pandas) cost every Snakemake parse 0.3 s

    docs = sorted((read_json(p) for p in score_files), key=lambda d: d["iteration"])
    if not docs:
        raise DataError("no validation scores to select from")
    parameter_sets = [r["parameters"] for r in next(iter(docs[0]["datasets"].values()))["results"]]
    params = [_key(p) for p in parameter_sets]
    datasets = sorted(docs[0]["datasets"])
    criteria = sorted(CRITERIA)
    values = np.array(
        [
            [
                [
                    [doc["datasets"][ds]["results"][p]["scores"][c] for c in criteria]
                    for ds in datasets
                ]
                for p in range(len(params))
            ]
            for doc in docs
        ]
    )
    return xr.DataArray(
        values,
        dims=("iteration", "parameters", "dataset", "criterion"),
        coords={
            "iteration": [d["iteration"] for d in docs],
            "parameters": params,
            "dataset": datasets,
            "criterion": criteria,
        },
        attrs={"parameter_sets": parameter_sets},
    )


def _key(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


#: the swept value of a parameter set's curve: the agglomeration's threshold, or the
#: bias of mutex watershed
SWEPT = ("threshold", "bias")


def threshold_neighbours(parameter_sets: list[dict[str, Any]]) -> list[list[int]]:
    """Per parameter set: its own index and those of the sets with the next lower and
    next higher threshold (bias) and otherwise the same parameters (one curve)."""
    curves: dict[str, list[int]] = {}
    for i, params in enumerate(parameter_sets):
        rest = _key({k: v for k, v in params.items() if k not in SWEPT})
        curves.setdefault(rest, []).append(i)
    around = [[i] for i in range(len(parameter_sets))]
    for members in curves.values():
        swept = [
            next(parameter_sets[i][k] for k in SWEPT if k in parameter_sets[i]) for i in members
        ]
        ordered = [i for _, i in sorted(zip(swept, members, strict=True))]
        for pos, i in enumerate(ordered):
            around[i] += ordered[max(0, pos - 1) : pos] + ordered[pos + 1 : pos + 2]
    return around


def stable_values(
    table: np.ndarray, parameter_sets: list[dict[str, Any]], direction: str
) -> np.ndarray:
    """(iteration, parameter set) values made robust to a small threshold shift: each
    the worst of its own and its threshold neighbours' values.

    A threshold that is best on validation but sits on a steep edge of its curve
    (one step further, many objects merge) transfers badly to new data, whose curve
    is shifted a little; the worst value around it prefers the curve's plateau.
    """
    worst = np.max if direction == "lower" else np.min
    around = threshold_neighbours(parameter_sets)
    return np.stack([worst(table[:, idx], axis=1) for idx in around], axis=1)


def select_best(scores: xr.DataArray, stable: bool = False) -> dict[str, Any]:
    """Per criterion: iteration, parameters, value (mean over datasets), direction.

    ``stable``: choose by ``stable_values`` (ties by the value itself); ``value`` stays
    the chosen set's own value, ``stable_value`` is added.
    """
    mean = scores.mean("dataset")
    parameter_sets = scores.attrs["parameter_sets"]
    best = {}
    for criterion, direction in sorted(CRITERIA.items()):
        table = mean.sel(criterion=criterion).values
        sign = 1 if direction == "lower" else -1
        robust = stable_values(table, parameter_sets, direction) if stable else table
        # lexsort: last key first; equal keys keep the earlier iteration, then set
        flat = np.lexsort(((sign * table).ravel(), (sign * robust).ravel()))[0]
        i, p = np.unravel_index(flat, table.shape)
        best[criterion] = {
            "iteration": int(mean.iteration[i]),
            "parameters": parameter_sets[p],
            "value": float(table[i, p]),
            "direction": direction,
        }
        if stable:
            best[criterion]["stable_value"] = float(robust[i, p])
    return best


def is_class_scores(score_files: Iterable[str | Path]) -> bool:
    """Whether validation scores are a class run's (per-class sections)."""
    first = read_json(next(iter(score_files)))
    return any("classes" in ds for ds in first["datasets"].values())


def class_values(doc: dict[str, Any], criterion: str) -> dict[str, np.ndarray]:
    """Per class, the criterion of each parameter set at one iteration: the mean over
    the datasets that annotate the class."""
    per_class: dict[str, list[list[float]]] = {}
    for ds in doc["datasets"].values():
        for name, section in ds["classes"].items():
            values = [r["scores"][criterion] for r in section["results"]]
            per_class.setdefault(name, []).append(values)
    return {name: np.mean(values, axis=0) for name, values in per_class.items()}


def _best(values: Any, direction: str) -> int:
    """The index of the best of ``values``; of ties the first (the earlier iteration or
    parameter set)."""
    return int(np.argmin(values) if direction == "lower" else np.argmax(values))


def load_class_scores(score_files: Iterable[str | Path]) -> list[dict[str, Any]]:
    """A class run's scores.json documents, by iteration."""
    docs = sorted((read_json(p) for p in score_files), key=lambda d: d["iteration"])
    if not docs:
        raise DataError("no validation scores to select from")
    return docs


def class_parameter_sets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The post-processing parameter sets that a class run's scores are of, in order
    (every class of every crop has the same)."""
    sections = [s for ds in doc["datasets"].values() for s in ds["classes"].values()]
    return [r["parameters"] for r in sections[0]["results"]] if sections else [{}]


def class_candidates(docs: list[dict[str, Any]], criterion: str) -> list[dict[str, Any]]:
    """Per iteration, what selection compares: each class's best parameter set and
    its value, and their mean over classes (best.json's entry, were it chosen)."""
    direction = CLASS_CRITERIA[criterion]
    parameter_sets = class_parameter_sets(docs[0])
    candidates = []
    for doc in docs:
        values = class_values(doc, criterion)
        chosen = {name: _best(v, direction) for name, v in sorted(values.items())}
        classes = {
            name: {"parameters": parameter_sets[i], "value": float(values[name][i])}
            for name, i in chosen.items()
        }
        mean = float(np.mean([c["value"] for c in classes.values()])) if classes else 0.0
        candidates.append(
            {
                "iteration": doc["iteration"],
                "value": mean,
                "direction": direction,
                "classes": classes,
            }
        )
    return candidates


def select_classes(score_files: Iterable[str | Path]) -> dict[str, Any]:
    """Per class criterion: the iteration whose mean over classes of each class's best
    parameter set is best, and each class's parameters and value at that iteration.

    A class no validation dataset annotates has no entry (apply uses its default).
    """
    docs = load_class_scores(score_files)
    best = {}
    for criterion, direction in sorted(CLASS_CRITERIA.items()):
        candidates = class_candidates(docs, criterion)
        best[criterion] = candidates[_best([c["value"] for c in candidates], direction)]
    return best


def select(score_files: Iterable[str | Path], stable: bool = False) -> dict[str, Any]:
    """best.json's content: per criterion of the run's kind (affinities or classes);
    ``stable``: see ``select_best``."""
    score_files = list(score_files)
    if score_files and is_class_scores(score_files):
        return select_classes(score_files)
    return select_best(load_scores(score_files), stable)


def checkpoint_of(checkpoints: Iterable[str], iteration: int) -> str:
    """The checkpoint of ``iteration`` among a run's checkpoint files."""
    matches = [c for c in checkpoints if Path(c).name == f"{iteration}.pt"]
    if not matches:
        raise FileNotFoundError(f"no checkpoint for iteration {iteration}")
    return matches[0]


def validation_prediction(run_dir: str | Path, dataset: str, iteration: int) -> Path | None:
    """Where the prediction of a validated iteration is, if anywhere.

    Beside its scores, unless validation predictions are temporary; then only
    the selected iterations' are kept, predicted again under ``validation/best/``.
    """
    for pattern in (layout.validation(layout.PREDICTION), layout.BEST_PREDICTION):
        path = layout.of_run(run_dir, pattern, it=iteration, dataset=dataset)
        if path.is_dir():
            return path
    return None


#: post-processing parameters an apply entry may pin (see ApplyConfig): the
#: agglomeration's, or instead mutex watershed's ``bias``
PINNABLE = ("merge_function", "min_size", "threshold")


def pinned_parameters(pins: ChoiceStage) -> dict[str, Any]:
    """The parameters an apply entry pins; a pinned bias is a whole parameter set."""
    if pins.bias is not None:
        return {"bias": pins.bias}
    return {k: getattr(pins, k) for k in PINNABLE if getattr(pins, k) is not None}


def fully_pinned(pins: ChoiceStage) -> bool:
    """Whether the pins are a whole parameter set (no selection needed for it)."""
    return pins.bias is not None or all(getattr(pins, k) is not None for k in PINNABLE)


def apply_inputs(pins: ChoiceStage, run: str, parameters: bool = True) -> dict[str, str]:
    """The selection files ``apply_choice`` reads for ``pins``: the workflow's inputs.

    Only what is not pinned: with everything pinned, apply depends on no validation
    or selection output, so it neither waits for them nor reruns when they change.
    ``parameters=False``: only the iteration is needed (prediction).
    """
    if pins.iteration is None:
        return {"best": layout.path(layout.BEST, run=run)}
    if parameters and not fully_pinned(pins):
        return {"scores": layout.path(layout.SCORES, run=run, it=pins.iteration)}
    return {}


def apply_choice(
    pins: ChoiceStage,
    best: str | Path | None = None,
    scores: str | Path | None = None,
    parameters: bool = True,
) -> dict[str, Any]:
    """The iteration and post-processing parameters an apply target uses.

    Pinned values win. Otherwise the iteration is the one ``best`` (best.json)
    selected by the run's criterion, and each parameter comes from the best set at that
    iteration: best.json's, or with a pinned iteration the best in its ``scores``
    (scores.json, datasets averaged as in selection), so that a pinned iteration
    never gets parameters tuned on another one. Reads only the files that
    ``apply_inputs`` names.
    """
    criterion = pins.criterion
    if criterion in CLASS_CRITERIA:  # a class run: only its iteration is pinned
        choice = {"iteration": pins.iteration or read_json(best)[criterion]["iteration"]}
        if parameters:
            selected = read_json(best) if pins.iteration is None else select_classes([scores])
            choice["classes"] = {
                name: c["parameters"] for name, c in selected[criterion]["classes"].items()
            }
        return choice
    choice: dict[str, Any] = {
        "iteration": pins.iteration or read_json(best)[criterion]["iteration"]
    }
    if parameters:
        pinned = pinned_parameters(pins)
        if not fully_pinned(pins):
            selected = (
                read_json(best)
                if pins.iteration is None
                else select_best(load_scores([scores]), pins.stable)
            )
            pinned = {**selected[criterion]["parameters"], **pinned}
        choice["parameters"] = pinned
    return choice


def member_iterations(criterion: str, best: dict[str, str | Path]) -> dict[str, int]:
    """An ensemble's members' iterations: each member's own selection by ``criterion``
    (member -> its best.json)."""
    pins = ChoiceStage(criterion=criterion)
    return {m: apply_choice(pins, best=p, parameters=False)["iteration"] for m, p in best.items()}
