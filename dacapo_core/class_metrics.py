"""Per-class scores of a class prediction against ground truth, block by block.

Everything counted comes from one contingency table: how many voxels carry each
(predicted value, true value) pair. Tables of blocks add up to exactly the table of
the whole volume, so a validation volume larger than memory is scored block by
block with the same numbers.

Conventions:

- ``overlap``: Dice (= voxel F1), IoU, precision and recall of one class from the
  true positive, false positive and false negative voxel counts. A class absent
  from both prediction and ground truth scores 1 on all four and is flagged
  ``empty``; absent from only one of them, every ratio with a zero numerator is 0.
- ``surface_distance``: the 95th percentile of the symmetric surface distance in
  world units (every surface voxel of the prediction to the nearest of the ground
  truth's, and back), each distance capped at ``cap`` (``SURFACE_DISTANCE_CAP`` by
  default), so a block needs only ``cap`` of context. A surface voxel is an object
  voxel with a face neighbour outside the object; the volume's edge is no surface
  (the object may go on beyond it). Both surfaces empty: 0; one empty: ``cap``.
  Distances are between voxel centres.
- ``detection``: instances matched one to one at IoU >= 0.5 (optimal matching, by
  scipy's linear_sum_assignment on the IoUs), then F1, precision and recall of the
  matched counts; label 0 is background on both sides. No instance on either side
  scores 1, flagged ``empty``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy.ndimage import binary_erosion, distance_transform_edt
from scipy.optimize import linear_sum_assignment

from . import arrays, evaluate

#: world units: surface distances beyond are counted as this
SURFACE_DISTANCE_CAP = 200.0

Contingency = Counter[tuple[int, int]]


def contingency(predicted: np.ndarray, true: np.ndarray) -> Contingency:
    """Voxels per (predicted value, true value) pair (``evaluate.contingency``)."""
    pairs, counts = evaluate.contingency(predicted, true)
    return Counter({(int(p), int(t)): int(n) for (p, t), n in zip(pairs, counts, strict=True)})


def blocks(roi: Roi, block: Coordinate) -> list[Roi]:
    """ROIs of ``block`` tiling ``roi`` from its begin, shrunk where it ends."""
    ranges = (range(b, e, s) for b, e, s in zip(roi.begin, roi.end, block, strict=True))
    starts = itertools.product(*ranges)
    return [Roi(start, block).intersect(roi) for start in starts]


def contingency_blockwise(predicted: Array, true: Array, block: Coordinate) -> Contingency:
    """The contingency table of the arrays' common ROI, summed over ``block``-sized
    blocks (world units): one block in memory at a time."""
    table: Contingency = Counter()
    for roi in blocks(predicted.roi.intersect(true.roi), block):
        table.update(contingency(arrays.read(predicted, roi), arrays.read(true, roi)))
    return table


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def overlap(table: Contingency, predicted: int = 1, true: int = 1) -> dict[str, float | bool]:
    """Voxel scores of the class that is value ``predicted`` in the prediction and
    ``true`` in the ground truth."""
    tp = table[(predicted, true)]
    fp = sum(n for (p, t), n in table.items() if p == predicted and t != true)
    fn = sum(n for (p, t), n in table.items() if t == true and p != predicted)
    if tp + fp + fn == 0:
        return {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "empty": True}
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "empty": False,
    }


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (outside the array: inside)."""
    return mask & ~binary_erosion(mask, border_value=1)


def _capped_distance(sources: np.ndarray, targets: np.ndarray, voxel_size, cap: float):
    """World distance from each ``sources`` voxel to the nearest ``targets`` voxel, capped."""
    if not targets.any():
        return np.full(int(sources.sum()), cap)
    distance = distance_transform_edt(~targets, sampling=tuple(voxel_size))
    return np.minimum(distance[sources], cap)


def surface_distances(
    predicted: np.ndarray,
    true: np.ndarray,
    voxel_size: Coordinate,
    cap: float = SURFACE_DISTANCE_CAP,
    inner: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """Capped distances of both surfaces' voxels (within ``inner``, default all) to
    the other surface."""
    inner = inner or (slice(None),) * predicted.ndim
    a, b = surface(predicted.astype(bool)), surface(true.astype(bool))
    keep_a, keep_b = np.zeros_like(a), np.zeros_like(b)
    keep_a[inner], keep_b[inner] = a[inner], b[inner]
    return np.concatenate(
        [_capped_distance(keep_a, b, voxel_size, cap), _capped_distance(keep_b, a, voxel_size, cap)]
    )


def percentile_95(distances: np.ndarray) -> float:
    """The 95th percentile of pooled capped distances (one surface empty: they are all
    the cap); 0 where both surfaces are empty (no distances)."""
    return float(np.percentile(distances, 95)) if len(distances) else 0.0


def surface_distance(
    predicted: np.ndarray,
    true: np.ndarray,
    voxel_size: Coordinate,
    cap: float = SURFACE_DISTANCE_CAP,
) -> float:
    """The capped 95th-percentile symmetric surface distance of two whole volumes."""
    return percentile_95(surface_distances(predicted, true, voxel_size, cap))


def surface_distance_blockwise(
    predicted: Array, true: Array, block: Coordinate, cap: float = SURFACE_DISTANCE_CAP
) -> float:
    """``surface_distance`` of two binary arrays over their common ROI, block by block:
    each block reads ``cap`` (and one voxel for the surface) around itself."""
    vs = predicted.voxel_size
    total = predicted.roi.intersect(true.roi)
    margin = Coordinate(math.ceil(cap / v) * v for v in vs) + vs
    pooled = []
    for roi in blocks(total, block):
        read = roi.grow(margin, margin).intersect(total)
        a, b = (arrays.read(x, read) != 0 for x in (predicted, true))
        pooled.append(surface_distances(a, b, vs, cap, ((roi - read.offset) / vs).to_slices()))
    return percentile_95(np.concatenate(pooled))


def detection(table: Contingency, threshold: float = 0.5) -> dict[str, float | int | bool]:
    """Instance scores from the contingency of predicted and true instance labels."""
    predicted = sorted({p for p, _ in table if p})
    true = sorted({t for _, t in table if t})
    if not predicted and not true:
        return {"f1": 1.0, "precision": 1.0, "recall": 1.0, "matches": 0, "empty": True}
    size_p = Counter()
    size_t = Counter()
    for (p, t), n in table.items():
        size_p[p] += n
        size_t[t] += n
    iou = np.zeros((len(predicted), len(true)))
    rows = {p: i for i, p in enumerate(predicted)}
    cols = {t: j for j, t in enumerate(true)}
    for (p, t), n in table.items():
        if p and t:
            iou[rows[p], cols[t]] = n / (size_p[p] + size_t[t] - n)
    r, c = linear_sum_assignment(iou, maximize=True)
    matches = int((iou[r, c] >= threshold).sum())
    return {
        "f1": _ratio(2 * matches, len(predicted) + len(true)),
        "precision": _ratio(matches, len(predicted)),
        "recall": _ratio(matches, len(true)),
        "matches": matches,
        "empty": False,
    }
