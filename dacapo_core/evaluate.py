"""Segmentation scores against ground truth, with their conventions stated.

- VOI split = H(segmentation | gt), VOI merge = H(gt | segmentation), in bits;
  ``voi`` is their sum. Merging everything gives a high merge term, so ``voi``
  cannot be won by one big segment.
- ``arand``: adapted Rand error (1 - F-score of the Rand index).
- GT label 0 (background / boundary) is ignored in every score.

The numbers come from scikit-image's implementations.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import adapted_rand_error, variation_of_information


def evaluate(segmentation: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Scores of ``segmentation`` against ``gt`` (same shape); directions in config.CRITERIA."""
    if segmentation.shape != gt.shape:
        raise ValueError(f"shapes differ: segmentation {segmentation.shape}, gt {gt.shape}")
    labelled = gt != 0
    seg = segmentation[labelled]
    truth = gt[labelled]
    split, merge = variation_of_information(truth, seg)
    arand = adapted_rand_error(truth, seg)[0] if truth.size else 0.0
    scores = {
        "voi_split": float(split),
        "voi_merge": float(merge),
        "voi": float(split + merge),
        "arand": float(arand),
        "n_segments": int(len(np.unique(seg[seg != 0]))),
    }
    return scores
