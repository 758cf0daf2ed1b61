"""Reading arrays: the direct zarr path gives what funlib's to_ndarray gives, and a
worker opens arrays with zarr alone as funlib would."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi

from dacapo_core import arrays
from dacapo_core.chunk_cache import ChunkCache


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


@pytest.mark.parametrize("roi", [Roi((8, 16, 24), (80, 96, 64)), Roi((0, 0, 0), (40, 40, 40))])
@pytest.mark.parametrize("cache", [None, (8, 8, 8), (200, 200, 200)])  # world units
def test_a_worker_opens_arrays_with_zarr_as_funlib_does(stored, roi, cache, tmp_path):
    for name, array in zip(("affs", "labels"), stored, strict=True):
        direct = arrays.open_zarr(f"{tmp_path}/a.zarr/{name}")
        direct = direct.cached(Coordinate(cache)) if cache else direct
        assert isinstance(direct.data, zarr.Array)  # not through funlib
        assert (direct.voxel_size, direct.offset, direct.roi) == (
            array.voxel_size,
            array.offset,
            array.roi,
        )
        assert direct.channel_dims == array.channel_dims
        for _ in range(2):  # the second read from the chunks the first kept
            found = arrays.read(direct, roi, 5)
            assert np.array_equal(found, array.to_ndarray(roi, fill_value=5))


def test_the_chunk_cache_reads_as_zarr_and_keeps_the_last_chunks_used(tmp_path):
    """Selections across chunk borders, channels chunked apart, clipped edge chunks; the
    budget is the chunks one window can span; what is kept is read from memory (a chunk
    rewritten meanwhile reads old there) and the least recently used is dropped."""
    rng = np.random.default_rng(1)
    data = zarr.open(f"{tmp_path}/c.zarr", mode="w", shape=(2, 9, 10), chunks=(1, 4, 4), dtype="f4")
    data[:] = rng.random(data.shape)
    cache = ChunkCache(data, window=(3, 4))  # 2 channel chunks x 2 x 2, however it lies
    assert cache.max_bytes == 8 * 4 * 4 * 4
    for _ in range(20):
        begin = [int(rng.integers(0, n)) for n in data.shape]
        end = [int(rng.integers(b + 1, n + 1)) for b, n in zip(begin, data.shape, strict=True)]
        selection = tuple(slice(b, e) for b, e in zip(begin, end, strict=True))
        assert np.array_equal(cache.read(selection), data[selection])
        assert cache._bytes <= cache.max_bytes
    single = zarr.open(f"{tmp_path}/d.zarr", mode="w", shape=(9, 10), chunks=(4, 4), dtype="f4")
    cache = ChunkCache(single, window=(1, 4))  # two chunks
    first, second = ((slice(0, 4), slice(4 * i, 4 * i + 4)) for i in range(2))
    below = (slice(4, 8), slice(0, 4))
    for selection in (first, second, first, below):  # the second chunk is dropped
        cache.read(selection)
    single[:] = -1
    assert np.all(cache.read(first) == 0) and np.all(cache.read(below) == 0)  # kept
    assert np.all(cache.read(second) == -1)  # dropped: decoded anew


def test_a_worker_writes_a_roi_as_funlib_does(stored, tmp_path):
    affs = arrays.open_zarr(f"{tmp_path}/a.zarr/affs", mode="r+")
    roi = Roi((16, 24, 32), (24, 16, 8))
    values = np.arange(3 * 3 * 2 * 1, dtype=np.float32).reshape(3, 3, 2, 1)
    affs[roi] = values
    assert np.array_equal(arrays.open_array(f"{tmp_path}/a.zarr/affs").to_ndarray(roi), values)
    with pytest.raises(IndexError):
        affs[roi.grow((16, 16, 16), (0, 0, 0))] = 0  # begins before the array


def test_an_array_without_funlibs_attributes_is_opened_by_funlib(tmp_path):
    zarr.open(f"{tmp_path}/b.zarr/plain", mode="w", shape=(4, 5), dtype=np.uint8)
    plain = arrays.open_zarr(f"{tmp_path}/b.zarr/plain")
    assert (plain.voxel_size, plain.offset) == (Coordinate(1, 1), Coordinate(0, 0))
    with pytest.raises(arrays.DataError, match="missing"):
        arrays.open_zarr(f"{tmp_path}/b.zarr/missing")


def test_segmentation_workers_start_without_funlib_persistence():
    """funlib.persistence imports dask, xarray and pandas: over a second per worker."""
    check = (
        "import sys, dacapo_core.segment.blockwise; "
        "print(sorted({'funlib.persistence', 'dask', 'xarray', 'pandas'} & set(sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stderr
