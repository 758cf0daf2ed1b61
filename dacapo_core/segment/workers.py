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
from .faces import block_graph, faces_path, save_faces
from .fragments import FragmentOptions, fragments
from .graph import Graph, long_range_context, long_range_edges
from .octree import Octree
from .relabel import relabel


def blocks_dir(graph_dir: str | Path, name: str) -> Path:
    """Where the blocks of superblock ``name`` write their rows and faces: resumable
    scratch, removed once the edge job has stored them as the superblock's shard."""
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
        window = self.block + self.context * 2  # what a fragment block reads
        self.affs_array = arrays.open_zarr(self.affs).cached(window)
        self.frags_array = arrays.open_zarr(self.frags, mode="r+")
        self.dims = arrays.affinity_dims(self.affs)

    def index(self, block: daisy.Block) -> tuple[int, ...]:
        return tuple((block.write_roi.begin - self.plan.roi.begin) / self.block)

    def rows(self, block: daisy.Block) -> Path:
        """Where the block's rows go: its superblock's scratch, named by the block's index."""
        superblock = self.plan.name(self.plan.index_of(block.write_roi.begin))
        return blocks_dir(self.graph_dir, superblock) / Superblocks.name(self.index(block))


class FragmentWorker(GraphWorker):
    """Fragments of a block, computed with context and cropped; then, from the same
    read, the block's own rows and faces (``faces``), which the edge stage joins.

    With context, the seeds and watershed basins near a block face are the ones
    a whole-volume run would find, so objects are not chopped into slivers there.
    """

    def process(self, block: daisy.Block) -> None:
        vs = self.affs_array.voxel_size
        read = block.write_roi.grow(self.context, self.context).intersect(self.affs_array.roi)
        affs = codec.read_affinities(self.affs_array, self.affs, read)
        origin = (read.offset - self.affs_array.roi.offset) / vs
        ids = fragments(affs, self.options, self.dims, origin, self.affs_array.roi.shape / vs)
        crop = ((block.write_roi - read.offset) / vs).to_slices()
        own, own_affs = ids[crop], affs[(slice(0, self.dims), *crop)]
        self.frags_array[block.write_roi] = own
        rows = self.rows(block)
        save_faces(faces_path(rows.parent, self.index(block)), own, own_affs, self.dims)
        block_graph(own, own_affs, self.dims).save_block(rows.with_suffix(".npz"))


class LongRangeWorker(GraphWorker):
    """A block's long-range edges: pairs of the long-range offsets from its voxels, with
    the fragments read around it (all blocks' fragments must be done)."""

    def setup(self) -> None:
        super().setup()
        self.offsets = arrays.long_range_offsets(self.affs)

    def process(self, block: daisy.Block) -> None:
        vs = self.frags_array.voxel_size
        affs = codec.read_affinities(self.affs_array, self.affs, block.write_roi)
        behind, ahead = long_range_context(self.offsets)
        read = block.write_roi.grow(vs * Coordinate(behind), vs * Coordinate(ahead))
        frags = arrays.read(self.frags_array, read)
        long_range = long_range_edges(frags, affs[self.dims :], self.offsets, behind)
        Graph.of_edges(long_range=long_range).save_block(self.rows(block).with_suffix(".long.npz"))


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
