"""The class tasks (distances, one_hot): class masks from a crop, and their targets.

A crop becomes a stack of class masks, one channel per class of the task, with
values 0 (outside), 1 (inside) or ``UNANNOTATED`` (the crop does not annotate the
class). The stack is lazy (dask), so a large crop is read one sample at a time.
The targets come with a mask of the voxels whose target the crop determines; the
loss sees nothing else.
"""

from __future__ import annotations

import math

import dask.array as da
import gunpowder as gp
import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array
from scipy.ndimage import distance_transform_edt

from . import arrays
from .config import ClassTask, DatasetConfig, DistancesTask

#: a class mask's value throughout a crop that does not annotate the class
UNANNOTATED = 255


def class_masks(dataset: DatasetConfig, task: ClassTask) -> Array:
    """The (classes, *spatial) uint8 stack of a crop, on its gt's voxels; DataError
    where a class's own array does not cover gt's ROI at gt's voxel size."""
    gt = arrays.open_array(arrays.array_path(dataset.container, dataset.gt))
    annotated = set(task.classes) if dataset.classes is None else set(dataset.classes)
    channels = []
    for name, definition in task.classes.items():
        if name not in annotated:
            channels.append(da.full(gt.data.shape, UNANNOTATED, dtype=np.uint8))
        elif definition.array is not None:
            path = arrays.array_path(dataset.container, definition.array)
            own = arrays.open_array(path)
            if own.roi != gt.roi or own.voxel_size != gt.voxel_size:
                raise arrays.DataError(
                    f"{path}: class '{name}' needs gt's ROI {arrays.format_roi(gt.roi)} and "
                    f"voxel size {tuple(gt.voxel_size)}"
                )
            channels.append((own.data != 0).astype(np.uint8))
        elif definition.labels == "all":
            channels.append((gt.data != 0).astype(np.uint8))
        else:
            channels.append(da.isin(gt.data, definition.labels).astype(np.uint8))
    return Array(da.stack(channels), offset=gt.offset, voxel_size=gt.voxel_size)


def context(task: ClassTask, voxel_size: Coordinate) -> Coordinate:
    """World units of class masks a target needs around itself: ``clip`` (on the
    voxel grid) for distances, none for one_hot."""
    if not isinstance(task, DistancesTask):
        return voxel_size * 0
    return Coordinate(math.ceil(task.clip / v) * v for v in voxel_size)


def _distance_to(zeros: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
    """World distance of each voxel to the nearest True voxel of ``zeros``; infinite
    where there is none (scipy would measure to a voxel outside the array)."""
    if not zeros.any():
        return np.full(zeros.shape, np.inf)
    return distance_transform_edt(~zeros, sampling=tuple(voxel_size))


def signed_distances(
    inside: np.ndarray, labelled: np.ndarray, voxel_size: Coordinate, clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """(distance, known) of one class within a window: distance (world units) between
    voxel centres to the nearest labelled voxel of the other side, positive inside.

    The true boundary may also lie where nothing is labelled, or beyond the window:
    the distance is known where the labelled boundary is not farther than the
    nearest unlabelled voxel (the window's outside counts as unlabelled), or where
    that voxel is ``clip`` or farther away (the clipped distance is then ``clip``
    either way).
    """
    inner = _distance_to(~inside & labelled, voxel_size)
    outer = _distance_to(inside & labelled, voxel_size)
    distance = np.where(inside, inner, -outer)
    unlabelled = np.pad(~labelled, 1, constant_values=True)
    edge = _distance_to(unlabelled, voxel_size)[(slice(1, -1),) * inside.ndim]
    known = labelled & ((np.abs(distance) <= edge) | (edge >= clip))
    return distance, known


def distances_target(
    task: DistancesTask, masks: np.ndarray, labelled: np.ndarray, voxel_size: Coordinate
) -> tuple[np.ndarray, np.ndarray]:
    """(target, known) per class channel: tanh(clipped signed distance / scale)."""
    target = np.zeros(masks.shape, dtype=np.float32)
    known = np.zeros(masks.shape, dtype=bool)
    for c, mask in enumerate(masks):
        distance, known[c] = signed_distances(
            mask == 1, labelled & (mask != UNANNOTATED), voxel_size, task.clip
        )
        target[c] = np.tanh(np.clip(distance, -task.clip, task.clip) / task.scale)
    return target, known


def one_hot_target(masks: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target, known): channel 0 background, channel ``1 + c`` class ``c``.

    A voxel in no annotated class is background only if the crop annotates every
    class; otherwise it is unknown. DataError where a voxel is in two classes.
    """
    inside = masks == 1
    if (inside.sum(axis=0) > 1).any():
        raise arrays.DataError("one_hot classes overlap in a sample (their arrays intersect)")
    target = np.concatenate([~inside.any(axis=0)[None], inside]).astype(np.float32)
    certain = inside.any(axis=0) | (masks != UNANNOTATED).all(axis=0)
    known = np.broadcast_to(labelled & certain, target.shape)
    return target, known


class AddClassTarget(gp.BatchFilter):
    """A class task's target and its mask (the voxels whose target is known) from the
    class masks and the crop's mask, read with the task's context around them."""

    def __init__(
        self,
        task: ClassTask,
        masks: gp.ArrayKey,
        labelled: gp.ArrayKey,
        target: gp.ArrayKey,
        target_mask: gp.ArrayKey,
    ) -> None:
        self.task = task
        self.masks = masks
        self.labelled = labelled
        self.target = target
        self.target_mask = target_mask

    def setup(self) -> None:
        spec = self.spec[self.masks].copy()
        spec.dtype = np.float32
        self.provides(self.target, spec)
        spec = spec.copy()
        spec.dtype = np.uint8
        self.provides(self.target_mask, spec)

    def prepare(self, request: gp.BatchRequest) -> gp.BatchRequest:
        voxel_size = self.spec[self.masks].voxel_size
        margin = context(self.task, voxel_size)
        roi = request[self.target].roi.grow(margin, margin)
        deps = gp.BatchRequest()
        deps[self.masks] = gp.ArraySpec(roi=roi)
        deps[self.labelled] = gp.ArraySpec(roi=roi)
        return deps

    def process(self, batch: gp.Batch, request: gp.BatchRequest) -> gp.Batch:
        masks = batch[self.masks]
        labelled = batch[self.labelled].data != 0
        if isinstance(self.task, DistancesTask):
            target, known = distances_target(self.task, masks.data, labelled, masks.spec.voxel_size)
        else:
            target, known = one_hot_target(masks.data, labelled)
        spec = masks.spec.copy()
        spec.dtype = np.float32
        out = gp.Batch()
        out[self.target] = gp.Array(target, spec).crop(request[self.target].roi)
        spec = spec.copy()
        spec.dtype = np.uint8
        out[self.target_mask] = gp.Array(known.astype(np.uint8), spec).crop(
            request[self.target_mask].roi
        )
        return out
