"""Stage 2: the region graph, edges between touching fragments with affinity statistics.

Each block writes its edges; ``Graph.from_blocks`` merges them into the edges a
whole-volume run would find, which a job stores as one shard (``shard``).
Optionally the graph also holds long-range edges (``LongRange``): fragment pairs
that the long-range affinity channels join, what mutex watershed repels with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import arrays

#: affinity histogram bins per edge (for quantile merge functions)
BINS = 32
#: affinities are summed in units of 1 / QUANTUM: float64 sums of such multiples are
#: exact (below 2**29 voxel pairs per edge), so an edge's mean is the same whether its
#: rows are added block by block, chunk by chunk or all at once
QUANTUM = 2**24


@dataclass(frozen=True)
class LongRange:
    """Fragment pairs (u < v) joined by the long-range offsets (the affinity channels
    after the nearest-neighbour ones), pooled over those offsets: per pair the sum of
    its affinities (exact in any order, see QUANTUM) and their count. Blocks' rows
    add up, so the merged edges equal the whole volume's."""

    edges: np.ndarray
    sums: np.ndarray
    counts: np.ndarray

    def means(self) -> np.ndarray:
        return self.sums / self.counts

    @classmethod
    def of(cls, pairs: np.ndarray, values: np.ndarray) -> LongRange:
        """The edges of voxel pairs (u < v, fragment ids) with their affinities."""
        values = np.round(values.astype(np.float64) * QUANTUM) / QUANTUM
        return cls(pairs.astype(np.uint64).reshape(-1, 2), values, np.ones(len(values), np.int64))

    @classmethod
    def combine(cls, parts: Sequence[LongRange]) -> LongRange:
        """One row per pair from rows that may repeat pairs (voxels, blocks, shards)."""
        pairs = np.concatenate([p.edges for p in parts]).astype(np.uint64).reshape(-1, 2)
        if len(pairs) == 0:
            return cls(pairs, np.zeros(0), np.zeros(0, np.int64))
        unique, inverse = unique_pairs(pairs)
        n = len(unique)
        sums = np.bincount(inverse, np.concatenate([p.sums for p in parts]), minlength=n)
        counts = np.bincount(inverse, np.concatenate([p.counts for p in parts]), minlength=n)
        return cls(unique, sums, counts.astype(np.int64))


@dataclass(frozen=True)
class Graph:
    """The region graph: fragment ids and edges (u < v) with their statistics.

    ``stats[e]`` is ``[sum of affinities, count, histogram (BINS)]``: every merge
    function is computed from it, and merging regions just adds rows.
    ``sizes[i]`` is the voxel count of fragment ``nodes[i]``.
    """

    nodes: np.ndarray
    sizes: np.ndarray
    edges: np.ndarray
    stats: np.ndarray
    #: per edge, the largest fragment pair it joins (None: the edge itself, as in a
    #: graph of fragments); orders ties in agglomeration whatever the chunking
    idents: np.ndarray | None = None
    #: long-range edges (None: not computed; see ``FragmentOptions.long_range``)
    long_range: LongRange | None = None

    @classmethod
    def of_edges(
        cls,
        edges: np.ndarray | None = None,
        stats: np.ndarray | None = None,
        long_range: LongRange | None = None,
    ) -> Graph:
        """Rows of edges alone (across block faces, or long-range; default none): their
        fragments' sizes come from the rows of the blocks holding them."""
        edges = np.zeros((0, 2), np.uint64) if edges is None else edges
        stats = np.zeros((0, 2 + BINS)) if stats is None else stats
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.int64), edges, stats, None, long_range)

    def identities(self) -> np.ndarray:
        return self.edges if self.idents is None else self.idents

    def columns(self) -> dict[str, np.ndarray]:
        """The compact form block files and shards store: an edge's affinity sum and
        count, and only the nonzero bins of its histogram as (edge, bin, count) rows.
        A block's edge has one bin (see ``edges``), so this is 4 numbers an edge
        where ``stats`` has 2 + BINS."""
        edge, bins = np.nonzero(self.stats[:, 2:])
        columns = {
            "nodes": self.nodes.astype(np.uint64),
            "sizes": self.sizes.astype(np.int64),
            "edges": self.edges.astype(np.uint64).reshape(-1, 2),
            "sums": self.stats[:, 0],
            "counts": self.stats[:, 1].astype(np.int64),
            "bin_edges": edge.astype(np.int64),
            "bins": bins.astype(np.uint8),
            "bin_counts": self.stats[edge, 2 + bins].astype(np.int64),
        }
        if self.idents is not None:
            columns["idents"] = self.idents.astype(np.uint64)
        if self.long_range is not None:
            columns["long_edges"] = self.long_range.edges.astype(np.uint64)
            columns["long_sums"] = self.long_range.sums
            columns["long_counts"] = self.long_range.counts.astype(np.int64)
        return columns

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> Graph:
        """The graph ``columns`` stored (missing ``idents``: a graph of fragments;
        missing ``long_edges``: no long-range edges)."""
        stats = np.zeros((len(columns["edges"]), 2 + BINS))
        stats[:, 0], stats[:, 1] = columns["sums"], columns["counts"]
        stats[columns["bin_edges"], 2 + columns["bins"].astype(np.int64)] = columns["bin_counts"]
        idents = columns.get("idents")
        long_range = None
        if "long_edges" in columns:
            long_range = LongRange(
                np.asarray(columns["long_edges"], np.uint64).reshape(-1, 2),
                np.asarray(columns["long_sums"], np.float64),
                np.asarray(columns["long_counts"], np.int64),
            )
        return cls(
            np.asarray(columns["nodes"], np.uint64),
            np.asarray(columns["sizes"], np.int64),
            np.asarray(columns["edges"], np.uint64).reshape(-1, 2),
            stats,
            None if idents is None else np.asarray(idents, np.uint64).reshape(-1, 2),
            long_range,
        )

    def save_block(self, path: Path) -> None:
        """One block's rows, as a job's resumable scratch (written whole, then renamed)."""
        arrays.write_npz(path, **self.columns())

    @classmethod
    def from_blocks(cls, blocks_dir: str | Path, more: Sequence[Graph] = ()) -> Graph:
        """The graph of all blocks a job wrote into ``blocks_dir``, and rows ``more``."""
        parts = [cls.from_columns(np.load(p)) for p in sorted(Path(blocks_dir).glob("*.npz"))]
        if not parts:
            raise FileNotFoundError(f"{blocks_dir}: no region graph blocks")
        return cls.combine([*parts, *more])

    @classmethod
    def combine(cls, parts: Sequence[Graph]) -> Graph:
        """One graph from parts that may share nodes and edges (blocks, chunks): a
        node's sizes add up, an edge's rows merge as in ``_merge_block_stats``, and
        long-range rows as in ``LongRange.combine``. Every edge's ends are nodes (of
        size 0 where no part holds their voxels)."""
        edges = np.concatenate([p.edges for p in parts]).astype(np.uint64).reshape(-1, 2)
        unique, inverse = unique_pairs(edges)
        inverse = inverse.ravel()
        rows = np.concatenate([p.stats for p in parts]).reshape(-1, 2 + BINS)
        stats = _merge_block_stats(rows, inverse)
        ids = np.concatenate([*(p.nodes for p in parts), unique.ravel()]).astype(np.uint64)
        weights = np.concatenate([*(p.sizes for p in parts), np.zeros(unique.size)])
        nodes, where = np.unique(ids, return_inverse=True)
        sizes = np.bincount(where.ravel(), weights, minlength=len(nodes))
        idents = None
        if any(p.idents is not None for p in parts):  # per edge, the largest of its rows'
            given = np.concatenate([p.identities() for p in parts]).reshape(-1, 2)
            order = np.lexsort((given[:, 1], given[:, 0], inverse))
            last = np.flatnonzero(np.diff(inverse[order], append=-1))  # each edge's last row
            idents = given[order[last]].astype(np.uint64)
        long_parts = [p.long_range for p in parts if p.long_range is not None]
        long_range = LongRange.combine(long_parts) if long_parts else None
        return cls(nodes, sizes.astype(np.int64), unique, stats, idents, long_range)


def unique_pairs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(pairs, axis=0, return_inverse=True)`` for (n, 2) id pairs, five times
    faster: ids are numbered densely, so each pair is one integer sorted in 1D."""
    ids, dense = np.unique(pairs, return_inverse=True)
    if len(ids) >= 2**31:  # a pair's integer would overflow int64
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        return unique, inverse.ravel()
    dense = dense.reshape(-1, 2).astype(np.int64)
    keys, inverse = np.unique(dense[:, 0] * len(ids) + dense[:, 1], return_inverse=True)
    unique = np.stack([ids[keys // len(ids)], ids[keys % len(ids)]], axis=1)
    return unique.reshape(-1, 2), inverse.ravel()


def _merge_block_stats(rows: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """One stats row per edge from its rows in several blocks.

    Sums and counts add up. Each block's histogram holds only that block's top
    bin (waterz's InitWithMax); an edge crossing blocks keeps the counts of its
    overall top bin only, so it equals the whole-volume edge.
    """
    n = int(edge.max()) + 1 if len(edge) else 0
    stats = np.zeros((n, 2 + BINS))
    np.add.at(stats[:, :2], edge, rows[:, :2])
    hist = rows[:, 2:]
    row_top = BINS - 1 - np.argmax(hist[:, ::-1] > 0, axis=1)
    top = np.full(n, -1)
    np.maximum.at(top, edge, row_top)
    keep = row_top == top[edge]
    np.add.at(stats[:, 2:], edge[keep], hist[keep])
    return stats


def edges(
    frags: np.ndarray, affs: np.ndarray, dims: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Edges between voxel ``p`` and ``p - e_d`` for all ``p`` but the first slab per axis,
    along the trailing ``dims`` axes (default all) that affinity channels 0.. connect.

    ``frags``/``affs`` carry one voxel of context on the negative side of each axis.
    Returns the pairs (u < v) and their statistics rows (see Graph).
    """
    inner = tuple(slice(1, None) for _ in range(frags.ndim))
    first = frags.ndim - (dims or frags.ndim)
    u = frags[inner]
    pairs, values = [], []
    for d in range(first, frags.ndim):
        back = tuple(slice(0, -1) if i == d else slice(1, None) for i in range(frags.ndim))
        kept_pairs, kept_values = voxel_pairs(u, frags[back], affs[d - first][inner])
        pairs.append(kept_pairs)
        values.append(kept_values)
    return edge_rows(np.concatenate(pairs), np.concatenate(values))


def voxel_pairs(u: np.ndarray, v: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fragment pairs (min, max) of voxels ``u`` and ``v`` (same shape) that lie in
    two fragments, with their affinities ``values``; fragment 0 (none) makes no pair."""
    keep = (u != v) & (u > 0) & (v > 0)  # views: only the pairs kept are copied
    kept_u, kept_v = u[keep], v[keep]
    return np.stack([np.minimum(kept_u, kept_v), np.maximum(kept_u, kept_v)], axis=1), values[keep]


def edge_rows(pairs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One edge (u < v) and statistics row (see Graph) per distinct pair of ``pairs``
    (voxel pairs, with their affinities ``values``)."""
    if len(pairs) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros((0, 2 + BINS))
    unique, inverse = unique_pairs(pairs)
    value = values.astype(np.float64)
    bins = np.minimum((value * BINS).astype(int), BINS - 1)
    value = np.round(value * QUANTUM) / QUANTUM  # sums exact in any order (see QUANTUM)
    n = len(unique)
    stats = np.zeros((n, 2 + BINS))
    stats[:, 0] = np.bincount(inverse, value, minlength=n)
    stats[:, 1] = np.bincount(inverse, minlength=n)
    # as waterz (InitWithMax): an edge's initial histogram holds only its highest bin
    hist = np.bincount(inverse * BINS + bins, minlength=n * BINS).reshape(n, BINS)
    top = BINS - 1 - np.argmax(hist[:, ::-1] > 0, axis=1)
    rows = np.arange(n)
    stats[rows, 2 + top] = hist[rows, top]
    return unique, stats


def long_range_context(offsets: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """Voxels of fragments a block reads before and after it, per axis, so that both
    ends of each pair (p, p - offset) with p in the block are read."""
    behind = [max(0, *column) for column in zip(*offsets, strict=True)]
    ahead = [max(0, *(-o for o in column)) for column in zip(*offsets, strict=True)]
    return behind, ahead


def long_range_edges(
    frags: np.ndarray, affs: np.ndarray, offsets: Sequence[Sequence[int]], behind: Sequence[int]
) -> LongRange:
    """Long-range edges of a block: pairs of voxel ``p`` and ``p - offset`` with ``p``
    in the block, for each offset and its channel of ``affs`` (over the block).

    ``frags`` holds the block with ``behind`` voxels before it and enough after it
    (``long_range_context``). Each pair is counted by the block holding ``p``, so
    blocks' rows add up to the whole volume's; fragment 0 (outside the volume)
    makes no pair.
    """
    shape = affs.shape[1:]
    here = tuple(slice(b, b + n) for b, n in zip(behind, shape, strict=True))
    pairs, values = [], []
    for offset, channel in zip(offsets, affs, strict=True):
        there = tuple(
            slice(b - o, b - o + n) for b, o, n in zip(behind, offset, shape, strict=True)
        )
        u, v = frags[here].ravel(), frags[there].ravel()
        keep = (u != v) & (u > 0) & (v > 0)
        pairs.append(np.stack([np.minimum(u, v)[keep], np.maximum(u, v)[keep]], axis=1))
        values.append(channel.ravel()[keep])
    rows = LongRange.of(np.concatenate(pairs), np.concatenate(values))
    return LongRange.combine([rows])
