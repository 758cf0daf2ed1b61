"""The compiled flooding is scikit-image's watershed voxel for voxel, ties included."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed

from dacapo_core.segment import flood as flood_module
from dacapo_core.segment.flood import flood
from dacapo_core.segment.fragments import _depth


def _distance_case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels and markers as the seeded watershed makes them: few levels, a large
    boundary plateau on top, markers at the distance's local maxima (plateaus of them)."""
    rng = np.random.default_rng(seed)
    inside = ndimage.gaussian_filter(rng.uniform(size=shape), 2) > 0.5
    depth = _depth(inside)
    peaks = (ndimage.maximum_filter(depth, size=3) == depth) & inside
    return depth.max() - depth, ndimage.label(peaks)[0]


def _random_case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three levels only (ties everywhere), markers of equal levels next to each other."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 3, shape)
    markers = np.where(rng.uniform(size=shape) < 0.02, rng.integers(1, 9, shape), 0)
    return levels, markers.astype(np.int32)


CASES = {
    "3D distance": _distance_case((40, 37, 45), 1),
    "2D distance": _distance_case((120, 97), 2),
    "3D random ties": _random_case((20, 21, 22), 3),
    "2D random ties": _random_case((60, 50), 4),
}


def test_the_kernel_is_compiled_in_this_install():
    """make venv builds it (a C compiler is there); else every test below would only
    compare scikit-image with itself."""
    assert flood_module._compiled() is not None


@pytest.mark.parametrize("case", CASES)
def test_flood_is_scikit_images_watershed(case):
    levels, markers = CASES[case]
    if "distance" in case:  # seeds lie inside: the boundary is flooded by placeholders
        assert not markers[levels == levels.max()].any()
    expected = watershed(levels, markers)
    found = flood(levels, markers)
    assert found.dtype == expected.dtype and np.array_equal(found, expected)
    assert len(np.unique(found)) == len(np.unique(markers[markers > 0]))


def test_a_marker_on_the_top_level_floods_as_scikit_image():
    """Markers tied with the top level leave the heap by its layout: no placeholders."""
    levels, markers = _random_case((12, 13, 14), 5)
    assert markers[levels == levels.max()].any()
    assert np.array_equal(flood(levels, markers), watershed(levels, markers))


def test_no_marker_floods_nothing():
    levels = np.arange(24).reshape(2, 3, 4)
    assert not flood(levels, np.zeros(levels.shape, np.int32)).any()
    assert flood(levels[:0], np.zeros((0, 3, 4), np.int32)).shape == (0, 3, 4)
