"""Decoded chunks of a zarr array kept between one worker's reads.

A fragment block reads its affinities with context, 16 voxels around by default, so
where chunks are the size of blocks its window spans three chunks per axis: read by
zarr alone, every chunk is fetched and decoded by each of the 27 blocks around it
(93 ms of a 64^3 block's 350 ms, issue 19). Daisy hands a worker its blocks in raster
order, so the chunks a block shares with the one before it are the ones used last:
kept, least recently used dropped first, a block decodes about 9 chunks instead of
27 (4 instead of 16 in a 256^3 volume of 64^3 blocks, where edges cut windows short).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import zarr


class ChunkCache:
    """Read-only selections of ``data`` assembled from its decoded chunks, keeping the
    most recently used: as many as one read of ``window`` voxels (the trailing axes;
    all channels) can span, so memory follows the block and chunk shapes, not the
    volume (81 MiB for 64^3 blocks with the default context and 64^3 chunks of three
    float32 channels). For arrays nobody writes meanwhile."""

    def __init__(self, data: zarr.Array, window: Sequence[int]) -> None:
        self.data = data
        lead = data.ndim - len(window)
        spans = [-(-n // c) for n, c in zip(data.shape[:lead], data.chunks[:lead], strict=True)]
        for w, n, c in zip(window, data.shape[lead:], data.chunks[lead:], strict=True):
            spans.append(min(-(-(w - 1) // c) + 1, -(-n // c)))  # however the window lies
        self.max_bytes = math.prod(spans) * math.prod(data.chunks) * data.dtype.itemsize
        self._chunks: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._bytes = 0

    def read(self, selection: tuple[slice, ...]) -> np.ndarray:
        """``data[selection]`` for unit-step slices inside the array, one per axis."""
        begin = [s.start for s in selection]
        end = [s.stop for s in selection]
        out = np.empty([e - b for b, e in zip(begin, end, strict=True)], self.data.dtype)
        spans = [
            range(b // c, (e - 1) // c + 1)
            for b, e, c in zip(begin, end, self.data.chunks, strict=True)
        ]
        for index in itertools.product(*spans):
            chunk = self._chunk(index)
            corner = [i * c for i, c in zip(index, self.data.chunks, strict=True)]
            low = [max(b, c) for b, c in zip(begin, corner, strict=True)]
            high = [min(e, c + n) for e, c, n in zip(end, corner, chunk.shape, strict=True)]
            into = tuple(slice(lo - b, hi - b) for lo, hi, b in zip(low, high, begin, strict=True))
            part = tuple(slice(lo - c, hi - c) for lo, hi, c in zip(low, high, corner, strict=True))
            out[into] = chunk[part]
        return out

    def _chunk(self, index: tuple[int, ...]) -> np.ndarray:
        """Chunk ``index`` decoded (clipped where it overhangs the array), from the cache
        or from zarr; the least recently used go while the cache holds too much."""
        chunk = self._chunks.get(index)
        if chunk is not None:
            self._chunks.move_to_end(index)
            return chunk
        chunk = self.data.get_block_selection(index)
        self._chunks[index] = chunk
        self._bytes += chunk.nbytes
        while self._bytes > self.max_bytes and self._chunks:
            self._bytes -= self._chunks.popitem(last=False)[1].nbytes
        return chunk
