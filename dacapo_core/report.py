"""Figures people would rather look at than read: loss and validation curves."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from . import arrays
from .config import CRITERIA
from .select import load_scores


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


def plot_thresholds(
    score_files: Iterable[str | Path], best_file: str | Path, criterion: str, out: str | Path
) -> None:
    """At the selected iteration: each criterion against threshold, one curve per
    (merge function, minimal fragment size)."""
    scores = load_scores(score_files).mean("dataset")
    iteration = arrays.read_json(best_file)[criterion]["iteration"]
    at_best = scores.sel(iteration=iteration)
    params = scores.attrs["parameter_sets"]
    fig = Figure(figsize=(4 * len(CRITERIA), 3.5))
    axes = fig.subplots(1, len(CRITERIA))
    for ax, (name, direction) in zip(axes, sorted(CRITERIA.items()), strict=True):
        curves: dict[str, list[int]] = {}
        for i, p in enumerate(params):
            curves.setdefault(f"{p['merge_function']}, min size {p['min_size']}", []).append(i)
        for label, index in curves.items():
            thresholds = [params[i]["threshold"] for i in index]
            ax.plot(thresholds, at_best.sel(criterion=name).values[index], marker="o", label=label)
        ax.set(xlabel="threshold", title=f"{name} ({direction} is better), iteration {iteration}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def _middle_slice(path: str, roi) -> np.ndarray:
    array = arrays.open_array(path)
    data = array.to_ndarray(roi.intersect(array.roi))
    return data[..., data.shape[-3] // 2, :, :]


def _segment_colours(labels: np.ndarray) -> np.ndarray:
    """Random but stable colours per id, black for 0."""
    rgb = (np.random.default_rng(0).random((256, 3)) * 0.8 + 0.2)[labels % 256]
    rgb[labels == 0] = 0
    return rgb


def plot_slices(panels: list[tuple[str, str, str, str]], out: str | Path) -> None:
    """One row per (title, raw, prediction, segmentation): the middle section of each."""
    if not panels:  # nothing predicted to show (yet)
        fig = Figure(figsize=(6, 1))
        fig.text(0.5, 0.5, "no predictions to show", ha="center", va="center")
        fig.savefig(out, dpi=80)
        return
    fig = Figure(figsize=(12, 4 * len(panels)))
    axes = fig.subplots(len(panels), 3, squeeze=False)
    for row, (title, raw, prediction, segmentation) in zip(axes, panels, strict=True):
        roi = arrays.open_array(segmentation).roi
        affs = np.moveaxis(_middle_slice(prediction, roi)[:3], 0, -1)
        affs = affs * arrays.affinity_scale(prediction)  # uint8 predictions store 255ths
        images = [
            (_middle_slice(raw, roi), {"cmap": "gray"}),
            (np.clip(affs, 0, 1), {}),
            (_segment_colours(_middle_slice(segmentation, roi)), {}),
        ]
        names = ("raw", "affinities", "segmentation")
        for ax, (image, style), name in zip(row, images, names, strict=True):
            ax.imshow(image, **style)
            ax.set_title(f"{title}: {name}")
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
