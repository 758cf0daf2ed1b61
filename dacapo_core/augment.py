"""Augmentations from the config, as gunpowder nodes, in the order given.

Geometric ones (simple, elastic) transform raw and labels alike, so they stay
aligned; intensity ones (intensity, gamma, noise, defect) touch raw only. All
draw their randomness from gunpowder's per-request seed, so batch ``i`` is the
same whichever chunk of training produces it.
"""

from __future__ import annotations

import gunpowder as gp
import numpy as np
from funlib.geometry import Coordinate

from .config import (
    Augment,
    DefectAugment,
    ElasticAugment,
    GammaAugment,
    IntensityAugment,
    NoiseAugment,
    SimpleAugment,
)


class RandomGamma(gp.BatchFilter):
    """``raw ** gamma`` with gamma uniform in [low, high]; raw must be in [0, 1]."""

    def __init__(self, array: gp.ArrayKey, low: float, high: float) -> None:
        self.array, self.low, self.high = array, low, high

    def setup(self) -> None:
        self.enable_autoskip()
        self.updates(self.array, self.spec[self.array])

    def prepare(self, request: gp.BatchRequest) -> gp.BatchRequest:
        deps = gp.BatchRequest()
        deps[self.array] = request[self.array].copy()
        return deps

    def process(self, batch: gp.Batch, request: gp.BatchRequest) -> None:
        raw = batch.arrays[self.array]
        gamma = np.random.uniform(self.low, self.high)
        raw.data = np.clip(raw.data, 0, 1) ** gamma


def node(
    augment: Augment, raw: gp.ArrayKey, voxel_size: Coordinate, network_dims: int
) -> gp.BatchFilter:
    """The gunpowder node of one configured augmentation (shapes in voxels -> world).

    Geometric ones act on the network's axes, the trailing ``network_dims`` of the
    data: a 2D network's sections of a stack are flipped and deformed in-plane.
    """
    dims = voxel_size.dims
    axes = list(range(dims - network_dims, dims))
    if isinstance(augment, SimpleAugment):
        # only axes of the in-plane resolution swap (anisotropic EM keeps z); every
        # order of them is equally likely (gunpowder mis-maps transpose_only combined
        # with transpose_probs, so no probabilities are passed)
        square = [a for a in axes if voxel_size[a] == voxel_size[-1]]
        return gp.SimpleAugment(
            mirror_only=axes,
            transpose_only=square if augment.transpose else [],
            mirror_probs=[0.5 * augment.mirror] * dims,
        )
    if isinstance(augment, ElasticAugment):
        network_voxel = Coordinate(voxel_size[-network_dims:])
        spacing = Coordinate(augment.control_point_spacing or [10] * network_dims)
        jitter = augment.jitter_sigma or [1.0] * network_dims
        return gp.DeformAugment(
            control_point_spacing=spacing * network_voxel,
            jitter_sigma=[s * v for s, v in zip(jitter, network_voxel, strict=True)],
            rotate=augment.rotate,
            subsample=augment.subsample,
            spatial_dims=network_dims,
        )
    if isinstance(augment, IntensityAugment):
        return gp.IntensityAugment(raw, *augment.scale, *augment.shift)
    if isinstance(augment, GammaAugment):
        return RandomGamma(raw, *augment.gamma)
    if isinstance(augment, NoiseAugment):
        return gp.NoiseAugment(raw, mode="gaussian", var=augment.var, p=augment.p)
    if isinstance(augment, DefectAugment):
        return gp.DefectAugment(
            raw,
            prob_missing=augment.prob_missing,
            prob_low_contrast=augment.prob_low_contrast,
            contrast_scale=augment.contrast_scale,
            axis=augment.axis,
        )
    raise TypeError(f"unknown augment {augment!r}")
