"""Mutex watershed on the region graph: long-range edges made blockwise equal the whole
volume's, so does its segmentation; a long-range repulsion splits what the
agglomeration merges; the sweep, the pins and the config around it."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core import arrays, config
from dacapo_core.config import FragmentOptions
from dacapo_core.demo import cells, membranes
from dacapo_core.evaluate import evaluate
from dacapo_core.segment import (
    Graph,
    edges,
    fragments_blockwise,
    load_graph,
    merge_history,
    segment_fragments,
)
from dacapo_core.segment.graph import BINS, LongRange, long_range_context, long_range_edges
from dacapo_core.segment.mutex import mutex_lookup
from dacapo_core.segment.relabel import relabel
from dacapo_core.select import apply_choice, apply_inputs, load_scores, select_best
from dacapo_core.stages import ChoiceStage, MutexStage, segment_stage

NEIGHBORHOOD = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0], [0, 3, 0], [0, 0, 3]]


def whole_long_range(frags: np.ndarray, affs: np.ndarray, offsets: list) -> LongRange:
    """The long-range edges of a whole volume: zeros (no fragment) around it."""
    behind, ahead = long_range_context(offsets)
    padded = np.pad(frags, list(zip(behind, ahead, strict=True)))
    return long_range_edges(padded, affs, offsets, behind)


def test_long_range_edges_of_blocks_add_up_to_the_whole_volume():
    """Blocks read their context (both sides for an offset with a negative entry) and
    count the pairs whose first voxel they hold: merged, they equal the whole."""
    rng = np.random.default_rng(5)
    frags = rng.integers(0, 9, (12, 10, 9)).astype(np.uint64)
    offsets = [[3, 0, 0], [0, 2, 0], [1, -2, 1]]
    affs = rng.uniform(0, 1, (len(offsets), *frags.shape))
    behind, ahead = long_range_context(offsets)
    assert (behind, ahead) == ([3, 2, 1], [0, 2, 0])
    padded = np.pad(frags, list(zip(behind, ahead, strict=True)))
    parts = []
    for z, y in np.ndindex(3, 2):  # blocks of 4 x 5 x 9 voxels
        block = (slice(4 * z, 4 * z + 4), slice(5 * y, 5 * y + 5), slice(0, 9))
        read = tuple(
            slice(s.start, s.stop + b + a) for s, b, a in zip(block, behind, ahead, strict=True)
        )
        parts.append(long_range_edges(padded[read], affs[(slice(None), *block)], offsets, behind))
    blocks = LongRange.combine(parts)
    whole = whole_long_range(frags, affs, offsets)
    assert len(whole.edges) == 28 and whole.counts.sum() > 500  # every pair of 8 ids
    assert np.array_equal(blocks.edges, whole.edges)
    assert np.array_equal(blocks.sums, whole.sums)  # exact: sums of multiples of 2^-24
    assert np.array_equal(blocks.counts, whole.counts)


def chain(long_affinity: float | None) -> Graph:
    """Fragments 10 - 20 - 30 touching in a row with mean affinity 0.7, and 10 and 30
    joined by a long-range edge of ``long_affinity`` (None: no such edge)."""
    stats = np.zeros((2, 2 + BINS))
    stats[:, :2] = [7.0, 10]
    stats[:, 2 + int(0.7 * BINS)] = 10
    long = None
    if long_affinity is not None:
        long = LongRange(np.array([[10, 30]], np.uint64), np.array([long_affinity * 4]), [4])
    return Graph(
        np.array([10, 20, 30], np.uint64),
        np.array([50, 50, 50]),
        np.array([[10, 20], [20, 30]], np.uint64),
        stats,
        long_range=long,
    )


def test_a_strong_long_range_repulsion_splits_what_the_agglomeration_merges():
    graph = chain(long_affinity=0.05)
    merged = merge_history(graph, "mean").lookup(0.5)[1]
    assert merged.tolist() == [10, 10, 10]  # both boundaries score 0.3 < 0.5: one segment
    assert mutex_lookup(chain(None), bias=0.5)[1].tolist() == [10, 10, 10]
    # the repulsion (|0.05 - 0.5|) comes before both attractions (0.2): 20 joins one side
    assert mutex_lookup(graph, bias=0.5)[1].tolist() == [10, 10, 30]


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """Cells with membranes; smooth, noisy affinities of the default neighbourhood."""
    rng = np.random.default_rng(11)
    labels = cells((32, 48, 48), diameter=14, rng=rng)
    labels[membranes(labels)] = 0
    gunpowder = -np.array(NEIGHBORHOOD)  # gunpowder compares p with p + n
    affs = seg_to_affgraph(labels.astype(np.int32), gunpowder).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    affs = np.clip(affs + rng.normal(scale=0.05, size=affs.shape), 0, 1).astype(np.float32)
    root = tmp_path_factory.mktemp("mutex")
    path = f"{root}/v.zarr/affs"
    arrays.write_numpy(path, affs, Coordinate(4, 4, 4), Coordinate(0, 8, -4))
    zarr.open(path, mode="r+").attrs["neighborhood"] = NEIGHBORHOOD
    return root, path, labels, affs


def test_blockwise_graph_and_mutex_segmentation_equal_the_whole_volume(volume):
    """The edge stage's long-range edges (stored in the shard) equal those of the whole
    fragment volume, and so does the mutex watershed segmentation made from them."""
    root, affs_path, labels, affs = volume
    frags_path, graph_dir = f"{root}/v.zarr/frags", root / "graph"
    options = FragmentOptions(long_range=True)
    fragments_blockwise(affs_path, frags_path, graph_dir, None, (16, 24, 24), 1, options=options)
    stored = load_graph(graph_dir)
    frags = arrays.read(arrays.open_array(frags_path), arrays.open_array(frags_path).roi)
    nn_pairs, nn_stats = edges(np.pad(frags, [(1, 0)] * 3), np.pad(affs, [(0, 0)] + [(1, 0)] * 3))
    whole = Graph(stored.nodes, stored.sizes, nn_pairs, nn_stats, long_range=None)
    whole_long = whole_long_range(frags, affs[3:], NEIGHBORHOOD[3:])
    assert np.array_equal(stored.edges, whole.edges) and np.allclose(stored.stats, whole.stats)
    assert len(whole_long.edges) > len(whole.edges)  # offsets of 3 join more fragments
    assert np.array_equal(stored.long_range.edges, whole_long.edges)
    assert np.array_equal(stored.long_range.sums, whole_long.sums)
    assert np.array_equal(stored.long_range.counts, whole_long.counts)
    (shard,) = (graph_dir / "rows").glob("*.sqlite")
    with sqlite3.connect(shard) as con:
        assert con.execute("SELECT count(*) FROM long_edges").fetchone() == (len(whole_long.edges),)

    whole = Graph(whole.nodes, whole.sizes, whole.edges, whole.stats, long_range=whole_long)
    out = f"{root}/v.zarr/mutex"
    segment_fragments(frags_path, graph_dir, out, MutexStage(bias=0.5), num_workers=1)
    segmentation = arrays.read(arrays.open_array(out), arrays.open_array(out).roi)
    expected = relabel(frags, *mutex_lookup(whole, 0.5))
    assert np.array_equal(segmentation, expected)
    assert len(np.unique(segmentation)) > 10
    inside = labels > 0  # membranes hold slivers no one scores
    assert evaluate(np.where(inside, segmentation, 0), labels)["voi"] < 1.0


def test_without_long_range_the_graph_and_its_shards_are_as_before(volume):
    root, affs_path, _, _ = volume
    graph_dir = root / "graph_nn"
    fragments_blockwise(affs_path, f"{root}/v.zarr/frags_nn", graph_dir, None, (32, 48, 48), 1)
    assert load_graph(graph_dir).long_range is None
    (shard,) = (graph_dir / "rows").glob("*.sqlite")
    with sqlite3.connect(shard) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "long_edges" not in tables


def test_long_range_edges_need_one_superblock(volume):
    root, affs_path, _, _ = volume
    with pytest.raises(arrays.DataError, match="one superblock"):
        fragments_blockwise(
            affs_path,
            f"{root}/v.zarr/frags_sb",
            root / "graph_sb",
            None,
            (16, 16, 16),
            1,
            options=FragmentOptions(long_range=True),
            superblock_shape=(16, 48, 48),
        )


def minimal(**post) -> dict:
    return {
        "datasets": {"a": {"container": "x.zarr", "raw": "raw", "gt": "gt"}},
        "runs": {"r": {"datasplit": {"train": ["a"], "validate": ["a"]}, "post_processor": post}},
    }


def test_biases_add_mutex_parameter_sets_and_long_range_edges():
    default = config.parse(minimal()).runs["r"].post_processor
    assert default.biases == [] and not default.fragments.long_range
    assert all("bias" not in p for p in default.parameter_sets())
    post = config.parse(minimal(biases=[0.7, 0.3])).runs["r"].post_processor
    assert post.fragments.long_range
    assert post.parameter_sets() == default.parameter_sets() + [{"bias": 0.3}, {"bias": 0.7}]
    assert isinstance(segment_stage({"bias": 0.3}), MutexStage)
    assert segment_stage(default.parameter_sets()[0]).threshold == 0.05


@pytest.mark.parametrize(
    ("post", "pins", "expected"),
    [
        ({"biases": [0.5], "fragments": {"long_range": False}}, {}, "fragments.long_range"),
        ({"biases": [1.5]}, {}, "biases"),
        ({}, {"bias": 0.5}, r"apply\[0\].bias: the run's region graph has no long-range"),
        ({"biases": [0.5]}, {"bias": 0.5, "threshold": 0.4}, r"apply\[0\].bias: .*threshold"),
        ({"biases": [0.5]}, {"threshold": 0.4}, r"apply\[0\]: .*pin all of"),
        ({"biases": [0.5]}, {"superblock_shape": [64] * 3}, r"apply\[0\].superblock_shape"),
    ],
)
def test_mutex_config_mistakes_are_one_line_naming_the_key(post, pins, expected):
    data = minimal(**post)
    data["apply"] = [{"run": "r", "input": "a", **pins}]
    with pytest.raises(config.ConfigError, match=expected) as error:
        config.parse(data)
    assert "\n" not in str(error.value)


def test_selection_and_apply_choose_a_mutex_parameter_set(tmp_path):
    sets = [{"merge_function": "mean", "min_size": 0, "threshold": 0.5}, {"bias": 0.5}]
    results = [
        {"parameters": p, "scores": {"voi": v, "voi_split": v, "voi_merge": 0.0, "arand": v}}
        for p, v in zip(sets, [1.0, 0.5], strict=True)
    ]
    scores = tmp_path / "results/r/validation/10/scores.json"
    arrays.write_json(scores, {"iteration": 10, "datasets": {"a": {"results": results}}})
    best = select_best(load_scores([scores]))
    assert best["voi"]["parameters"] == {"bias": 0.5}
    arrays.write_json(tmp_path / "results/r/best.json", best)
    chosen = apply_choice(ChoiceStage(criterion="voi"), best=tmp_path / "results/r/best.json")
    assert chosen == {"iteration": 10, "parameters": {"bias": 0.5}}
    pinned = ChoiceStage(criterion="voi", iteration=10, bias=0.3)
    assert apply_inputs(pinned, "r") == {}  # a pinned bias is a whole parameter set
    assert apply_choice(pinned) == {"iteration": 10, "parameters": {"bias": 0.3}}
