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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .agglomerate import MergeHistory, agglomerate
from .graph import Graph, edges

Chunk = tuple[int, ...]


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


def frozen_regions(graphs: Mapping[Chunk, Graph]) -> dict[Chunk, frozenset[int]]:
    """Per chunk, the regions that occur in another chunk as well (they touch its
    outer faces: part of their voxels or edges lies beyond it)."""
    seen = {chunk: occurrences(graph) for chunk, graph in graphs.items()}
    counts = Counter(int(n) for ids in seen.values() for n in ids)
    return {
        chunk: frozenset(int(n) for n in ids if counts[int(n)] > 1) for chunk, ids in seen.items()
    }


def parent(chunk: Chunk) -> Chunk:
    return tuple(c // 2 for c in chunk)


def hierarchical_history(
    leaves: Mapping[Chunk, Graph],
    merge_function: str = "mean",
    min_size: int = 0,
    below: float = math.inf,
) -> tuple[MergeHistory, list[Level]]:
    """The merges of an octree agglomeration over ``leaves`` (chunk grid index ->
    that chunk's rows), as a history whose lookup at any threshold up to ``below``
    is the partition ``merge_history`` gives on the combined graph; and what each
    level did (the residual it passed up)."""
    graphs = {chunk: Graph.combine([graph]) for chunk, graph in leaves.items()}
    nodes = np.unique(np.concatenate([occurrences(g) for g in graphs.values()]))
    merges, levels = [], []
    while True:
        root = len(graphs) == 1
        frozen = frozen_regions(graphs)
        residuals: dict[Chunk, list[Graph]] = {}
        committed = 0
        for chunk, graph in graphs.items():
            merged, into, scores, residual = agglomerate(
                graph, merge_function, min_size, frozen[chunk], below
            )
            merges.append((merged, into, scores))
            committed += len(merged)
            residuals.setdefault(parent(chunk), []).append(residual)
        levels.append(
            Level(
                len(graphs),
                max(len(g.edges) for g in graphs.values()),
                committed,
                sum(len(r.nodes) for rs in residuals.values() for r in rs),
                sum(len(r.edges) for rs in residuals.values() for r in rs),
            )
        )
        if root:
            break
        graphs = {chunk: Graph.combine(parts) for chunk, parts in residuals.items()}
    merged, into, scores = (np.concatenate(part) for part in zip(*merges, strict=True))
    order = np.argsort(scores, kind="stable")
    return MergeHistory(nodes, merged[order], into[order], scores[order]), levels


def block_rows(frags: np.ndarray, affs: np.ndarray, block: Sequence[int], start: Chunk) -> Graph:
    """The rows the edge stage writes for the block at ``start`` (voxels), from whole
    in-memory volumes: its fragments' sizes, and edges with one voxel of context on
    the negative side (none before the volume starts)."""
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
