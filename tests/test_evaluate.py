"""Metrics: conventions (split vs merge, bits, background ignored) checked on cases."""

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error, variation_of_information

from dacapo_core.evaluate import Overlap, evaluate
from dacapo_core.segment.relabel import relabel


@pytest.fixture
def gt():
    labels = np.zeros((4, 8, 8), np.uint64)
    labels[:, :4] = 1
    labels[:, 4:] = 2
    labels[:, 3:5] = 0  # a boundary, ignored
    return labels


def test_perfect_segmentation_scores_zero(gt):
    scores = evaluate(gt.copy(), gt)
    assert scores["voi"] == pytest.approx(0) and scores["arand"] == pytest.approx(0)
    assert scores["n_segments"] == 2


def test_merging_everything_is_a_merge_error_of_one_bit(gt):
    scores = evaluate(np.ones_like(gt), gt)
    assert scores["voi_split"] == pytest.approx(0)
    assert scores["voi_merge"] == pytest.approx(1.0)  # two equal objects -> log2(2)


def test_splitting_is_a_split_error(gt):
    seg = gt.copy()
    seg[:2] += 10
    scores = evaluate(seg, gt)
    assert scores["voi_merge"] == pytest.approx(0)
    assert scores["voi_split"] == pytest.approx(1.0)


def test_background_in_gt_is_ignored(gt):
    seg = gt.copy()
    seg[gt == 0] = 7  # whatever sits on the boundary does not count
    assert evaluate(seg, gt)["voi"] == pytest.approx(0)


def test_numbers_agree_with_scikit_image_on_random_labels():
    rng = np.random.default_rng(0)
    gt = rng.integers(1, 5, size=(6, 10, 10)).astype(np.uint64)
    seg = rng.integers(1, 4, size=gt.shape).astype(np.uint64)
    scores = evaluate(seg, gt)
    split, merge = variation_of_information(gt, seg)
    assert scores["voi_split"] == pytest.approx(split)
    assert scores["voi_merge"] == pytest.approx(merge)
    assert scores["arand"] == pytest.approx(adapted_rand_error(gt, seg)[0])


def test_a_relabelled_overlap_scores_as_the_relabelled_segmentation():
    """The sweep's shortcut: merging fragments by a lookup table, on the fragments'
    overlap with the GT, scores exactly as relabelling the voxels and counting again."""
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 6, size=(6, 12, 12)).astype(np.uint64)
    frags = rng.integers(0, 40, size=gt.shape).astype(np.uint64)
    nodes = np.unique(frags[frags != 0])
    segments = np.minimum(nodes, rng.integers(1, 9, size=len(nodes)).astype(np.uint64))
    whole = Overlap.of(relabel(frags, nodes, segments), gt).scores()
    swept = Overlap.of(frags, gt).relabelled(nodes, segments).scores()
    assert swept["n_segments"] == whole["n_segments"] > 1
    for key in ("voi_split", "voi_merge", "voi", "arand"):
        assert swept[key] == pytest.approx(whole[key], rel=1e-12, abs=1e-12)
    assert swept["voi"] != pytest.approx(Overlap.of(frags, gt).scores()["voi"])  # it merged


def test_nothing_labelled_scores_zero():
    scores = evaluate(np.ones((2, 3, 3), np.uint64), np.zeros((2, 3, 3), np.uint64))
    assert scores == {"voi_split": 0, "voi_merge": 0, "voi": 0, "arand": 0, "n_segments": 0}
