"""The octree agglomeration as jobs on files: each chunk job reads shards, writes one.

``hierarchy`` decides; this module gives each decision its inputs and output
on disk, so that every chunk of every level can be its own job (a cluster job,
or one step of a sequential run) holding only what it reads:

- leaf rows: ``{rows}/{z}_{y}_{x}.sqlite``, one shard per leaf chunk (the region
  graph rows its blocks wrote);
- ``{work}/level{L}/{z}_{y}_{x}.sqlite``: what chunk (z, y, x) of level L decided,
  its residual and merges (level 0 chunks are the leaves; each level halves the
  grid, up to the root of one chunk);
- ``{work}/labels/level{L}/{z}_{y}_{x}.npz``: the segment ids, at one threshold,
  of the regions that chunk's inputs hold; a leaf's is its relabel job's lookup
  table (the fragments occurring in it, never the whole table).

Up the tree a chunk job reads its children's shards and, of its neighbours at
its level, only which regions they hold; down the tree a label job reads its
own shard and its parent's labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi

from .. import arrays
from ..superblocks import Superblocks
from . import shard
from .graph import Graph
from .hierarchy import Chunk, ChunkResult, chunk_labels, chunk_step, neighbours, parent

if TYPE_CHECKING:
    from ..stages import AgglomerateStage


@dataclass(frozen=True)
class Octree:
    """Where an octree agglomeration's files are, over a grid of leaf chunks."""

    rows: Path
    work: Path
    grid: Chunk

    def grids(self) -> list[Chunk]:
        """Chunks per axis at each level, from the leaves to the root's (1, ..)."""
        grids = [self.grid]
        while any(g > 1 for g in grids[-1]):
            grids.append(tuple(-(-g // 2) for g in grids[-1]))
        return grids

    def chunks(self, level: int) -> Iterator[Chunk]:
        yield from np.ndindex(*self.grids()[level])

    def upwards(self) -> list[tuple[int, Chunk]]:
        """Every (level, chunk), children before parents."""
        return [(level, c) for level in range(len(self.grids())) for c in self.chunks(level)]

    def inputs(self, level: int, chunk: Chunk) -> list[Path]:
        """A leaf's rows, or the results of the chunk's children one level down."""
        if level == 0:
            return [self.rows / f"{Superblocks.name(chunk)}.sqlite"]
        below = self.grids()[level - 1]
        children = (
            tuple(2 * c + o for c, o in zip(chunk, offset, strict=True))
            for offset in np.ndindex(*(2,) * len(chunk))
        )
        return [
            self.result(level - 1, child)
            for child in children
            if all(c < g for c, g in zip(child, below, strict=True))
        ]

    def result(self, level: int, chunk: Chunk) -> Path:
        return self.work / f"level{level}" / f"{Superblocks.name(chunk)}.sqlite"

    def labels(self, level: int, chunk: Chunk) -> Path:
        return self.work / "labels" / f"level{level}" / f"{Superblocks.name(chunk)}.npz"

    def around(self, level: int, chunk: Chunk) -> list[Path]:
        """The inputs of the chunk's neighbours at its level."""
        grid = self.grids()[level]
        inside = (
            n for n in neighbours(chunk) if all(0 <= c < g for c, g in zip(n, grid, strict=True))
        )
        return [path for n in inside for path in self.inputs(level, n)]


def regions(paths: list[Path]) -> np.ndarray:
    """Every region the shards at ``paths`` mention."""
    return np.unique(np.concatenate([np.zeros(0, np.uint64), *map(shard.occurrences, paths)]))


def agglomerate_chunk(
    tree: Octree,
    level: int,
    chunk: Chunk,
    roi: Roi,
    voxel_size: Coordinate,
    stage: AgglomerateStage,
) -> ChunkResult:
    """One chunk's job up the tree: its inputs combined, its neighbours' regions
    frozen, its residual and merges written as its shard (replacing a killed
    attempt's). Merges at or above the stage's threshold are not made (they do not
    change its segmentation). ``roi``/``voxel_size``: the fragment volume's."""
    graph = Graph.combine([shard.read(p) for p in tree.inputs(level, chunk)])
    around = [shard.occurrences(p) for p in tree.around(level, chunk)]
    result = chunk_step(graph, around, stage.merge_function, stage.min_size, stage.threshold)
    out = tree.result(level, chunk)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"level": level, "chunk": list(chunk), **stage.model_dump(mode="json")}
    shard.write(out, result.residual, roi, voxel_size, result.merges, meta, replace=True)
    return result


def label_chunk(tree: Octree, level: int, chunk: Chunk, threshold: float) -> None:
    """One chunk's job down the tree: segment ids of its regions at ``threshold``,
    from its shard and its parent's labels (none at the root)."""
    stored = tree.result(level, chunk)
    result = ChunkResult(
        regions(tree.inputs(level, chunk)),
        shard.read_merges(stored),
        shard.read(stored),
        0,
    )
    above = None
    if level + 1 < len(tree.grids()):
        table = np.load(tree.labels(level + 1, parent(chunk)))
        above = (table["nodes"], table["segments"])
    save_labels(tree.labels(level, chunk), *chunk_labels(result, threshold, above))


def save_labels(path: Path, nodes: np.ndarray, segments: np.ndarray) -> None:
    """A lookup table (region ids -> segment ids), written whole, then renamed."""
    arrays.write_npz(path, nodes=nodes, segments=segments)
