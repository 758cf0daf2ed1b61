"""The fragment stage's block rows and faces, joined by the edge stage, are the whole
volume's region graph: graph-level, no daisy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dacapo_core.segment.faces import block_graph, face_graph, faces_in, faces_path, save_faces
from dacapo_core.segment.graph import Graph, edges


@pytest.mark.parametrize("dims", [3, 2])
def test_block_rows_and_faces_add_up_to_the_whole_volume_graph(tmp_path, dims):
    """Blocks of two "superblocks" (x < 8 and beyond): each joins its own blocks' faces,
    the planes behind its first blocks read from the volume, as from the array."""
    rng = np.random.default_rng(dims)
    shape, block = (10, 9, 11), (4, 4, 4)  # the last blocks are cut by the volume
    frags = rng.integers(0, 12, size=shape).astype(np.uint64)  # 0: no fragment
    affs = rng.random((dims, *shape)).astype(np.float32)
    parts = []
    for start in itertools.product(*(range(0, s, b) for s, b in zip(shape, block, strict=True))):
        index = tuple(s // b for s, b in zip(start, block, strict=True))
        own = tuple(slice(s, s + b) for s, b in zip(start, block, strict=True))
        parts.append(block_graph(frags[own], affs[(slice(None), *own)], dims))
        path = faces_path(tmp_path / f"sb{index[2] >= 2}", index)
        save_faces(path, frags[own], affs[(slice(None), *own)], dims)

    def plane_behind(index: tuple[int, ...], axis: int) -> np.ndarray:
        at: list[slice | int] = [
            slice(i * b, (i + 1) * b) for i, b in zip(index, block, strict=True)
        ]
        at[axis] = index[axis] * block[axis] - 1
        return frags[tuple(at)]

    superblocks = [faces_in(tmp_path / f"sb{far}") for far in (False, True)]
    assert sum(map(len, superblocks)) == len(parts)
    joined = Graph.combine([*parts, *(face_graph(sb, plane_behind) for sb in superblocks)])
    pad = [(1, 0)] * 3
    whole_edges, whole_stats = edges(np.pad(frags, pad), np.pad(affs, [(0, 0), *pad]), dims)
    nodes, sizes = np.unique(frags[frags > 0], return_counts=True)
    assert np.array_equal(joined.nodes, nodes) and np.array_equal(joined.sizes, sizes)
    assert np.array_equal(joined.edges, whole_edges)
    assert np.array_equal(joined.stats, whole_stats)
