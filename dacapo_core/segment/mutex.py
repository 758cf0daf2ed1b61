"""Stage 3, alternative: mutex watershed on the region graph (Wolf et al., TPAMI 2020;
the ``mwatershed`` package, DaCapo's default post-processor).

Each edge's weight is its mean affinity minus a bias, as DaCapo subtracts the bias
from every affinity: nearest-neighbour edges (fragments that touch) and long-range
edges (fragments the long-range offsets join, ``graph.LongRange``) above the bias
attract, those below it repel. Edges are taken by decreasing weight magnitude: an
attractive edge merges its clusters unless a mutex (an earlier repulsive edge)
separates them; a repulsive edge sets a mutex between two clusters not merged yet.
So a confident long-range "different objects" keeps two fragments apart that a
chain of weak boundaries would otherwise join, which no threshold of the
hierarchical agglomeration can.

It is decided on the whole graph of one superblock: the graph its blocks wrote
equals the whole volume's, so the segments are seamless across blocks.
"""

from __future__ import annotations

import mwatershed
import numpy as np

from .graph import Graph


def weighted_edges(graph: Graph, bias: float) -> tuple[np.ndarray, np.ndarray]:
    """Every edge (nearest-neighbour, then long-range) as node indices into
    ``graph.nodes`` and its weight, mean affinity minus ``bias``, in the order
    mutex watershed takes them: decreasing magnitude, then repulsive first, then by
    pair (a total order, so equal graphs give equal segments)."""
    pairs, means = [graph.edges], [graph.stats[:, 0] / graph.stats[:, 1]]
    if graph.long_range is not None:
        pairs.append(graph.long_range.edges)
        means.append(graph.long_range.means())
    ends = np.searchsorted(graph.nodes, np.concatenate(pairs).reshape(-1, 2))
    weights = np.concatenate(means) - bias
    order = np.lexsort((ends[:, 1], ends[:, 0], weights > 0, -np.abs(weights)))
    return ends[order], weights[order]


def mutex_lookup(graph: Graph, bias: float) -> tuple[np.ndarray, np.ndarray]:
    """(fragment ids, segment ids) of the mutex watershed of ``graph`` at ``bias``.

    A segment's id is its smallest fragment id, as in ``MergeHistory.lookup``.
    """
    ends, weights = weighted_edges(graph, bias)
    edges = zip((weights > 0).tolist(), *ends.T.tolist(), strict=True)
    clusters = np.arange(len(graph.nodes))
    found = np.array(mwatershed.cluster(list(edges)), np.int64).reshape(-1, 2)
    clusters[found[:, 0]] = found[:, 1]
    first = np.full(len(clusters), len(clusters))
    np.minimum.at(first, clusters, np.arange(len(clusters)))
    return graph.nodes, graph.nodes[first[clusters]].astype(np.uint64)
