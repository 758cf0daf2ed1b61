"""Agglomeration in bounded memory: the region graph cut into chunks on a grid, an
octree over them, each chunk deciding what it can and passing the rest up.

A leaf chunk holds the rows of the region graph that its blocks wrote. A region
that also occurs in another chunk (its voxels or an edge of it lie there)
touches the chunk's outer faces: it is frozen, and so is, transitively, every
region whose lowest edge leads to a frozen one (``agglomerate``). Everything
else is decided in the chunk, exactly as a whole-graph run decides it. The
frozen regions and the edges between them (the residual) go to the parent
chunk, which combines its eight children's residuals (a region's sizes add, an
edge's rows merge as blocks' do) and does the same. The root has no outer
faces and decides the rest.

A chunk's job never holds more than its own rows or its children's residuals.
Residuals hold the regions at chunk faces and those waiting on them; on noisy
graphs the waiting ones dominate, and the top level grew about as V^0.77 in
``bench/agglomeration.py`` (not yet the V^(2/3) of faces alone).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .agglomerate import MergeHistory, agglomerate
from .graph import Graph, edges
from .shard import Merges

Chunk = tuple[int, ...]


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk's job decided: the regions its inputs hold (``nodes``), the
    merges it committed, and the residual it passes up; ``edges`` its graph held
    (its job's memory follows them)."""

    nodes: np.ndarray
    merges: Merges
    residual: Graph
    edges: int


@dataclass(frozen=True)
class Level:
    """What one level of the octree did: chunks, the most edges one chunk held (its
    job's memory follows it), merges committed, and the residual passed up."""

    chunks: int
    largest: int
    merges: int
    residual_nodes: int
    residual_edges: int


def occurrences(graph: Graph) -> np.ndarray:
    """Every region a chunk's graph mentions: its nodes and the ends of its edges."""
    return np.unique(np.concatenate([graph.nodes, graph.edges.ravel()]))


def neighbours(chunk: Chunk) -> list[Chunk]:
    """The 26 chunks (in 3D) around ``chunk``: a region of ``chunk`` that occurs in
    another chunk occurs in one of these, because a fragment lies within a block
    and the context of the block that made its seed (smaller than a chunk)."""
    steps = itertools.product((-1, 0, 1), repeat=len(chunk))
    return [tuple(c + o for c, o in zip(chunk, step, strict=True)) for step in steps if any(step)]


def parent(chunk: Chunk) -> Chunk:
    return tuple(c // 2 for c in chunk)


def chunk_step(
    graph: Graph,
    around: Sequence[np.ndarray],
    merge_function: str = "mean",
    min_size: int = 0,
    below: float = math.inf,
) -> ChunkResult:
    """One chunk's job at any level, on what it can read: its own graph (a leaf's
    rows, or its children's residuals combined) and the regions occurring in the
    neighbouring chunks of its level (``around``). Those it shares touch its outer
    faces and are frozen."""
    nodes = occurrences(graph)
    frozen = nodes[np.isin(nodes, np.concatenate([np.zeros(0, np.uint64), *around]))]
    merged, into, scores, residual = agglomerate(
        graph, merge_function, min_size, frozenset(frozen.tolist()), below
    )
    return ChunkResult(nodes, (merged, into, scores), residual, len(graph.edges))


def octree(
    leaves: Mapping[Chunk, Graph],
    merge_function: str = "mean",
    min_size: int = 0,
    below: float = math.inf,
) -> list[dict[Chunk, ChunkResult]]:
    """Every chunk's result, level by level from the leaves (chunk grid index -> that
    chunk's rows) to the root, each chunk reading only its own inputs and its
    neighbours' regions."""
    graphs = {chunk: Graph.combine([graph]) for chunk, graph in leaves.items()}
    levels: list[dict[Chunk, ChunkResult]] = []
    while True:
        seen = {chunk: occurrences(graph) for chunk, graph in graphs.items()}
        levels.append(
            {
                chunk: chunk_step(
                    graph,
                    [seen[n] for n in neighbours(chunk) if n in seen],
                    merge_function,
                    min_size,
                    below,
                )
                for chunk, graph in graphs.items()
            }
        )
        if len(graphs) == 1:
            return levels
        residuals: dict[Chunk, list[Graph]] = {}
        for chunk, result in levels[-1].items():
            residuals.setdefault(parent(chunk), []).append(result.residual)
        graphs = {chunk: Graph.combine(parts) for chunk, parts in residuals.items()}


def chunk_labels(
    result: ChunkResult, threshold: float, above: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids of a chunk's regions at ``threshold``: each joins the region its
    chunk's merges below ``threshold`` made of it; a region that went up takes the
    id the parent chunk gave it (``above``: regions, ids), any other is done here
    and named by its smallest fragment, as ``MergeHistory.lookup`` names it."""
    nodes, labels = MergeHistory(result.nodes, *result.merges).lookup(threshold)
    if above is not None:
        up = np.isin(labels, result.residual.nodes)
        labels[up] = above[1][np.searchsorted(above[0], labels[up])]
    return nodes, labels


def leaf_lookups(
    levels: Sequence[Mapping[Chunk, ChunkResult]], threshold: float
) -> dict[Chunk, tuple[np.ndarray, np.ndarray]]:
    """Per leaf chunk, the lookup table of the fragments occurring in it (what its
    relabel job reads), from the root down: each chunk needs only its parent's."""
    above: dict[Chunk, tuple[np.ndarray, np.ndarray]] = {}
    for level in reversed(levels):
        above = {
            chunk: chunk_labels(result, threshold, above.get(parent(chunk)))
            for chunk, result in level.items()
        }
    return above


def hierarchical_history(
    leaves: Mapping[Chunk, Graph],
    merge_function: str = "mean",
    min_size: int = 0,
    below: float = math.inf,
) -> tuple[MergeHistory, list[Level]]:
    """The merges of an octree agglomeration over ``leaves``, as a history whose
    lookup at any threshold up to ``below`` is the one ``merge_history`` gives on
    the combined graph; and what each level did (the residual it passed up)."""
    levels = octree(leaves, merge_function, min_size, below)
    results = [result for level in levels for result in level.values()]
    merged, into, scores = (
        np.concatenate(part) for part in zip(*(r.merges for r in results), strict=True)
    )
    order = np.argsort(scores, kind="stable")
    nodes = np.unique(np.concatenate([r.nodes for r in levels[0].values()]))
    history = MergeHistory(nodes, merged[order], into[order], scores[order])
    return history, [_summary(level) for level in levels]


def _summary(level: Mapping[Chunk, ChunkResult]) -> Level:
    results = level.values()
    return Level(
        len(results),
        max(r.edges for r in results),
        sum(len(r.merges[0]) for r in results),
        sum(len(r.residual.nodes) for r in results),
        sum(len(r.residual.edges) for r in results),
    )


def block_rows(frags: np.ndarray, affs: np.ndarray, block: Sequence[int], start: Chunk) -> Graph:
    """The rows of the block at ``start`` (voxels), from whole in-memory volumes: its
    fragments' sizes, and edges with one voxel of context on the negative side (none
    before the volume starts). The fragment and edge stages' rows add up to these."""
    inner = tuple(slice(s, s + b) for s, b in zip(start, block, strict=True))
    read = tuple(slice(max(s - 1, 0), s + b) for s, b in zip(start, block, strict=True))
    pad = [(int(s == 0), 0) for s in start]
    pairs, stats = edges(
        np.pad(frags[read], pad), np.pad(affs[(slice(None), *read)], [(0, 0), *pad])
    )
    nodes, sizes = np.unique(frags[inner], return_counts=True)
    keep = nodes > 0
    return Graph(nodes[keep], sizes[keep], pairs, stats)


def leaf_graphs(
    frags: np.ndarray, affs: np.ndarray, block: Sequence[int], chunk: Sequence[int]
) -> dict[Chunk, Graph]:
    """Chunk grid index -> the rows its blocks write; ``chunk`` in blocks per axis.
    For tests and benchmarks: jobs write the same rows block by block."""
    blocks: dict[Chunk, list[Graph]] = {}
    for start in itertools.product(
        *(range(0, s, b) for s, b in zip(frags.shape, block, strict=True))
    ):
        index = tuple(s // (b * c) for s, b, c in zip(start, block, chunk, strict=True))
        blocks.setdefault(index, []).append(block_rows(frags, affs, block, start))
    return {index: Graph.combine(parts) for index, parts in blocks.items()}
