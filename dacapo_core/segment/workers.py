"""The daisy workers of the segmentation stages: what each does to one block.

This module imports no config beyond the fragment options: a worker process
unpickles its worker, which imports this module and its kernels only (start-up,
issue 19); the jobs that run them are in ``blockwise``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import daisy
import numpy as np
from funlib.geometry import Coordinate

from .. import arrays, blockwise, codec
from ..superblocks import Superblocks
from .fragments import FragmentOptions, fragments
from .graph import Graph, LongRange, edges, long_range_context, long_range_edges
from .octree import Octree
from .relabel import relabel


def blocks_dir(graph_dir: str | Path, name: str) -> Path:
    """Where the edge stage's blocks of superblock ``name`` write their rows: its job's
    resumable scratch, removed once the job has stored them as the superblock's shard."""
    return Path(graph_dir) / "blocks" / name


@dataclass
class GraphWorker(blockwise.BlockWorker):
    """Shared geometry of the fragment and edge stages."""

    affs: str
    frags: str
    graph_dir: str
    plan: Superblocks
    block: Coordinate
    options: FragmentOptions
    #: what the fragment stage reads around a block (world units), from the options by
    #: the job (``geometry.lift``: geometry imports the config, which workers do not)
    context: Coordinate

    def setup(self) -> None:
        self.affs_array = arrays.open_zarr(self.affs)
        self.frags_array = arrays.open_zarr(self.frags, mode="r+")
        self.dims = arrays.affinity_dims(self.affs)

    def index(self, block: daisy.Block) -> tuple[int, ...]:
        return tuple((block.write_roi.begin - self.plan.roi.begin) / self.block)


class FragmentWorker(GraphWorker):
    """Fragments of a block, computed with context and cropped.

    With context, the seeds and watershed basins near a block face are the ones
    a whole-volume run would find, so objects are not chopped into slivers there.
    """

    def process(self, block: daisy.Block) -> None:
        vs = self.affs_array.voxel_size
        read = block.write_roi.grow(self.context, self.context).intersect(self.affs_array.roi)
        affs = codec.read_affinities(self.affs_array, self.affs, read)
        origin = (read.offset - self.affs_array.roi.offset) / vs
        ids = fragments(affs, self.options, self.dims, origin, self.affs_array.roi.shape / vs)
        self.frags_array[block.write_roi] = ids[((block.write_roi - read.offset) / vs).to_slices()]


class EdgeWorker(GraphWorker):
    """Edges of a block's voxels with those behind them (nearest neighbours; with
    ``long_range``, also the pairs of the long-range offsets, read with their context)."""

    def setup(self) -> None:
        super().setup()
        self.offsets = arrays.long_range_offsets(self.affs) if self.options.long_range else []

    def process(self, block: daisy.Block) -> None:
        vs = self.frags_array.voxel_size
        read = block.write_roi.grow(vs, Coordinate((0,) * vs.dims))
        frags = arrays.read(self.frags_array, read)
        affs = codec.read_affinities(self.affs_array, self.affs, read)
        pairs, stats = edges(frags, affs, self.dims)
        inner = (slice(1, None),) * frags.ndim
        nodes, sizes = np.unique(frags[inner], return_counts=True)
        inside = nodes > 0
        superblock = self.plan.name(self.plan.index_of(block.write_roi.begin))
        rows = blocks_dir(self.graph_dir, superblock)
        rows.mkdir(parents=True, exist_ok=True)
        name = rows / ("_".join(map(str, self.index(block))) + ".npz")
        long_range = self.long_range(block, affs[(slice(self.dims, None), *inner)])
        Graph(nodes[inside], sizes[inside], pairs, stats, long_range=long_range).save_block(name)

    def long_range(self, block: daisy.Block, affs: np.ndarray) -> LongRange | None:
        """The block's long-range edges (``affs``: its long-range channels), if wanted."""
        if not self.offsets:
            return None
        vs = self.frags_array.voxel_size
        behind, ahead = long_range_context(self.offsets)
        read = block.write_roi.grow(vs * Coordinate(behind), vs * Coordinate(ahead))
        frags = arrays.read(self.frags_array, read)
        return long_range_edges(frags, affs, self.offsets, behind)


@dataclass
class RelabelWorker(blockwise.BlockWorker):
    """Fragments -> segments, each block through the lookup table of its superblock
    (the fragments occurring in it; tables are read as blocks need them)."""

    frags: str
    out: str
    plan: Superblocks
    tables: Octree

    def setup(self) -> None:
        self.frags_array = arrays.open_zarr(self.frags)
        self.out_array = arrays.open_zarr(self.out, mode="r+")
        self.table: tuple[tuple[int, ...], np.ndarray, np.ndarray] | None = None

    def lookup(self, index: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if self.table is None or self.table[0] != index:
            table = np.load(self.tables.labels(0, index))
            self.table = (index, table["nodes"], table["segments"])
        return self.table[1], self.table[2]

    def process(self, block: daisy.Block) -> None:
        data = arrays.read(self.frags_array, block.write_roi)
        table = self.lookup(self.plan.index_of(block.write_roi.begin))
        self.out_array[block.write_roi] = relabel(data, *table)
