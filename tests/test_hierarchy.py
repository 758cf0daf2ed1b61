"""Hierarchical agglomeration over an octree of chunks equals the whole-graph one.

Graph-level: fragments of a whole volume, cut into blocks whose rows are written
as the fragment and edge stages write them, blocks grouped into 27 chunks. No daisy, no files.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dacapo_core.config import FragmentOptions, WatershedConfig
from dacapo_core.demo import cells, membranes
from dacapo_core.segment import Graph, merge_history, shard
from dacapo_core.segment.agglomerate import MergeHistory, agglomerate
from dacapo_core.segment.fragments import fragments
from dacapo_core.segment.hierarchy import (
    hierarchical_history,
    leaf_graphs,
    leaf_lookups,
    occurrences,
    octree,
)
from dacapo_core.segment.octree import Octree, agglomerate_chunk, label_chunk
from dacapo_core.stages import AgglomerateStage
from dacapo_core.superblocks import Superblocks

BLOCK = 12  # voxels per block edge
CHUNK = 2  # blocks per chunk edge: 72^3 voxels are 6^3 blocks, 3^3 chunks
SHAPE = (72, 72, 72)
THRESHOLDS = WatershedConfig().thresholds  # the default grid


def volume(seed: int, uint8: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cells larger than a chunk, and noisy smooth affinities of them (as a network's,
    or stored in 255ths)."""
    rng = np.random.default_rng(seed)
    labels = cells(SHAPE, diameter=14, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    affs = np.clip(affs + rng.normal(scale=0.08, size=affs.shape), 0, 1).astype(np.float32)
    if uint8:
        affs = (np.round(affs * 255) / 255).astype(np.float32)
    return affs, fragments(affs, FragmentOptions(seed_distance=1))  # several per cell


def partitions(history: MergeHistory) -> list[np.ndarray]:
    return [history.lookup(t)[1] for t in THRESHOLDS]


@pytest.fixture(scope="module", params=[(0, False), (1, True), (2, False)], ids=str)
def graph(request):
    affs, frags = volume(*request.param)
    leaves = leaf_graphs(frags, affs, (BLOCK,) * 3, (CHUNK,) * 3)
    assert len(leaves) == 27
    return frags, leaves, Graph.combine(list(leaves.values()))


@pytest.mark.parametrize("min_size", [0, 300])
@pytest.mark.parametrize("merge_function", ["mean", "hist_quant_75"])
def test_octree_agglomeration_equals_the_whole_graph_one(graph, merge_function, min_size):
    frags, leaves, whole = graph
    flat = merge_history(whole, merge_function, min_size)
    tree, levels = hierarchical_history(leaves, merge_function, min_size, max(THRESHOLDS))
    assert [level.chunks for level in levels] == [27, 8, 1]
    assert levels[0].merges > 0 and levels[-1].residual_nodes == 0
    for t, a, b in zip(THRESHOLDS, partitions(flat), partitions(tree), strict=True):
        assert np.array_equal(a, b), f"threshold {t}"
    # what the comparison covers: merges at several levels, segments across chunks
    nodes, segments = flat.lookup(0.5)
    seg = np.zeros(frags.shape, np.int64)
    seg[frags > 0] = segments[np.searchsorted(nodes, frags[frags > 0])]
    spans = spanned_chunks(seg)
    assert sum(len(s) >= 2 for s in spans.values()) >= 5
    assert any(corner_of_eight(s) for s in spans.values())
    if min_size:  # small fragments do merge first
        assert (flat.scores < 0).sum() > 0


def spanned_chunks(seg: np.ndarray) -> dict[int, set[tuple[int, ...]]]:
    """Segment -> the chunks its voxels lie in."""
    edge = BLOCK * CHUNK
    spans: dict[int, set[tuple[int, ...]]] = {}
    for index in itertools.product(*(range(s // edge) for s in SHAPE)):
        part = seg[tuple(slice(i * edge, (i + 1) * edge) for i in index)]
        for label in np.unique(part[part > 0]):
            spans.setdefault(int(label), set()).add(index)
    return spans


def corner_of_eight(chunks: set[tuple[int, ...]]) -> bool:
    """Whether the chunks include all eight around one inner corner."""
    return any(
        all(
            tuple(c + o for c, o in zip(corner, offset, strict=True)) in chunks
            for offset in itertools.product((0, 1), repeat=3)
        )
        for corner in chunks
    )


def test_a_naive_blockwise_agglomeration_is_not_exact(graph):
    """Chunks that decide their regions at the faces as if nothing lay beyond (no
    frozen regions) give another partition: the comparison above can fail."""
    _, leaves, whole = graph
    flat = partitions(merge_history(whole, "mean"))
    merges = [agglomerate(rows, "mean")[:3] for rows in leaves.values()]
    merged, into, scores = (np.concatenate(part) for part in zip(*merges, strict=True))
    nodes = whole.nodes
    naive = []
    for t in THRESHOLDS:
        below = scores < t
        pairs = np.searchsorted(nodes, np.stack([merged[below], into[below]]))
        joined = coo_matrix((np.ones(below.sum()), tuple(pairs)), shape=(len(nodes),) * 2)
        naive.append(connected_components(joined, directed=False)[1])
    assert any(not same_partition(a, b) for a, b in zip(flat, naive, strict=True))
    assert all(same_partition(a, a.copy()) for a in flat)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings of the same nodes group them alike."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("merge_function", ["mean", "hist_quant_75"])
def test_leaf_lookup_tables_equal_the_whole_graph_lookup(graph, merge_function):
    """Top-down from the root, each leaf's table of the fragments occurring in it
    gives them the segment ids the whole-graph lookup gives, at every threshold."""
    _, leaves, whole = graph
    flat = merge_history(whole, merge_function, 300)
    levels = octree(leaves, merge_function, 300, max(THRESHOLDS))
    for t in THRESHOLDS:
        nodes, segments = flat.lookup(t)
        tables = leaf_lookups(levels, t)
        assert set(tables) == set(leaves)
        for chunk, (ids, labels) in tables.items():
            assert np.array_equal(ids, occurrences(leaves[chunk]))
            assert np.array_equal(labels, segments[np.searchsorted(nodes, ids)]), (t, chunk)


def test_octree_jobs_on_shards_give_each_leaf_the_whole_graph_lookup(graph, tmp_path):
    """The same, as jobs on files: leaf rows as shards, one job per chunk and level up
    the tree, one label job per chunk down it; each leaf's table on disk is exact."""
    _, leaves, whole = graph
    roi, voxel = Roi((0, 0, 0), SHAPE), Coordinate(1, 1, 1)
    (tmp_path / "rows").mkdir()
    for chunk, rows in leaves.items():
        shard.write(tmp_path / "rows" / f"{Superblocks.name(chunk)}.sqlite", rows, roi, voxel)
    tree = Octree(tmp_path / "rows", tmp_path / "work", (3, 3, 3))
    assert tree.grids() == [(3, 3, 3), (2, 2, 2), (1, 1, 1)]
    stage = AgglomerateStage(merge_function="hist_quant_75", min_size=300, threshold=0.5)
    for level, chunk in tree.upwards():
        agglomerate_chunk(tree, level, chunk, roi, voxel, stage)
    for level, chunk in reversed(tree.upwards()):
        label_chunk(tree, level, chunk, stage.threshold)
    nodes, segments = merge_history(whole, "hist_quant_75", 300).lookup(stage.threshold)
    for chunk, rows in leaves.items():
        table = np.load(tree.labels(0, chunk))
        assert np.array_equal(table["nodes"], occurrences(rows))
        assert np.array_equal(table["segments"], segments[np.searchsorted(nodes, table["nodes"])])
