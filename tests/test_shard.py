"""Region-graph shards (SQLite): what is written reads back equal, written once."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from dacapo_core.segment import Graph, edges, shard
from dacapo_core.segment.agglomerate import agglomerate

ROI = Roi((40, 0, 0), (4 * 10, 8 * 12, 8 * 12))
VOXEL = Coordinate(4, 8, 8)


@pytest.fixture
def fragments_graph() -> Graph:
    """A graph of fragments with ids as the fragment stage makes them (seed index + 1)."""
    rng = np.random.default_rng(3)
    ids = rng.choice(10 * 12 * 12, 30, replace=False).astype(np.uint64) + 1
    frags = ids[rng.integers(0, 30, (10, 12, 12))]
    affs = rng.uniform(0, 1, (3, *frags.shape))
    pairs, stats = edges(frags, affs)
    nodes, sizes = np.unique(frags, return_counts=True)
    return Graph(nodes, sizes, pairs, stats)


def assert_same(a: Graph, b: Graph) -> None:
    for field in ("nodes", "sizes", "edges", "stats"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert (a.idents is None) == (b.idents is None)
    if a.idents is not None:
        assert np.array_equal(a.idents, b.idents)


def test_a_shard_reads_back_what_was_written(tmp_path, fragments_graph):
    path = tmp_path / "0_0_0.sqlite"
    shard.write(path, fragments_graph, ROI, VOXEL, meta={"chunk": [0, 0, 0], "level": 0})
    assert_same(shard.read(path), fragments_graph)
    assert shard.read_meta(path) == {
        "roi": [[40, 0, 0], [40, 96, 96]],
        "voxel_size": [4, 8, 8],
        "chunk": [0, 0, 0],
        "level": 0,
    }
    assert [len(m) for m in shard.read_merges(path)] == [0, 0, 0]
    # queryable without this package: positions in world units, mean affinity per edge
    with sqlite3.connect(path) as con:
        node, z, y, x = con.execute("SELECT id, z, y, x FROM nodes LIMIT 1").fetchone()
        mean = con.execute("SELECT affinity_sum / count FROM edges LIMIT 1").fetchone()[0]
        (bins,) = con.execute("SELECT COUNT(*) FROM edge_bins").fetchone()
    seed = np.unravel_index(node - 1, (10, 12, 12))
    assert (z, y, x) == tuple(s * v + b for s, v, b in zip(seed, VOXEL, ROI.begin, strict=True))
    first = fragments_graph.stats[0]
    assert mean == pytest.approx(first[0] / first[1])
    assert bins == len(fragments_graph.edges)  # a fragment edge stores its top bin only


def test_a_residual_with_its_merges_reads_back_equal(tmp_path, fragments_graph):
    """Regions merged in a chunk carry whole histograms and their edges' identities."""
    frozen = frozenset(fragments_graph.nodes[-1:].tolist())
    merged, into, scores, residual = agglomerate(fragments_graph, "hist_quant_50", 0, frozen)
    assert len(merged) > 0 and residual.idents is not None
    assert (np.count_nonzero(residual.stats[:, 2:], axis=1) > 1).any()
    path = tmp_path / "level1.sqlite"
    shard.write(path, residual, ROI, VOXEL, merges=(merged, into, scores))
    assert_same(shard.read(path), residual)
    for got, want in zip(shard.read_merges(path), (merged, into, scores), strict=True):
        assert np.array_equal(got, want)


def test_a_second_write_is_refused_or_replaces_the_shard_whole(tmp_path, fragments_graph):
    path = tmp_path / "s.sqlite"
    shard.write(path, fragments_graph, ROI, VOXEL)
    smaller = Graph(
        fragments_graph.nodes[:5],
        fragments_graph.sizes[:5],
        fragments_graph.edges[:0],
        fragments_graph.stats[:0],
    )
    with pytest.raises(shard.ShardExistsError, match="already written"):
        shard.write(path, smaller, ROI, VOXEL)
    assert_same(shard.read(path), fragments_graph)  # untouched
    shard.write(path, smaller, ROI, VOXEL, replace=True)
    assert_same(shard.read(path), smaller)  # replaced, nothing of the first kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]  # no journal, no temp


def test_a_missing_shard_is_an_error_not_an_empty_graph(tmp_path):
    with pytest.raises(FileNotFoundError, match="no region graph shard"):
        shard.read(tmp_path / "nothing.sqlite")
    assert not (tmp_path / "nothing.sqlite").exists()


def test_block_files_store_the_compact_columns(tmp_path, fragments_graph):
    fragments_graph.save_block(tmp_path / "0_0_0.npz")
    stored = np.load(tmp_path / "0_0_0.npz")
    assert "stats" not in stored and len(stored["bins"]) == len(fragments_graph.edges)
    assert_same(Graph.from_blocks(tmp_path), fragments_graph)
