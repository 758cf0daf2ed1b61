"""Seamless blockwise watershed: fragments, a region graph, one global agglomeration.

Each stage is a module of plain array code (``fragments``, ``graph``,
``agglomerate``, ``relabel``) on in-memory volumes; ``blockwise`` runs them over
daisy blocks of zarr arrays.

1. ``FragmentWorker``: watershed fragments per block (seeded, or waterz's), with
   context, ids unique across blocks.
2. ``EdgeWorker``: region-graph edges per block, reading one voxel of context on
   the negative faces, so that edges across block faces exist. Each block writes
   its rows as scratch; each superblock's rows are stored as one SQLite shard
   (``shard``, docs/graph.md).
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

from . import shard
from .agglomerate import MergeHistory, agglomerate, merge_history, scoring
from .blockwise import (
    EdgeWorker,
    FragmentWorker,
    GraphWorker,
    RelabelWorker,
    fragment_dims,
    fragment_prediction,
    fragments_blockwise,
    load_graph,
    relabel_part,
    segment_blockwise,
    segment_fragments,
)
from .fragments import fragments
from .graph import BINS, Graph, edges
from .hierarchy import hierarchical_history
from .relabel import relabel

__all__ = [
    "BINS",
    "EdgeWorker",
    "FragmentWorker",
    "Graph",
    "GraphWorker",
    "MergeHistory",
    "RelabelWorker",
    "agglomerate",
    "segment_fragments",
    "edges",
    "fragment_prediction",
    "fragment_dims",
    "fragments",
    "fragments_blockwise",
    "hierarchical_history",
    "load_graph",
    "merge_history",
    "relabel",
    "relabel_part",
    "scoring",
    "segment_blockwise",
    "shard",
]
