"""Segmentation scores against ground truth, with their conventions stated.

- VOI split = H(segmentation | gt), VOI merge = H(gt | segmentation), in bits;
  ``voi`` is their sum. Merging everything gives a high merge term, so ``voi``
  cannot be won by one big segment.
- ``arand``: adapted Rand error (1 - F-score of the Rand index).
- GT label 0 (background / boundary) is ignored in every score.

Every score comes from one contingency table (``Overlap``: voxels per pair of GT
label and segment, counted by ``contingency``, which the class metrics count with
too), through scikit-image's implementations. Merging segments only
sums the table's columns, so a validation sweep counts the voxels once, for the
fragments, and scores each threshold from its lookup table alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from skimage.metrics import adapted_rand_error, variation_of_information

from .segment.graph import unique_pairs

#: scikit-image checks the images' shapes even when it is given a table
_NO_IMAGE = np.zeros(0)


def contingency(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxels per pair of values: the pairs (a's value, b's value), sorted, and their
    counts; tables of blocks add up to the whole volume's."""
    pairs, inverse = unique_pairs(np.stack([a.ravel(), b.ravel()], axis=1).astype(np.uint64))
    return pairs, np.bincount(inverse, minlength=len(pairs))


@dataclass(frozen=True)
class Overlap:
    """Voxels per (GT label, segment) pair where the GT is labelled: rows are GT labels,
    columns the segments ``ids`` (sorted, 0 for unsegmented voxels)."""

    ids: np.ndarray
    table: sparse.csr_array

    @classmethod
    def of(cls, segmentation: np.ndarray, gt: np.ndarray) -> Overlap:
        if segmentation.shape != gt.shape:
            raise ValueError(f"shapes differ: segmentation {segmentation.shape}, gt {gt.shape}")
        pairs, counts = contingency(gt, segmentation)
        labelled = pairs[:, 0] != 0
        rows = np.unique(pairs[labelled, 0], return_inverse=True)[1]
        ids, columns = np.unique(pairs[labelled, 1], return_inverse=True)
        shape = (rows.max(initial=-1) + 1, len(ids))
        table = sparse.csr_array((counts[labelled].astype(float), (rows, columns)), shape=shape)
        return cls(ids, table)

    def relabelled(self, nodes: np.ndarray, segments: np.ndarray) -> Overlap:
        """The overlap after mapping segment ids ``nodes`` (sorted) to ``segments``, as
        ``segment.relabel`` maps them (0 stays 0): columns of a segment summed."""
        inside = self.ids != 0
        mapped = np.zeros_like(self.ids)
        mapped[inside] = segments[np.searchsorted(nodes, self.ids[inside])]
        ids, columns = np.unique(mapped, return_inverse=True)
        merge = sparse.csr_array(
            (np.ones(len(columns)), (np.arange(len(columns)), columns)),
            shape=(len(self.ids), len(ids)),
        )
        return Overlap(ids, (self.table @ merge).tocsr())

    def scores(self) -> dict[str, float]:
        """The scores; directions in config.CRITERIA."""
        total = self.table.sum()
        if not total:  # nothing labelled: nothing wrong
            split = merge = arand = 0.0
        else:
            split, merge = variation_of_information(_NO_IMAGE, _NO_IMAGE, table=self.table / total)
            arand = adapted_rand_error(table=self.table)[0]
        return {
            "voi_split": float(split),
            "voi_merge": float(merge),
            "voi": float(split + merge),
            "arand": float(arand),
            "n_segments": int(np.count_nonzero(self.ids)),
        }


def evaluate(segmentation: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Scores of ``segmentation`` against ``gt`` (same shape); directions in config.CRITERIA."""
    return Overlap.of(segmentation, gt).scores()
