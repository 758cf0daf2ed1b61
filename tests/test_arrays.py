"""Reading arrays: the direct zarr path gives what funlib's to_ndarray gives."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from dacapo_core import arrays


@pytest.fixture
def stored(tmp_path) -> list:
    """A float array with channels (chunks smaller than blocks) and a label array."""
    rng = np.random.default_rng(0)
    roi, vs = Roi((8, 16, 24), (80, 96, 64)), Coordinate(8, 8, 8)
    path = f"{tmp_path}/a.zarr/affs"
    affs = arrays.prepare_array(path, roi, vs, np.float32, 3, Coordinate(4, 4, 4))
    affs[roi] = rng.random((3, 10, 12, 8)).astype(np.float32)
    labels = rng.integers(0, 9, (10, 12, 8)).astype(np.uint64)
    arrays.write_numpy(f"{tmp_path}/a.zarr/labels", labels, vs, roi.offset)
    return [arrays.open_array(f"{tmp_path}/a.zarr/{name}") for name in ("affs", "labels")]


@pytest.mark.parametrize(
    "roi",
    [
        Roi((8, 16, 24), (80, 96, 64)),  # all of it
        Roi((16, 24, 32), (24, 16, 8)),  # inside, not chunk-aligned
        Roi((0, 0, 0), (40, 40, 40)),  # partly outside: filled
        Roi((200, 200, 200), (8, 8, 8)),  # all outside
    ],
)
@pytest.mark.parametrize("fill", [0, 5])
def test_read_equals_funlibs_to_ndarray(stored, roi, fill):
    for array in stored:
        expected = array.to_ndarray(roi, fill_value=fill)
        found = arrays.read(array, roi, fill)
        assert found.dtype == expected.dtype and np.array_equal(found, expected)
