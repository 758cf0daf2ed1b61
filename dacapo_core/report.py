"""Figures people would rather look at than read: loss and validation curves, example sections."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Roi
from funlib.persistence import Array
from matplotlib.figure import Figure

from . import arrays, codec
from .config import CRITERIA
from .palette import class_colours
from .select import (
    class_candidates,
    class_parameter_sets,
    class_values,
    load_class_scores,
    load_scores,
)


def plot_loss(stat_files: Iterable[str | Path], out: str | Path) -> None:
    """Loss per iteration over all training chunks, with a running mean."""
    rows = sorted(
        (r["iteration"], r["loss"]) for f in stat_files for r in arrays.read_json(f)["iterations"]
    )
    its, loss = np.array(rows).T
    window = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig = Figure(figsize=(7, 4))  # no pyplot: no global state, no display backend
    ax = fig.subplots()
    ax.plot(its, loss, alpha=0.3, label="loss")
    ax.plot(its[window - 1 :], smooth, label=f"running mean ({window})")
    ax.set(xlabel="iteration", ylabel="loss", yscale="log", title="training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_scores(score_files: Iterable[str | Path], best_file: str | Path, out: str | Path) -> None:
    """Each criterion against iteration (best parameters per iteration); selection marked."""
    scores = load_scores(score_files).mean("dataset")
    best = arrays.read_json(best_file)
    fig = Figure(figsize=(4 * len(CRITERIA), 3.5))
    axes = fig.subplots(1, len(CRITERIA))
    for ax, (criterion, direction) in zip(axes, sorted(CRITERIA.items()), strict=True):
        values = scores.sel(criterion=criterion)
        per_it = values.min("parameters") if direction == "lower" else values.max("parameters")
        ax.plot(scores.iteration, per_it, marker="o")
        chosen = best[criterion]
        ax.plot(chosen["iteration"], chosen["value"], "r*", markersize=14, label="selected")
        ax.set(xlabel="iteration", title=f"{criterion} ({direction} is better)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


#: the curve of mutex watershed's parameter sets in the threshold figure
MUTEX = "mutex watershed, bias"


def _curve(params: dict[str, Any]) -> str:
    """The curve of a parameter set in the threshold figure."""
    if "bias" in params:
        return MUTEX
    return f"{params['merge_function']}, min size {params['min_size']}"


def plot_thresholds(
    score_files: Iterable[str | Path], best_file: str | Path, criterion: str, out: str | Path
) -> None:
    """At the selected iteration: each criterion against threshold, one curve per
    (merge function, minimal fragment size); mutex watershed against its bias."""
    scores = load_scores(score_files).mean("dataset")
    iteration = arrays.read_json(best_file)[criterion]["iteration"]
    at_best = scores.sel(iteration=iteration)
    params = scores.attrs["parameter_sets"]
    fig = Figure(figsize=(4 * len(CRITERIA), 3.5))
    axes = fig.subplots(1, len(CRITERIA))
    for ax, (name, direction) in zip(axes, sorted(CRITERIA.items()), strict=True):
        curves: dict[str, list[int]] = {}
        for i, p in enumerate(params):
            curves.setdefault(_curve(p), []).append(i)
        for label, index in curves.items():
            x = [params[i].get("threshold", params[i].get("bias")) for i in index]
            ax.plot(x, at_best.sel(criterion=name).values[index], marker="o", label=label)
        xlabel = "threshold (mutex: bias)" if MUTEX in curves else "threshold"
        ax.set(xlabel=xlabel, title=f"{name} ({direction} is better), iteration {iteration}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def class_scores_figure(
    score_files: Iterable[str | Path], best_file: str | Path, criterion: str, classes: Sequence[str]
) -> Figure:
    """A class run's criterion against iteration: a line per class scored (its best
    threshold at each iteration), their mean over classes (what selection compares),
    and the selected iteration marked. Classes in the task's colours (``palette``)."""
    candidates = class_candidates(load_class_scores(score_files), criterion)
    best = arrays.read_json(best_file)[criterion]
    its = [c["iteration"] for c in candidates]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, colour in class_colours(classes).items():
        if name in candidates[0]["classes"]:  # some validation crop annotates it
            values = [c["classes"][name]["value"] for c in candidates]
            ax.plot(its, values, marker="o", color=colour, label=name)
    ax.plot(its, [c["value"] for c in candidates], "k--", label="mean over classes")
    ax.axvline(best["iteration"], color="grey", linestyle=":")
    ax.plot(best["iteration"], best["value"], "k*", markersize=14, label="selected")
    direction = best["direction"]
    ax.set(xlabel="iteration", ylabel=criterion, title=f"{criterion} ({direction} is better)")
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5))  # beside: many classes
    fig.tight_layout()
    return fig


def class_thresholds_figure(
    score_files: Iterable[str | Path], best_file: str | Path, criterion: str, classes: Sequence[str]
) -> Figure:
    """At the selected iteration, a panel per class scored: the criterion against
    threshold (mean over the crops annotating the class), the class's chosen threshold
    marked: whether the choice is a clear optimum or the sweep's edge."""
    best = arrays.read_json(best_file)[criterion]
    doc = next(d for d in load_class_scores(score_files) if d["iteration"] == best["iteration"])
    thresholds = [p["threshold"] for p in class_parameter_sets(doc)]
    values = class_values(doc, criterion)
    shown = [(name, colour) for name, colour in class_colours(classes).items() if name in values]
    fig = Figure(figsize=(4 * len(shown), 3.5))
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (name, colour) in zip(axes, shown, strict=True):
        chosen = best["classes"][name]
        ax.plot(thresholds, values[name], marker="o", color=colour)
        threshold = chosen["parameters"]["threshold"]
        ax.plot(threshold, chosen["value"], "k*", markersize=14, label=f"chosen: {threshold}")
        ax.set(xlabel="threshold", ylabel=criterion, title=name)
        ax.legend()
    fig.suptitle(f"{criterion} ({best['direction']} is better), iteration {best['iteration']}")
    fig.tight_layout()
    return fig


SLICE_COLUMNS = ("raw", "affinities", "segmentation")


def _z_positions(array: Array, count: int) -> list[int | None]:
    """World z of ``count`` sections evenly inside the array (at 1/4, 1/2, 3/4 for 3):
    one section can miss what goes wrong elsewhere in the volume. A 2D array is one."""
    if array.voxel_size.dims == 2:
        return [None]
    vz, nz = array.voxel_size[0], array.roi.shape[0] // array.voxel_size[0]
    return [array.roi.offset[0] + nz * (i + 1) // (count + 1) * vz for i in range(count)]


def _section(path: str, roi: Roi, z: int | None) -> np.ndarray:
    """The z-section of ``roi`` at world ``z``, read alone: apply targets may be large."""
    array = arrays.open_array(path)
    if z is None:
        return arrays.read(array, roi.intersect(array.roi))
    plane = Roi((z, *roi.offset[1:]), (array.voxel_size[0], *roi.shape[1:]))
    return arrays.read(array, plane.intersect(array.roi))[..., 0, :, :]


def _segment_colours(labels: np.ndarray) -> np.ndarray:
    """Random but stable colours per id, black for 0."""
    rgb = (np.random.default_rng(0).random((256, 3)) * 0.8 + 0.2)[labels % 256]
    rgb[labels == 0] = 0
    return rgb


def _plot_row(
    row: np.ndarray, title: str, paths: tuple[str, str, str], roi: Roi, z: int | None
) -> None:
    """Raw, affinities and segmentation at one z, on the same ROI so they line up."""
    raw, prediction, segmentation = paths
    stored = _section(prediction, roi, z)[: arrays.affinity_dims(prediction)]  # nearest ones
    affs = codec.decode(stored, codec.scale_of(prediction))
    affs = np.moveaxis(np.pad(affs, [(0, 3 - len(affs))] + [(0, 0)] * (affs.ndim - 1)), 0, -1)
    images = [
        (_section(raw, roi, z), {"cmap": "gray"}),
        (np.clip(affs, 0, 1), {}),
        (_segment_colours(_section(segmentation, roi, z)), {}),
    ]
    for ax, (image, style), name in zip(row, images, SLICE_COLUMNS, strict=True):
        ax.imshow(image, **style)
        ax.set_title(f"{title}: {name}")
        ax.axis("off")


def slices_figure(panels: list[tuple[str, str, str, str]], sections: int = 3) -> Figure:
    """For each (title, raw, prediction, segmentation), a block of ``sections`` rows:
    raw, affinities and segmentation side by side at evenly spaced z."""
    segs = [arrays.open_array(segmentation) for *_, segmentation in panels]
    rows = [
        (panel, seg.roi, z)
        for panel, seg in zip(panels, segs, strict=True)
        for z in _z_positions(seg, sections)
    ]
    fig = Figure(figsize=(12, 3.6 * len(rows)))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for row, ((title, *paths), roi, z) in zip(axes, rows, strict=True):
        _plot_row(row, title if z is None else f"{title}, z={z}", tuple(paths), roi, z)
    fig.tight_layout()
    return fig


def plot_slices(panels: list[tuple[str, str, str, str]], out: str | Path) -> None:
    """The slices figure, or a note while nothing is predicted to show."""
    if not panels:
        fig = Figure(figsize=(6, 1))
        fig.text(0.5, 0.5, "no predictions to show", ha="center", va="center")
        fig.savefig(out, dpi=80)
        return
    slices_figure(panels).savefig(out, dpi=80)
