"""Whole-graph vs octree agglomeration on the same region graphs: time, memory, storage.

For each volume edge (cells with membranes, noisy smooth affinities, seeded
fragments, 32^3 blocks in leaf chunks of 2^3 blocks) the leaf rows are written
as SQLite shards, then:

- flat: one job reads every shard and runs ``merge_history`` on the whole graph;
- octree: each chunk of each level is one job (``octree.agglomerate_chunk``,
  sequential here; on a cluster each is its own job), then the label jobs top
  down at threshold 0.5, whose leaf tables must equal the flat lookup.

Memory is each job's peak of traced allocations (``tracemalloc``: Python objects
and numpy arrays; SQLite's page cache, about 2 MB, is not traced), measured in a
second pass so that tracing does not slow the timed one. Storage: bytes per edge
of the leaf rows as dense statistics (2 + BINS float64), as compact block files
(``Graph.save_block``) and as SQLite shards. The memory model is fitted on the
sizes up to 256 and checked on the largest.

    .venv/bin/python bench/agglomeration.py [--sizes 128 192 256 384]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core.config import FragmentOptions
from dacapo_core.demo import cells, membranes
from dacapo_core.segment import Graph, merge_history, shard
from dacapo_core.segment.fragments import fragments
from dacapo_core.segment.hierarchy import leaf_graphs
from dacapo_core.segment.octree import Octree, agglomerate_chunk, label_chunk
from dacapo_core.stages import AgglomerateStage
from dacapo_core.superblocks import Superblocks

BLOCK, CHUNK = 32, 2
#: the segmentation's parameters: merges at or above its threshold are not needed
STAGE = AgglomerateStage(merge_function="mean", min_size=0, threshold=0.5)
THRESHOLD = STAGE.threshold


def leaves(edge: int) -> dict[tuple[int, ...], Graph]:
    rng = np.random.default_rng(edge)
    labels = cells((edge,) * 3, diameter=14, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    affs = np.clip(affs + rng.normal(scale=0.08, size=affs.shape), 0, 1).astype(np.float32)
    frags = fragments(affs, FragmentOptions(seed_distance=1))
    return leaf_graphs(frags, affs, (BLOCK,) * 3, (CHUNK,) * 3)


def job(function: Callable[[], Any], traced: bool) -> tuple[Any, float]:
    """Run one job: (its result, seconds) untraced, or (its result, peak MiB) traced."""
    if not traced:
        start = time.perf_counter()
        return function(), time.perf_counter() - start
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def flat_job(rows: Path) -> Any:
    graph = Graph.combine([shard.read(p) for p in sorted(rows.glob("*.sqlite"))])
    return merge_history(graph, "mean", 0).lookup(THRESHOLD), len(graph.edges)


def octree_jobs(tree: Octree, roi: Roi, traced: bool) -> list[dict[str, float]]:
    """Every job of the octree, level by level: per level the jobs' largest cost
    (seconds or MiB) and total seconds, and the residual passed up."""
    levels = []
    for level in range(len(tree.grids())):
        costs, residual = [], [0, 0]
        for chunk in tree.chunks(level):
            task = partial(agglomerate_chunk, tree, level, chunk, roi, Coordinate(1, 1, 1), STAGE)
            result, cost = job(task, traced)
            costs.append(cost)
            residual[0] += len(result.residual.nodes)
            residual[1] += len(result.residual.edges)
        levels.append({"jobs": len(costs), "max": max(costs), "sum": sum(costs)})
        levels[-1] |= {"residual_nodes": residual[0], "residual_edges": residual[1]}
    for level in reversed(range(len(tree.grids()))):
        for chunk in tree.chunks(level):
            _, cost = job(partial(label_chunk, tree, level, chunk, THRESHOLD), traced)
            levels[level]["labels_max"] = max(levels[level].get("labels_max", 0), cost)
    return levels


def same_lookup(tree: Octree, flat: tuple[np.ndarray, np.ndarray]) -> bool:
    nodes, segments = flat
    for chunk in tree.chunks(0):
        table = np.load(tree.labels(0, chunk))
        if not np.array_equal(table["segments"], segments[np.searchsorted(nodes, table["nodes"])]):
            return False
    return True


def measure(edge: int, work: Path) -> dict[str, Any]:
    rows = work / "rows"
    rows.mkdir(parents=True)
    roi = Roi((0, 0, 0), (edge,) * 3)
    parts = leaves(edge)
    dense = compact = stored = n_rows = 0
    for chunk, graph in parts.items():
        path = rows / f"{Superblocks.name(chunk)}.sqlite"
        shard.write(path, graph, roi, Coordinate(1, 1, 1))
        graph.save_block(work / "block.npz")
        n_rows += len(graph.edges)
        dense += graph.edges.nbytes + graph.stats.nbytes
        compact += (work / "block.npz").stat().st_size
        stored += path.stat().st_size
    grid = tuple(int(c) + 1 for c in np.max(list(parts), axis=0))
    out: dict[str, Any] = {"edge": edge, "leaves": len(parts), "rows": n_rows}
    out["bytes_per_row"] = {
        "dense": dense / n_rows,
        "npz": compact / n_rows,
        "sqlite": stored / n_rows,
    }
    (flat, out["edges"]), out["flat_s"] = job(lambda: flat_job(rows), False)
    _, out["flat_mib"] = job(lambda: flat_job(rows), True)
    timed = octree_jobs(Octree(rows, work / "timed", grid), roi, False)
    tree = Octree(rows, work / "traced", grid)
    traced = octree_jobs(tree, roi, True)
    out["same"] = same_lookup(tree, flat)
    out["octree_s"] = sum(level["sum"] for level in timed)
    out["levels"] = [
        {**t, "max_mib": m["max"], "labels_mib": m["labels_max"]}
        for t, m in zip(timed, traced, strict=True)
    ]
    return out


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """y = a * x^b, least squares in log-log."""
    b, log_a = np.polyfit(np.log(xs), np.log(ys), 1)
    return math.exp(log_a), b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 256, 384])
    args = parser.parse_args()
    results = []
    print(
        "edge^3 leaves   edges  flat s  flat MiB  octree s  "
        "per level: [jobs, largest job MiB, residual edges up]"
    )
    for edge in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(edge, Path(tmp))
        results.append(r)
        per_level = "  ".join(
            f"[{lv['jobs']}, {lv['max_mib']:.1f}, {lv['residual_edges']}]" for lv in r["levels"]
        )
        print(
            f"{edge:6d} {r['leaves']:6d} {r['edges']:7d} {r['flat_s']:7.2f} {r['flat_mib']:9.1f} "
            f"{r['octree_s']:9.2f}  {per_level}  {'equal' if r['same'] else 'DIFFERENT'}"
        )
    b = results[-1]["bytes_per_row"]
    print(
        f"bytes per stored edge row: dense {b['dense']:.0f}, "
        f"npz {b['npz']:.1f}, sqlite {b['sqlite']:.1f}"
    )
    fitted = [r for r in results if r["edge"] <= 256]
    check = results[-1]
    if len(fitted) >= 3 and check["edge"] > 256:
        volume = [r["edge"] ** 3 for r in fitted]
        for name, value in {
            "flat job MiB": lambda r: r["flat_mib"],
            "largest octree job MiB": lambda r: max(lv["max_mib"] for lv in r["levels"]),
            "top-level residual edges": lambda r: r["levels"][-2]["residual_edges"],
        }.items():
            a, exponent = fit(volume, [value(r) for r in fitted])
            predicted = a * check["edge"] ** (3 * exponent)
            error = predicted / value(check) - 1
            print(
                f"{name}: ~V^{exponent:.2f} (fit on <= 256^3); at {check['edge']}^3 predicted "
                f"{predicted:.1f}, measured {value(check):.1f} ({error:+.0%})"
            )


if __name__ == "__main__":
    main()
