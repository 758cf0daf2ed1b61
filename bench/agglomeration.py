"""Whole-graph vs octree agglomeration on the same region graphs, at several sizes.

For each volume edge (cells with membranes, noisy smooth affinities, seeded
fragments, 16^3 blocks in chunks of 2^3 blocks), one run of each:

- time of ``merge_history`` on the whole graph and of ``hierarchical_history``
  over the chunks (one process here; on a cluster each chunk is its own job);
- edges held: the whole graph, against the largest graph one chunk job holds
  (its leaf rows, or its children's residuals combined), per octree level;
- whether the partitions agree at every threshold of the default grid.

Held edges stand in for memory: ``merge_history`` costs about 1.1 kB per edge
(a dict of dicts and a heap, measured in issue 14), so a job's memory follows
its largest graph. The last size checks what the smaller ones suggest.

    .venv/bin/python bench/agglomeration.py [--sizes 64 128 192 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core.config import FragmentOptions, WatershedConfig
from dacapo_core.demo import cells, membranes
from dacapo_core.segment import Graph, fragments, merge_history
from dacapo_core.segment.hierarchy import hierarchical_history, leaf_graphs

BLOCK, CHUNK = 16, 2


def graphs(edge: int) -> tuple[Graph, dict]:
    rng = np.random.default_rng(edge)
    labels = cells((edge,) * 3, diameter=14, rng=rng)
    labels[membranes(labels)] = 0
    affs = seg_to_affgraph(labels.astype(np.int32), -np.eye(3, dtype=int)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    affs = np.clip(affs + rng.normal(scale=0.08, size=affs.shape), 0, 1).astype(np.float32)
    frags = fragments(affs, FragmentOptions(seed_distance=1))
    leaves = leaf_graphs(frags, affs, (BLOCK,) * 3, (CHUNK,) * 3)
    return Graph.combine(list(leaves.values())), leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 192, 256])
    args = parser.parse_args()
    thresholds = WatershedConfig().thresholds
    print("edge^3  chunks  edges   flat s  octree s  largest job (edges) per level   residual up")
    for edge in args.sizes:
        whole, leaves = graphs(edge)
        start = time.perf_counter()
        flat = merge_history(whole, "mean", 0)
        flat_s = time.perf_counter() - start
        start = time.perf_counter()
        tree, levels = hierarchical_history(leaves, "mean", 0, max(thresholds))
        tree_s = time.perf_counter() - start
        same = all(np.array_equal(flat.lookup(t)[1], tree.lookup(t)[1]) for t in thresholds)
        held = [level.largest for level in levels]
        residual = [level.residual_edges for level in levels[:-1]]
        print(
            f"{edge:6d}  {len(leaves):6d}  {len(whole.edges):6d}  {flat_s:6.2f}  {tree_s:8.2f}  "
            f"{str(held):32s}  {residual}  {'equal' if same else 'DIFFERENT'}"
        )


if __name__ == "__main__":
    main()
