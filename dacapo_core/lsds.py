"""Local shape descriptors (LSDs; Sheridan et al., Nature Methods 2022): the auxiliary
target of an affinities task with ``lsds``.

At a voxel of an object, statistics of the object's voxels in a Gaussian neighbourhood
of the voxel (``lsd_sigma``, world units): the offset of their mean from the voxel,
their coordinates' variances and Pearson coefficients, and their share of the
neighbourhood (size), each mapped to [0, 1]; 0 on background. The ``lsd`` package
(``lsds`` on PyPI, the paper's code) computes them, and its conventions hold: channel
order, normalisation, Gaussian truncated at 3 sigma, ``downsample``.

``lsd`` filters the whole array once per object. An object's descriptors depend on its
own voxels only (zero elsewhere, as outside the array), so filtering its bounding box
alone gives the same values, at a fraction of the cost; and only the objects in the
target's window are needed.
"""

from __future__ import annotations

import math

import fastremap
import gunpowder as gp
import numpy as np
from funlib.geometry import Coordinate
from lsd.train.local_shape_descriptor import get_local_shape_descriptors
from scipy.ndimage import find_objects

from .config import AffinitiesTask
from .geometry import LSD_CHANNELS, lift


def context(task: AffinitiesTask, voxel_size: Coordinate) -> Coordinate:
    """World units of GT the LSDs of a window need around it: the Gaussian's reach (3
    sigma, on the voxel grid) and one downsampling step; none across the sections of a
    3D stack for a 2D network."""
    dims = len(task.neighborhood[0])
    reach = [math.ceil(3 * task.lsd_sigma / v) + task.lsd_downsample for v in voxel_size[-dims:]]
    return lift(reach, voxel_size.dims, fill=0) * voxel_size


def _object(
    inside: np.ndarray, sigma: float, voxel_size: Coordinate, downsample: int
) -> np.ndarray:
    """``lsd``'s descriptors of one object in its bounding box; ``lsd`` downsamples
    shapes that are multiples of ``downsample``, so the box is padded with background."""
    padded = np.pad(inside.view(np.uint8), [(0, -s % downsample) for s in inside.shape])
    lsds = get_local_shape_descriptors(
        padded, (sigma,) * inside.ndim, voxel_size=voxel_size, downsample=downsample
    )
    return lsds[(slice(None), *(slice(0, s) for s in inside.shape))]


def descriptors(
    labels: np.ndarray,
    window: tuple[slice, ...],
    sigma: float,
    voxel_size: Coordinate,
    downsample: int = 1,
) -> np.ndarray:
    """The LSDs (channels, *window shape; float32 in [0, 1]) of the 2D or 3D ``labels``
    in ``window``, computed from all of ``labels`` (an object beyond it is cut there)."""
    relabelled = fastremap.renumber(labels)[0]  # find_objects lists ids up to the largest
    boxes = find_objects(relabelled)
    lsds = np.zeros((LSD_CHANNELS[labels.ndim], *labels.shape), dtype=np.float32)
    for index in fastremap.unique(relabelled[window]):
        if index == 0:
            continue
        box = boxes[index - 1]
        inside = relabelled[box] == index
        lsds[(slice(None), *box)][:, inside] = _object(inside, sigma, voxel_size, downsample)[
            :, inside
        ]
    return lsds[(slice(None), *window)]


class AppendLsds(gp.BatchFilter):
    """Appends the LSDs of the labelled GT to the target's channels, and the GT's mask
    to the weights' channels: the loss learns LSDs where GT is labelled (background
    towards 0), as in ``lsd``'s training pipelines. A 2D network on a 3D stack gets
    the LSDs of each section."""

    def __init__(
        self,
        task: AffinitiesTask,
        gt: gp.ArrayKey,
        mask: gp.ArrayKey,
        target: gp.ArrayKey,
        weights: gp.ArrayKey,
    ) -> None:
        self.task = task
        self.gt, self.mask, self.target, self.weights = gt, mask, target, weights

    def setup(self) -> None:
        self.voxel_size = self.spec[self.gt].voxel_size
        self.context = context(self.task, self.voxel_size)

    def prepare(self, request: gp.BatchRequest) -> gp.BatchRequest:
        grown = request[self.target].roi.grow(self.context, self.context)
        deps = gp.BatchRequest()
        deps[self.gt] = gp.ArraySpec(roi=grown)
        deps[self.mask] = gp.ArraySpec(roi=grown)
        deps[self.target] = request[self.target].copy()
        deps[self.weights] = request[self.weights].copy()
        return deps

    def process(self, batch: gp.Batch, request: gp.BatchRequest) -> gp.Batch:
        gt, mask = batch[self.gt], batch[self.mask]
        roi = request[self.target].roi
        window = ((roi - gt.spec.roi.offset) / self.voxel_size).to_slices()
        labelled = mask.data > 0
        lsds = self._descriptors(gt.data * labelled, window)
        extra = {
            self.target: lsds,
            self.weights: np.broadcast_to(labelled[window], lsds.shape).astype(np.float32),
        }
        out = gp.Batch()
        for key, channels in extra.items():
            array = batch[key]
            out[key] = gp.Array(np.concatenate([array.data, channels]), array.spec.copy())
        return out

    def _descriptors(self, labels: np.ndarray, window: tuple[slice, ...]) -> np.ndarray:
        """The LSDs of ``labels`` in ``window``, per section where the network is 2D."""
        dims = len(self.task.neighborhood[0])
        args = (self.task.lsd_sigma, self.voxel_size[-dims:], self.task.lsd_downsample)
        if labels.ndim == dims:
            return descriptors(labels, window, *args)
        sections = [descriptors(s, window[1:], *args) for s in labels[window[0]]]
        return np.stack(sections, axis=1)
