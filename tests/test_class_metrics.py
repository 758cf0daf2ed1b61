"""Per-class metrics against scipy / scikit-image / hand-made cases (empty classes
included), and block-by-block counts equal to the whole volume's."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate
from scipy import ndimage
from scipy.spatial import KDTree
from scipy.spatial.distance import dice, jaccard
from skimage.measure import label

from dacapo_core import arrays
from dacapo_core.class_metrics import (
    contingency,
    contingency_blockwise,
    detection,
    overlap,
    surface,
    surface_distance,
    surface_distance_blockwise,
)

VS = Coordinate(8, 4, 4)


def blobs(seed: int, shape=(20, 30, 28), level=0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 1.5) > level


def test_voxel_scores_match_scipy_and_the_counts():
    predicted, true = blobs(0), blobs(1)
    scores = overlap(contingency(predicted.astype(np.uint8), true.astype(np.uint8)))
    assert scores["dice"] == pytest.approx(1 - dice(predicted.ravel(), true.ravel()))
    assert scores["iou"] == pytest.approx(1 - jaccard(predicted.ravel(), true.ravel()))
    both = (predicted & true).sum()
    assert scores["precision"] == pytest.approx(both / predicted.sum())
    assert scores["recall"] == pytest.approx(both / true.sum())
    assert not scores["empty"] and 0 < scores["dice"] < 1


def test_empty_classes_score_one_when_absent_from_both_and_zero_from_one():
    nothing, something = np.zeros((4, 4), np.uint8), np.eye(4, dtype=np.uint8)
    absent = overlap(contingency(nothing, nothing))
    assert absent == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "empty": True}
    for predicted, true in ((nothing, something), (something, nothing)):
        scores = overlap(contingency(predicted, true))
        assert not scores["empty"] and all(scores[k] == 0 for k in ("dice", "iou", "recall"))
        assert scores["precision"] == 0
    # argmax labels: class 2 predicted where it is class 1, class 3 nowhere
    labels = overlap(contingency(np.array([2, 2, 0]), np.array([1, 2, 0])), 2, 2)
    assert labels["precision"] == 0.5 and labels["recall"] == 1.0
    assert overlap(contingency(np.array([2, 2, 0]), np.array([1, 2, 0])), 3, 3)["empty"]


def test_blockwise_counts_add_up_to_the_whole_volume(tmp_path):
    predicted = label(blobs(2)).astype(np.uint64)
    true = label(blobs(3)).astype(np.uint64)
    a = arrays.write_numpy(f"{tmp_path}/x.zarr/p", predicted, VS, Coordinate(8, -4, 12))
    b = arrays.write_numpy(f"{tmp_path}/x.zarr/t", true, VS, Coordinate(8, -4, 12))
    block = Coordinate(7, 11, 9) * VS  # 3 x 3 x 4 blocks, shrunk at the end
    table = contingency_blockwise(a, b, block)
    assert table == contingency(predicted, true)
    assert detection(table) == detection(contingency(predicted, true))


def brute_force(predicted, true, voxel_size, cap) -> float:
    """KD-tree nearest surface points in world units, capped, pooled both ways."""
    a = np.argwhere(surface(predicted)) * np.array(voxel_size)
    b = np.argwhere(surface(true)) * np.array(voxel_size)
    there = np.minimum(KDTree(b).query(a)[0], cap)
    back = np.minimum(KDTree(a).query(b)[0], cap)
    return float(np.percentile(np.concatenate([there, back]), 95))


def test_surface_distance_is_the_brute_force_one_whole_and_blockwise(tmp_path):
    predicted, true = blobs(4, level=0.15), blobs(4, level=0.05)
    cap = 30.0
    expected = brute_force(predicted, true, VS, cap)
    assert 0 < expected < cap
    assert surface_distance(predicted, true, VS, cap) == pytest.approx(expected)
    a = arrays.write_numpy(f"{tmp_path}/s.zarr/p", predicted.astype(np.uint8), VS)
    b = arrays.write_numpy(f"{tmp_path}/s.zarr/t", true.astype(np.uint8), VS)
    block = Coordinate(6, 8, 10) * VS
    assert surface_distance_blockwise(a, b, block, cap) == pytest.approx(expected, abs=1e-9)


def test_surface_distance_of_shifted_slabs_and_empty_classes():
    true = np.zeros((12, 5, 5), bool)
    true[2:6] = True  # surfaces at z = 2 and 5 (the array's sides are no surface)
    predicted = np.roll(true, 3, axis=0)  # surfaces at z = 5 and 8: half 0, half 3 voxels
    assert surface_distance(predicted, true, VS, cap=100) == 24
    assert surface_distance(predicted, true, VS, cap=10) == 10
    empty = np.zeros_like(true)
    assert surface_distance(empty, empty, VS) == 0
    assert surface_distance(empty, true, VS, cap=50) == 50


def test_detection_matches_one_to_one_at_iou_one_half():
    true = np.zeros((1, 20), np.uint8)
    true[0, 0:4], true[0, 6:11], true[0, 14:18] = 1, 2, 3
    predicted = np.zeros_like(true)
    predicted[0, 0:4] = 7  # true 1 exactly
    predicted[0, 6:8] = 8  # IoU 2/5 with true 2: no match
    predicted[0, 8:11] = 9  # IoU 3/5 with true 2: a match
    predicted[0, 19] = 5  # nothing there
    scores = detection(contingency(predicted, true))
    assert scores["matches"] == 2
    assert scores["precision"] == 0.5 and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 2 / (4 + 3))
    nothing = np.zeros_like(true)
    assert detection(contingency(nothing, nothing))["empty"]
    assert detection(contingency(nothing, true))["f1"] == 0
