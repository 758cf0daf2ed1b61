"""Stage 3: one hierarchical agglomeration of the whole region graph.

Recorded once as a merge history, so that any threshold is a prefix of it.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .graph import BINS, Graph


@dataclass(frozen=True)
class MergeHistory:
    """Merges in the order agglomeration made them: ``merged[i]`` into ``into[i]``."""

    nodes: np.ndarray
    merged: np.ndarray
    into: np.ndarray
    scores: np.ndarray

    def lookup(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(fragment ids, segment ids) after all merges below ``threshold``.

        A segment's id is its smallest fragment id (the name its region carries,
        see ``_Regions``): the same whatever the chunking, so lookup tables of
        chunks agree without a global renumbering.
        """
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
        return self.nodes, self.nodes[parent].astype(np.uint64)


def scoring(merge_function: str) -> Callable[[np.ndarray], np.ndarray]:
    """Merge scores (lower merges first) of statistics rows ``(n, 2 + BINS)``, one per
    row: ``1 - affinity``. Rows are scored together: numpy's cost is per call.

    ``mean``: the mean affinity across the boundary; ``hist_quant_Q``: its Q-th
    percentile, from the histogram (as waterz's HistogramQuantileAffinity).
    """
    if merge_function == "mean":
        return lambda rows: 1.0 - rows[:, 0] / rows[:, 1]
    match = re.fullmatch(r"hist_quant_(\d+)", merge_function)
    if not match or not 0 < int(match.group(1)) < 100:
        raise ConfigError(f"unknown merge function '{merge_function}'")
    percent = int(match.group(1))

    def quantile(rows: np.ndarray) -> np.ndarray:
        hist = rows[:, 2:]
        pivot = percent * hist.sum(axis=1).astype(np.int64) // 100 + 1  # 1-based, as waterz
        rank = np.count_nonzero(np.cumsum(hist, axis=1) < pivot[:, None], axis=1)
        return 1.0 - (rank + 0.5) / BINS

    return quantile


#: an edge's identity: the largest fragment pair among the fragment edges it joins
Ident = tuple[int, int]


@dataclass
class _Regions:
    """A greedy agglomeration in progress: regions, their edges, what is decided.

    Edges are taken in the order of (score, identity): the identity of an edge
    between two regions is the largest of the fragment pairs it joins, so the
    order depends on the regions alone, never on how the graph was cut into
    chunks or which region of a merged pair keeps its id. A merge never makes an
    edge that comes before the merged one (its score is no lower, and where equal,
    its identity is one the merged edge already came before), so every chunk of a
    hierarchical run makes exactly the merges a whole-graph run makes.

    Regions are stored under the key of the one of a merged pair with more edges
    (cheap merges), but named by their smallest fragment id (``name``): merges,
    residuals and segment ids use names, which do not depend on the chunking.
    """

    base: Callable[[np.ndarray], np.ndarray]
    min_size: int
    size: dict[int, int]
    #: region -> neighbour -> (statistics row, identity, its base score as a float)
    adjacency: dict[int, dict[int, tuple[np.ndarray, Ident, float]]]
    frozen: set[int]
    name: dict[int, int] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    merges: list[tuple[int, int, float]] = field(default_factory=list)

    def entry(self, u: int, v: int) -> tuple[float, Ident, int, int]:
        """The heap entry of edge (u, v): its score, identity and regions."""
        _, ident, base = self.adjacency[u][v]
        small = min(self.size[u], self.size[v]) < self.min_size
        return (base - (1.0 if small else 0.0), ident, u, v)

    def merge(self, u: int, v: int, score: float) -> list[tuple[float, Ident, int, int]]:
        """Merge the region of fewer edges into the other; the entries of changed edges."""
        adjacency = self.adjacency
        if len(adjacency[u]) > len(adjacency[v]):
            u, v = v, u
        del adjacency[v][u]
        was_small = self.size[v] < self.min_size
        self.size[v] += self.size.pop(u)
        changed = set(adjacency[u]) - {v}
        joined = []  # neighbours of both: their rows add up, scored together below
        for n, (row, ident, base) in adjacency.pop(u).items():
            if n == v:
                continue
            del adjacency[n][u]
            joint = adjacency[v].get(n)
            if joint is None:
                adjacency[v][n] = adjacency[n][v] = (row, ident, base)
            else:
                joined.append((n, joint[0] + row, max(joint[1], ident)))
        if joined:
            bases = self.base(np.stack([row for _, row, _ in joined])).tolist()
            for (n, row, ident), base in zip(joined, bases, strict=True):
                adjacency[v][n] = adjacency[n][v] = (row, ident, base)
        if was_small and self.size[v] >= self.min_size:  # all of v's edges lose priority
            changed = set(adjacency[v])
        names = sorted((self.name.pop(u, u), self.name.get(v, v)))
        self.name[v] = names[0]
        self.merges.append((names[1], names[0], score))
        return [self.entry(v, n) for n in changed]

    def run(self, below: float) -> None:
        """Merge, first entry first, every edge whose regions are both decidable here
        and whose score is below ``below``."""
        heap = [self.entry(u, v) for u in self.adjacency for v in self.adjacency[u] if u < v]
        heapq.heapify(heap)
        while heap:
            item = heapq.heappop(heap)
            score, _, u, v = item
            if score >= below and not self.frozen:
                break  # the rest scores no lower: no merge, and none can freeze a region
            if v not in self.adjacency.get(u, {}) or self.entry(u, v) != item:
                continue  # stale: a region merged or the edge changed since
            if u in self.frozen or v in self.frozen:  # the other waits on a frozen region
                self.frozen.update({u, v} - self.done)
            elif u in self.done or v in self.done or score >= below:
                self.done.update((u, v))  # neither merges below ``below`` any more
            else:
                for new in self.merge(u, v, score):
                    heapq.heappush(heap, new)


def agglomerate(
    graph: Graph,
    merge_function: str = "mean",
    min_size: int = 0,
    frozen: frozenset[int] = frozenset(),
    below: float = math.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Graph]:
    """Greedy agglomeration of ``graph``: the merges (merged, into, score) and the
    residual graph, what is left undecided for a larger chunk.

    ``frozen`` regions touch the outer faces of the chunk ``graph`` is: their
    edges beyond it are unknown, so they never merge here. An edge is merged when
    it comes first among the edges of both its regions and neither is frozen; a
    region whose first edge leads to a frozen region waits, frozen too. Because
    merging never makes an edge that comes earlier (a merged edge's mean or
    quantile lies between its parts', and a region only grows past ``min_size``),
    such a merge is one a whole-graph run makes too, with the same score. Regions
    whose first edge scores ``below`` or more never merge below it and are
    dropped. The residual holds the frozen regions and the edges between them,
    partial statistics and sizes included.
    """
    regions = _Regions(
        scoring(merge_function),
        min_size,
        dict(zip(graph.nodes.tolist(), graph.sizes.tolist(), strict=True)),
        {int(n): {} for n in graph.nodes},
        {int(n) for n in frozen},
    )
    pairs, idents = graph.edges.tolist(), graph.identities().tolist()
    bases = regions.base(graph.stats.reshape(-1, 2 + BINS)).tolist()
    for (u, v), ident, row, base in zip(pairs, idents, graph.stats, bases, strict=True):
        regions.adjacency[u][v] = regions.adjacency[v][u] = (row.copy(), tuple(ident), base)
    regions.run(below)
    merged, into, scores = zip(*regions.merges, strict=True) if regions.merges else ((), (), ())
    return (
        np.array(merged, np.uint64),
        np.array(into, np.uint64),
        np.array(scores, np.float64),
        _residual(regions),
    )


def _residual(regions: _Regions) -> Graph:
    """The frozen regions with their sizes, and the edges between them, by name."""
    frozen = regions.frozen
    keys = sorted(frozen)
    pairs = [(u, v) for u in keys for v in regions.adjacency[u] if u < v and v in frozen]
    edges = [regions.adjacency[u][v] for u, v in pairs]
    name = np.array([regions.name.get(k, k) for k in keys], np.uint64)
    named = np.searchsorted(keys, np.array(pairs, np.int64).reshape(-1, 2))
    unsorted = Graph(
        name,
        np.array([regions.size[k] for k in keys], np.int64),
        np.sort(name[named], axis=1),
        np.array([row for row, _, _ in edges], np.float64).reshape(-1, 2 + BINS),
        np.array([ident for _, ident, _ in edges], np.uint64).reshape(-1, 2),
    )
    return Graph.combine([unsorted])  # nodes and edges in order


def merge_history(graph: Graph, merge_function: str = "mean", min_size: int = 0) -> MergeHistory:
    """Agglomerate the whole graph greedily by ``merge_function`` until no edge is left.

    Merging two regions adds their edge statistics to each common neighbour, as
    waterz's region-graph agglomeration does on a whole volume. A region smaller
    than ``min_size`` voxels merges first, into its best neighbour, at any
    threshold (its edges score below 0), so specks never stay segments of their
    own; being graph-wide, this is seamless across blocks and costs no new fragments.
    """
    merged, into, scores, _ = agglomerate(graph, merge_function, min_size)
    return MergeHistory(graph.nodes, merged, into, scores)
