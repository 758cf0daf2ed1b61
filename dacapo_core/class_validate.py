"""Validation of a class run: per-class scores of a prediction against a crop's classes.

For each class the crop annotates (a crop's ``classes``; the others are skipped and
listed as ``unannotated``), and each post-processing parameter set (a threshold of
``threshold``, or the one ``argmax``): the overlap scores (Dice, IoU, precision,
recall) from contingency counts summed block by block, only where the crop is
labelled (its ``mask``); the capped 95th-percentile surface distance, block by
block (masked voxels count as outside both); and ``f1``: for an instance class
the detection F1 of the connected components (``min_size`` applied) against the
ground truth's instances (gt ids for a class of label ids, components of its own
array otherwise) on the whole crop, for the other classes the voxel F1 (= Dice).
Conventions of each score: ``class_metrics``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import dask.array as da
import numpy as np
import zarr
from funlib.geometry import Coordinate
from funlib.persistence import Array
from scipy import ndimage

from . import arrays, class_metrics, codec
from .classes import class_masks
from .config import ArgmaxConfig, ClassTask, InstanceOptions
from .stages import ClassScoreStage

#: voxels per axis of the blocks that scores are counted in
SCORE_BLOCK = 64
#: a contingency table's value for a voxel the crop does not label (left out)
UNLABELLED = 2


def predicted_masks(prediction: str, task: ClassTask, post: Any) -> dict[str, list[da.Array]]:
    """Per class, the lazy binary prediction of each parameter set."""
    array = arrays.open_array(prediction)
    channels = zarr.open(prediction, mode="r").attrs["channels"]
    if isinstance(post, ArgmaxConfig):
        labels = da.argmax(array.data, axis=0)
        return {name: [labels == channels.index(name)] for name in task.classes}
    scale = codec.scale_of(prediction)
    out = {}
    for name in task.classes:
        values = array.data[channels.index(name)]
        if values.dtype != np.float32:
            values = values.astype(np.float32) * scale
        out[name] = [values > p["threshold"] for p in post.parameter_sets()]
    return out


def instances(binary: np.ndarray, min_size: int) -> np.ndarray:
    """Face-connected components of ``binary``, those under ``min_size`` voxels removed."""
    labels, _ = ndimage.label(binary)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = True
    labels[small[labels]] = 0
    return labels


def true_instances(stage: ClassScoreStage, name: str, inside: np.ndarray) -> np.ndarray:
    """The ground truth's instances of a class: its connected components, split where
    the ids of its source (gt, or its own array) differ; so an instance array gives
    its instances, a binary one its components."""
    definition = stage.task.classes[name]
    source = definition.array or stage.dataset.gt
    ids = arrays.open_array(arrays.array_path(stage.dataset.container, source))
    ids = arrays.read(ids, ids.roi)
    components = ndimage.label(inside)[0]
    pairs = np.stack([components.ravel(), np.where(inside, ids, 0).ravel()])
    _, numbers = np.unique(pairs, axis=1, return_inverse=True)
    numbers = numbers.reshape(inside.shape)
    return np.where(inside, numbers + 1, 0)


def _scores(
    table: class_metrics.Contingency, distance: float, detection: dict | None
) -> dict[str, Any]:
    kept = Counter({k: n for k, n in table.items() if k[1] != UNLABELLED})
    scores = class_metrics.overlap(kept)
    scores["surface_distance"] = distance
    scores["f1"] = scores["dice"] if detection is None else detection["f1"]
    if detection is not None:
        scores["detection"] = detection
    return scores


def score_classes(prediction: str, stage: ClassScoreStage) -> dict[str, Any]:
    """Per annotated class, the scores of each parameter set (see the module)."""
    dataset, task, post = stage.dataset, stage.task, stage.post_processor
    masks = class_masks(dataset, task)
    vs = masks.voxel_size
    pred = arrays.open_array(prediction)
    if not pred.roi.contains(masks.roi):
        raise arrays.DataError(f"{prediction}: does not cover the crop's gt")
    predicted = predicted_masks(prediction, task, post)
    labelled = da.ones(masks.data.shape[1:], dtype=bool, chunks=masks.data.chunksize[1:])
    if dataset.mask is not None:
        mask = arrays.open_array(arrays.array_path(dataset.container, dataset.mask))
        labelled = mask.data[((masks.roi - mask.roi.offset) / vs).to_slices()] != 0
    annotated = set(task.classes) if dataset.classes is None else set(dataset.classes)
    crop = ((masks.roi - pred.roi.offset) / vs).to_slices()
    block = Coordinate((SCORE_BLOCK,) * vs.dims) * vs
    instance_classes: dict[str, InstanceOptions] = getattr(post, "instances", {})
    out: dict[str, Any] = {"classes": {}, "unannotated": sorted(set(task.classes) - annotated)}
    for c, name in enumerate(task.classes):
        if name not in annotated:
            continue
        inside = masks.data[c] == 1
        true = da.where(labelled, inside.astype(np.uint8), UNLABELLED)
        true_array = Array(true, masks.roi.offset, vs)
        truth = Array(inside, masks.roi.offset, vs)
        gt_instances = None
        if name in instance_classes:
            gt_instances = true_instances(stage, name, np.asarray(inside))
        results = []
        for params, binary in zip(post.parameter_sets(), predicted[name], strict=True):
            binary = Array(binary[crop], masks.roi.offset, vs)
            table = class_metrics.contingency_blockwise(binary, true_array, block)
            distance = class_metrics.surface_distance_blockwise(binary, truth, block)
            detection = None
            if gt_instances is not None:
                found = instances(np.asarray(binary.data), instance_classes[name].min_size)
                keep = np.asarray(labelled)
                detection = class_metrics.detection(
                    class_metrics.contingency(found[keep], gt_instances[keep])
                )
            results.append({"parameters": params, "scores": _scores(table, distance, detection)})
        out["classes"][name] = {"results": results}
    return out
