"""Stage 2 split at block faces, so the volume is read once for fragments and edges.

The fragment stage, holding a block's final fragments and its affinities, writes
the block's rows (its fragments' sizes, the edges between its own voxels) and its
faces: the first and last voxel plane along each connected axis, with the
affinities of the first one. The edge stage then joins each block's first plane
with the last plane of the block behind it into the edges across their face.
Rows add up exactly (see ``graph.QUANTUM``), so the graph is the whole volume's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import arrays
from ..superblocks import Superblocks
from .graph import Graph, edge_rows, voxel_pairs

#: the folder, in a superblock's scratch, of its blocks' face planes: per block (named by
#: its index) ``low{d}`` / ``high{d}``, the fragments of its first / last plane along
#: axis d, and ``affs{d}``, the affinities of the first
FACES = "faces"


def faces_path(blocks: Path, index: tuple[int, ...]) -> Path:
    """The faces file of block ``index`` in the scratch folder ``blocks``."""
    return blocks / FACES / f"{Superblocks.name(index)}.npz"


def faces_in(blocks: Path) -> dict[tuple[int, ...], Path]:
    """Block index -> its faces file, for the blocks that wrote theirs into ``blocks``."""
    found = (blocks / FACES).glob("*.npz")
    return {Superblocks.parse(p.name.removesuffix(".npz")): p for p in found}


def _along(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    return tuple(part if i == axis else slice(None) for i in range(ndim))


def block_graph(frags: np.ndarray, affs: np.ndarray, dims: int) -> Graph:
    """A block's own rows: its fragments' sizes, and the edges between its voxels along
    the trailing ``dims`` axes (``affs``: their channels over the block)."""
    first = frags.ndim - dims
    pairs, values = zip(
        *(
            voxel_pairs(
                frags[_along(frags.ndim, d, slice(1, None))],
                frags[_along(frags.ndim, d, slice(None, -1))],
                affs[d - first][_along(frags.ndim, d, slice(1, None))],
            )
            for d in range(first, frags.ndim)
        ),
        strict=True,
    )
    nodes, sizes = np.unique(frags, return_counts=True)
    inside = nodes > 0
    edges, stats = edge_rows(np.concatenate(pairs), np.concatenate(values))
    return Graph(nodes[inside], sizes[inside], edges, stats)


def save_faces(path: Path, frags: np.ndarray, affs: np.ndarray, dims: int) -> None:
    """The block's planes that its face edges need (see FACES), written whole, then renamed."""
    first = frags.ndim - dims
    planes = {}
    for d in range(first, frags.ndim):
        planes[f"low{d}"] = np.take(frags, 0, axis=d)
        planes[f"affs{d}"] = np.take(affs[d - first], 0, axis=d)
        planes[f"high{d}"] = np.take(frags, -1, axis=d)
    arrays.write_npz(path, **planes)


def face_graph(
    faces: dict[tuple[int, ...], Path], plane_behind: Callable[[tuple[int, ...], int], np.ndarray]
) -> Graph:
    """The edges across the faces behind the blocks ``faces`` holds (block index -> its
    faces file). The last plane of the block behind along axis d is read from its
    faces file where ``faces`` has it, else by ``plane_behind(index, d)`` (a block of
    another job, written to the fragments array); none before the volume starts."""
    pairs, values = [np.zeros((0, 2), np.uint64)], [np.zeros(0, np.float32)]
    for index, path in faces.items():
        with np.load(path) as planes:
            for d in (int(key[3:]) for key in planes.files if key.startswith("low")):
                if index[d] == 0:
                    continue
                behind = tuple(i - (a == d) for a, i in enumerate(index))
                if behind in faces:
                    with np.load(faces[behind]) as other:
                        high = other[f"high{d}"]
                else:
                    high = plane_behind(index, d)
                found = voxel_pairs(planes[f"low{d}"], high, planes[f"affs{d}"])
                pairs.append(found[0])
                values.append(found[1])
    edges, stats = edge_rows(np.concatenate(pairs), np.concatenate(values))
    return Graph.of_edges(edges, stats)
