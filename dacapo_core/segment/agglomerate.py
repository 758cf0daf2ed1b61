"""Stage 3: one hierarchical agglomeration of the whole region graph.

Recorded once as a merge history, so that any threshold is a prefix of it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import ConfigError
from .graph import BINS, Graph


@dataclass(frozen=True)
class MergeHistory:
    """Merges in the order agglomeration made them: ``merged[i]`` into ``into[i]``."""

    nodes: np.ndarray
    merged: np.ndarray
    into: np.ndarray
    scores: np.ndarray

    def lookup(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(fragment ids, segment ids 1..n) after all merges below ``threshold``."""
        steps = int(np.searchsorted(np.maximum.accumulate(self.scores), threshold, "left"))
        parent = np.arange(len(self.nodes))
        src = np.searchsorted(self.nodes, self.merged[:steps])
        dst = np.searchsorted(self.nodes, self.into[:steps])
        parent[src] = dst
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        _, segments = np.unique(parent, return_inverse=True)
        return self.nodes, (segments + 1).astype(np.uint64)


def scoring(merge_function: str) -> Callable[[np.ndarray], float]:
    """Merge score (lower merges first) of a statistics row: ``1 - affinity``.

    ``mean``: the mean affinity across the boundary; ``hist_quant_Q``: its Q-th
    percentile, from the histogram (as waterz's HistogramQuantileAffinity).
    """
    if merge_function == "mean":
        return lambda row: 1.0 - row[0] / row[1]
    match = re.fullmatch(r"hist_quant_(\d+)", merge_function)
    if not match or not 0 < int(match.group(1)) < 100:
        raise ConfigError(f"unknown merge function '{merge_function}'")
    q = int(match.group(1)) / 100

    def quantile(row: np.ndarray) -> float:
        hist = row[2:]
        pivot = int(q * 100) * int(hist.sum()) // 100 + 1  # 1-based rank, as waterz
        rank = np.searchsorted(np.cumsum(hist), pivot)
        return 1.0 - (rank + 0.5) / BINS

    return quantile


def merge_history(graph: Graph, merge_function: str = "mean", min_size: int = 0) -> MergeHistory:
    """Agglomerate greedily by ``merge_function`` until no edge is left.

    Merging two regions adds their edge statistics to each common neighbour, as
    waterz's region-graph agglomeration does on a whole volume. A region smaller
    than ``min_size`` voxels merges first, into its best neighbour, at any
    threshold (its edges score below 0), so specks never stay segments of their
    own; being graph-wide, this is seamless across blocks and costs no new fragments.
    """
    base = scoring(merge_function)
    size = dict(zip(graph.nodes.tolist(), graph.sizes.tolist(), strict=True))

    def score_of(u: int, v: int, row: np.ndarray) -> float:
        return base(row) - (1.0 if min(size[u], size[v]) < min_size else 0.0)

    adjacency: dict[int, dict[int, np.ndarray]] = {int(n): {} for n in graph.nodes}
    heap = []
    for (u, v), row in zip(graph.edges.tolist(), graph.stats, strict=True):
        adjacency[u][v] = adjacency[v][u] = row.copy()
        heap.append((score_of(u, v, row), u, v))
    heapq.heapify(heap)
    merged, into, scores = [], [], []
    while heap:
        score, u, v = heapq.heappop(heap)
        row = adjacency.get(u, {}).get(v)
        if row is None or score_of(u, v, row) != score:
            continue  # stale entry: a region merged or the edge changed since
        if len(adjacency[u]) > len(adjacency[v]):
            u, v = v, u
        del adjacency[v][u]
        was_small = size[v] < min_size
        size[v] += size.pop(u)
        changed = set(adjacency[u]) - {v}
        for n, other in adjacency.pop(u).items():
            if n == v:
                continue
            del adjacency[n][u]
            joint = adjacency[v].get(n)
            adjacency[v][n] = adjacency[n][v] = other if joint is None else joint + other
        if was_small and size[v] >= min_size:  # all of v's edges lose their priority
            changed = set(adjacency[v])
        for n in changed:
            heapq.heappush(heap, (score_of(v, n, adjacency[v][n]), min(n, v), max(n, v)))
        merged.append(u)
        into.append(v)
        scores.append(score)
    return MergeHistory(
        graph.nodes,
        np.array(merged, np.uint64),
        np.array(into, np.uint64),
        np.array(scores, np.float64),
    )
