"""Stage 1: watershed fragments of affinities, the nodes of the region graph, and the
options that say how (``FragmentOptions``, part of the config schema).

In-memory arrays only (no zarr, no daisy): a fragment's id is a function of
where its seed lies, so blocks computed apart give the same ids as one
whole-volume run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from ..strict import Strict
from .flood import flood


class FragmentOptions(Strict):
    """How affinities become fragments, the nodes of the region graph."""

    method: Literal["seeded", "waterz"] = Field(
        "seeded",
        description="seeded: watershed from maxima of the distance to boundaries; "
        "waterz: waterz's affinity watershed (3D networks only, many small fragments)",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="seeded: voxels with mean nearest-neighbour affinity above"
    )
    seed_distance: int = Field(3, ge=1, description="seeded: minimal seed spacing (voxels)")
    context: int = Field(
        16,
        ge=0,
        description="voxels read around each block: seeds near a block face then match a "
        "whole-volume run where objects are thinner than twice this",
    )
    long_range: bool = Field(
        False,
        description="the region graph also gets edges of the long-range affinities (what "
        "mutex watershed repels with); on by itself where the post-processor has biases",
    )


def fragments(
    affs: np.ndarray,
    options: FragmentOptions | None = None,
    dims: int | None = None,
    origin: Sequence[int] | None = None,
    volume: Sequence[int] | None = None,
) -> np.ndarray:
    """Fragments of the nearest-neighbour affinities (the first ``dims`` channels,
    which connect the trailing ``dims`` axes; default all).

    A fragment's id is 1 + the linear index of its representative voxel (its seed,
    or its first voxel) in a volume of shape ``volume`` where ``affs`` start at voxel
    ``origin`` (default: ``affs`` alone): ids are unique, and the same seed gives the
    same id wherever it is computed. Only the representatives' indices are converted,
    not every voxel's.
    """
    options = options or FragmentOptions()
    spatial = affs.ndim - 1
    dims = dims or spatial
    origin = tuple(origin or (0,) * spatial)
    volume = tuple(volume or affs.shape[1:])
    if dims < spatial:  # sections on their own; ids as linear indices in the stack
        size = int(np.prod(volume[1:]))
        per_section = [
            fragments(affs[:, z], options, dims, origin[1:], volume[1:])
            for z in range(affs.shape[1])
        ]
        return np.stack(
            [np.where(f > 0, f + (origin[0] + z) * size, 0) for z, f in enumerate(per_section)]
        )
    if options.method == "waterz":
        import waterz  # here, not at the top: see _seeded_watershed

        nn = np.ascontiguousarray(affs[:3], dtype=np.float32)
        labels = next(iter(waterz.agglomerate(nn, thresholds=[0.0]))).copy()
        return _first_voxel_ids(labels, origin, volume)[labels]
    labels, seeds = _seeded_watershed(affs[:dims], options.threshold, options.seed_distance)
    return _first_voxel_ids(seeds, origin, volume)[labels]


def _first_voxel_ids(
    labels: np.ndarray, origin: Sequence[int], volume: Sequence[int]
) -> np.ndarray:
    """Lookup table: label -> 1 + the linear index in ``volume`` of its first voxel in
    ``labels`` (which starts at ``origin`` there; 0 stays 0). Only labelled voxels are
    sorted: seeds are sparse, and a basin is named after its seed, not its first voxel."""
    where = np.flatnonzero(labels)
    values = labels.ravel()[where]
    table = np.zeros(int(values.max(initial=0)) + 1, dtype=np.uint64)
    present, first = np.unique(values, return_index=True)
    local = np.unravel_index(where[first], labels.shape)
    shifted = tuple(c + o for c, o in zip(local, origin, strict=True))
    table[present] = np.ravel_multi_index(shifted, tuple(volume)).astype(np.uint64) + 1
    return table


def _seeded_watershed(
    nn: np.ndarray, threshold: float, seed_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Watershed of the distance to boundaries, seeded at its local maxima.

    One seed per object interior instead of one per noise minimum: far fewer
    fragments (and edges) than a plain affinity watershed, and the boundary
    voxels are still assigned, so neighbouring fragments share edges.
    Returns the basins and the seeds, both labelled 1..n alike.
    """
    inside = nn.mean(axis=0) > threshold
    depth = _depth(inside)
    peaks = (_maximum_filter(depth, seed_distance) == depth) & inside
    # every interior piece gets a seed, however small (pieces cut by a block face are)
    pieces, n = _label(inside)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[pieces[peaks]] = True
    seeded[0] = True  # the boundary is no piece
    np.put(peaks, _first_maxima(depth, pieces, ~seeded[pieces]), True)
    seeds, _ = _label(peaks)
    return flood(depth.max(initial=0) - depth, seeds), seeds


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components of ``mask``, labelled 1..n (``scipy.ndimage.label``'s
    partition; the numbers may differ, and nothing here depends on them). cc3d: twice
    as fast, and it imports nothing beyond numpy, where scipy.ndimage alone took a third
    of a fragment worker's start-up."""
    import cc3d

    return cc3d.connected_components(mask, connectivity=2 * mask.ndim, return_N=True)


def _maximum_filter(values: np.ndarray, radius: int) -> np.ndarray:
    """``scipy.ndimage.maximum_filter(values, size=2 * radius + 1)``, exactly: the
    maximum over the cube of that side, clipped to the array (scipy's default reflected
    border only repeats values the clipped window holds). Separable, a shifted maximum
    per offset and axis: 2.5 times faster on a 96^3 block, and without scipy's import."""
    out = values
    for axis in range(values.ndim):
        along, out = out, out.copy()
        for shift in range(1, min(radius, values.shape[axis] - 1) + 1):
            ahead = [slice(None)] * values.ndim
            behind = [slice(None)] * values.ndim
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            np.maximum(out[tuple(behind)], along[tuple(ahead)], out=out[tuple(behind)])
            np.maximum(out[tuple(ahead)], along[tuple(behind)], out=out[tuple(ahead)])
    return out


def _first_maxima(values: np.ndarray, labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Linear index of each label's maximum among the voxels ``where``, the first in
    raster order where several tie.

    Not ``ndimage.maximum_position``: it breaks ties by numpy's unstable argsort,
    whose order depends on the CPU's vector instructions (the same block gave other
    seeds with and without AVX2), and it sorts the whole volume for a few labels.
    """
    at = np.flatnonzero(where)
    label = labels.ravel()[at]
    order = np.lexsort((-values.ravel()[at], label))  # stable: ties keep raster order
    first = np.ones(len(order), dtype=bool)
    first[1:] = label[order[1:]] != label[order[:-1]]
    return at[order[first]]


def _depth(inside: np.ndarray) -> np.ndarray:
    """Integers ordered exactly as the distance of each voxel to the boundary (ties
    included): peaks, their order and the flooding are the distance's, without floats.

    edt's squared distances where it applies (integers, exact in its float32 below 2**24,
    2.5 times faster than scipy, whose distances are their float64 square roots: distinct
    integers have distinct roots); else the ranks of scipy's distances (no voxel outside,
    where edt's are infinite, or far interiors). edt is given the mask as uint8, the same
    bytes: its distances are the same, in 60% of its time on a boolean array.
    """
    import edt

    if inside.ndim <= 3 and not inside.all():
        squared = edt.edtsq(inside.view(np.uint8), black_border=False, parallel=1)
        if squared.max(initial=0) < 2**24:
            return squared.astype(np.int32)
    from scipy import ndimage  # here: its import is a third of a worker's start-up

    distance = ndimage.distance_transform_edt(inside)
    return np.unique(distance, return_inverse=True)[1].reshape(inside.shape).astype(np.int32)
