"""A synthetic EM-like dataset for the demo, fully determined by a seed.

Cells are a wobbly Voronoi tessellation; raw shows them with dark membranes,
per-cell brightness, intracellular texture and dark organelles, then blur and
noise. As in real projects, each region's raw is larger than its labelled
crop, and labels are 0 on membranes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from funlib.geometry import Coordinate
from scipy import ndimage
from scipy.spatial import cKDTree

from . import arrays

#: region -> (raw shape, labelled crop margin) in voxels
REGIONS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "train": ((72, 128, 128), (12, 16, 16)),
    "validate": ((56, 96, 96), (8, 12, 12)),
    "test": ((56, 112, 112), (8, 12, 12)),
}


def cells(shape: Sequence[int], diameter: float, rng: np.random.Generator) -> np.ndarray:
    """Dense cell labels (1..n): Voronoi cells of random seeds on a smoothly warped grid."""
    shape = tuple(shape)
    n = max(2, int(np.prod(shape) / (0.5 * diameter**3)))
    seeds = rng.uniform(0, 1, size=(n, len(shape))) * np.array(shape)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    warp = [
        ndimage.gaussian_filter(rng.normal(size=shape), diameter / 3) * diameter * 1.5
        for _ in shape
    ]
    points = grid.astype(np.float32) + np.stack(warp, axis=-1)
    _, nearest = cKDTree(seeds).query(points.reshape(-1, len(shape)))
    return (nearest.reshape(shape) + 1).astype(np.uint64)


def membranes(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Voxels at a label boundary (dilated by ``thickness - 1``)."""
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        diff = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        boundary[tuple(lo)] |= diff
        boundary[tuple(hi)] |= diff
    if thickness > 1:
        boundary = ndimage.binary_dilation(boundary, iterations=thickness - 1)
    return boundary


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """EM-like uint8 intensities for dense labels."""
    shape = labels.shape
    brightness = rng.uniform(0.55, 0.8, size=int(labels.max()) + 1)
    raw = brightness[labels]
    raw += 0.12 * ndimage.gaussian_filter(rng.normal(size=shape), 1.5) / 0.1
    organelles = ndimage.gaussian_filter(rng.normal(size=shape), 2.5)
    raw[organelles > np.quantile(organelles, 0.97)] -= 0.3
    raw[membranes(labels)] = 0.12
    raw = ndimage.gaussian_filter(raw, 1.0) + rng.normal(scale=0.06, size=shape)
    return (np.clip(raw, 0, 1) * 255).astype(np.uint8)


def make_demo(container: str, seed: int, voxel_size: Sequence[int] = (8, 8, 8)) -> None:
    """Write ``{region}/raw`` and ``{region}/labels`` for train, validate and test."""
    voxel_size = Coordinate(voxel_size)
    for index, (region, (shape, margin)) in enumerate(REGIONS.items()):
        rng = np.random.default_rng([seed, index])
        labels = cells(shape, diameter=24, rng=rng)
        raw = render(labels, rng)
        labels[membranes(labels)] = 0
        arrays.write_numpy(f"{container}/{region}/raw", raw, voxel_size)
        crop = tuple(slice(m, s - m) for s, m in zip(shape, margin, strict=True))
        offset = Coordinate(margin) * voxel_size
        arrays.write_numpy(f"{container}/{region}/labels", labels[crop], voxel_size, offset)


#: organelle demo: region -> (raw shape, labelled crop margin) in voxels
ORGANELLE_REGIONS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "train": ((48, 96, 96), (6, 8, 8)),
    "extra": ((40, 64, 64), (6, 8, 8)),
    "validate": ((40, 72, 72), (6, 8, 8)),
    "test": ((40, 80, 80), (0, 0, 0)),
}
#: semantic ids of the organelle demo's ``labels``
MITO, ER, VESICLE = 1, 2, 3


def organelles(shape: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(semantic labels, mitochondria instances) of a cell-like volume: ellipsoidal
    mitochondria (instances 1..n), thin ER tubes and small vesicles."""
    shape = tuple(shape)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    labels = np.zeros(shape, np.uint64)
    mito = np.zeros(shape, np.uint64)
    count = max(2, int(np.prod(shape) / 9000))
    for k in range(1, count + 1):
        centre = rng.uniform(0, 1, 3) * shape
        radii = rng.uniform(3, 7, 3) * np.array([1.0, 1.6, 1.6])
        inside = (((grid - centre) / radii) ** 2).sum(-1) <= 1
        inside &= mito == 0
        mito[inside], labels[inside] = k, MITO
    er = np.abs(ndimage.gaussian_filter(rng.normal(size=shape), 3.0))
    tubes = er < np.quantile(er, 0.05)
    tubes &= labels == 0
    labels[tubes] = ER
    for _ in range(max(2, int(np.prod(shape) / 3000))):
        centre = rng.uniform(0, 1, 3) * shape
        inside = ((grid - centre) ** 2).sum(-1) <= rng.uniform(1.5, 2.5) ** 2
        labels[inside & (labels == 0)] = VESICLE
    return labels, mito


def render_organelles(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """EM-like uint8 intensities: grey cytoplasm, dark textured mitochondria, dark ER,
    vesicles with a dark rim and a bright lumen."""
    shape = labels.shape
    raw = 0.65 + 0.08 * ndimage.gaussian_filter(rng.normal(size=shape), 2.0) / 0.05
    stripes = 0.5 + 0.5 * np.sin(np.arange(shape[-1]) * 1.3)[None, None, :]
    mito = labels == MITO
    raw[mito] = 0.35 + 0.15 * np.broadcast_to(stripes, shape)[mito]
    raw[labels == ER] = 0.25
    vesicle = labels == VESICLE
    raw[vesicle] = 0.9
    raw[membranes(vesicle.astype(np.uint8)) & ~vesicle] = 0.2
    raw[membranes(mito.astype(np.uint8)) & ~mito] = 0.15
    raw = ndimage.gaussian_filter(raw, 0.8) + rng.normal(scale=0.05, size=shape)
    return (np.clip(raw, 0, 1) * 255).astype(np.uint8)


def make_organelle_demo(container: str, seed: int, voxel_size: Sequence[int] = (8, 8, 8)) -> None:
    """Write a container ``{region}.zarr`` in the folder ``container`` for each of
    ``ORGANELLE_REGIONS``, with ``raw``, ``labels`` (1 mito, 2 ER, 3 vesicle) and
    ``mito`` (mitochondria instances)."""
    voxel_size = Coordinate(voxel_size)
    for index, (region, (shape, margin)) in enumerate(ORGANELLE_REGIONS.items()):
        rng = np.random.default_rng([seed, 17, index])
        labels, mito = organelles(shape, rng)
        zarr_path = f"{container}/{region}.zarr"
        arrays.write_numpy(f"{zarr_path}/raw", render_organelles(labels, rng), voxel_size)
        crop = tuple(slice(m, s - m) for s, m in zip(shape, margin, strict=True))
        offset = Coordinate(margin) * voxel_size
        for name, data in (("labels", labels), ("mito", mito)):
            arrays.write_numpy(f"{zarr_path}/{name}", data[crop], voxel_size, offset)
