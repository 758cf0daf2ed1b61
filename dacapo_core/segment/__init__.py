"""Seamless blockwise watershed: fragments, a region graph, one global agglomeration.

Each stage is a module of plain array code (``fragments``, ``graph``,
``agglomerate``, ``relabel``) on in-memory volumes; ``workers`` apply them to daisy
blocks of zarr arrays, and ``blockwise`` runs the workers as jobs.

1. ``FragmentWorker``: watershed fragments per block (seeded, or waterz's), with
   context, ids unique across blocks; from the same read, the block's own rows
   (fragment sizes, edges between its voxels) and its face planes (``faces``).
2. The edge stage joins each block's first plane with the last plane of the block
   behind it into the edges across their face (``LongRangeWorker`` adds the
   long-range edges blockwise where wanted). Blocks write their rows as scratch;
   each superblock's rows are stored as one SQLite shard (``shard``, docs/graph.md).
3. Agglomeration (mean or a quantile of affinities, small fragments first):
   ``merge_history`` records the whole graph's merges once, so that any threshold
   is a prefix of it (the validation sweep); ``hierarchy`` / ``octree`` make the
   same merges chunk by chunk over the superblocks' octree, no job holding the
   whole graph, and give each superblock the lookup table of its fragments.
   Or ``mutex``: mutex watershed of the graph, its long-range edges repelling
   (within one superblock).
4. ``RelabelWorker``: fragments -> segments through a lookup table, per block.

A volume is cut into superblocks (``dacapo_core.superblocks``), one job each on
a cluster; by default it is one superblock.

Because agglomeration is decided once for the whole graph, an object that
crosses block faces gets one label, and sweeping thresholds costs one lookup
table each instead of a new segmentation.

Affinities that connect only the trailing axes (a 2D network's prediction of a
3D stack) give fragments per section and no edges between sections, so every
segment lies in one section, as the per-section labels it was trained on.
"""

import importlib
from typing import Any

#: exported name -> its module, loaded on first use, so that a block worker process
#: imports only the modules its class needs (its start-up, issue 19). Functions named
#: as their module (``fragments``, ``relabel``, ``agglomerate``) are imported from it.
_EXPORTS = {
    "shard": "shard",
    **dict.fromkeys(["MergeHistory", "merge_history", "scoring"], "agglomerate"),
    **dict.fromkeys(
        ["FragmentWorker", "GraphWorker", "LongRangeWorker", "RelabelWorker"], "workers"
    ),
    **dict.fromkeys(
        [
            "fragment_dims",
            "fragment_prediction",
            "fragments_blockwise",
            "load_graph",
            "relabel_part",
            "segment_blockwise",
            "segment_fragments",
        ],
        "blockwise",
    ),
    "FragmentOptions": "fragments",
    **dict.fromkeys(["BINS", "Graph", "edges"], "graph"),
    "hierarchical_history": "hierarchy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
    return module if name == _EXPORTS[name] else getattr(module, name)
