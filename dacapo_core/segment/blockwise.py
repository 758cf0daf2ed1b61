"""The daisy drivers of the stages: workers per block, and the blockwise jobs."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import daisy
import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from .. import arrays, blockwise, codec
from ..config import FragmentOptions, block_shape_or_default
from ..geometry import lift
from ..stages import AgglomerateStage
from . import shard
from .agglomerate import MergeHistory, merge_history
from .fragments import fragments
from .graph import Graph, edges
from .relabel import relabel


@dataclass
class GraphWorker(blockwise.BlockWorker):
    """Shared geometry of the fragment and edge stages."""

    affs: str
    frags: str
    graph_dir: str
    total: Roi
    block: Coordinate
    options: FragmentOptions

    def setup(self) -> None:
        self.affs_array = arrays.open_array(self.affs)
        self.frags_array = arrays.open_array(self.frags, mode="r+")
        self.dims = arrays.affinity_dims(self.affs)

    def index(self, block: daisy.Block) -> tuple[int, ...]:
        return tuple((block.write_roi.begin - self.total.begin) / self.block)


class FragmentWorker(GraphWorker):
    """Fragments of a block, computed with context and cropped.

    With context, the seeds and watershed basins near a block face are the ones
    a whole-volume run would find, so objects are not chopped into slivers there.
    """

    def process(self, block: daisy.Block) -> None:
        vs = self.affs_array.voxel_size
        context = vs * lift([self.options.context] * self.dims, vs.dims, fill=0)
        read = block.write_roi.grow(context, context).intersect(self.affs_array.roi)
        affs = codec.read_affinities(self.affs_array, self.affs, read)
        local = fragments(affs, self.options, self.dims)
        crop = local[((block.write_roi - read.offset) / vs).to_slices()]
        ids, inverse = np.unique(crop, return_inverse=True)
        # local representative index -> index in the whole affinity volume
        coords = np.unravel_index(np.maximum(ids.astype(np.int64) - 1, 0), local.shape)
        shift = (read.offset - self.affs_array.roi.offset) / vs
        coords = tuple(c + o for c, o in zip(coords, shift, strict=True))
        volume = tuple(self.affs_array.roi.shape / vs)
        global_ids = np.ravel_multi_index(coords, volume).astype(np.uint64) + 1
        global_ids[ids == 0] = 0
        self.frags_array[block.write_roi] = global_ids[inverse].reshape(crop.shape)


class EdgeWorker(GraphWorker):
    def process(self, block: daisy.Block) -> None:
        vs = self.frags_array.voxel_size
        read = block.write_roi.grow(vs, Coordinate((0,) * vs.dims))
        frags = self.frags_array.to_ndarray(read)
        affs = codec.read_affinities(self.affs_array, self.affs, read)
        pairs, stats = edges(frags, affs, self.dims)
        nodes, sizes = np.unique(frags[(slice(1, None),) * frags.ndim], return_counts=True)
        inside = nodes > 0
        name = blocks_dir(self.graph_dir) / ("_".join(map(str, self.index(block))) + ".npz")
        Graph(nodes[inside], sizes[inside], pairs, stats).save_block(name)


@dataclass
class RelabelWorker(blockwise.BlockWorker):
    frags: str
    out: str
    lookup: str

    def setup(self) -> None:
        self.frags_array = arrays.open_array(self.frags)
        self.out_array = arrays.open_array(self.out, mode="r+")
        table = np.load(self.lookup)
        self.nodes, self.segments = table["nodes"], table["segments"]

    def process(self, block: daisy.Block) -> None:
        data = self.frags_array.to_ndarray(block.write_roi)
        self.out_array[block.write_roi] = relabel(data, self.nodes, self.segments)


def _grid(
    affs: Array, affs_path: str, roi: Roi | None, block_shape: Sequence[int] | None
) -> tuple[Roi, Coordinate]:
    """The ROI to segment and the block size, in world units."""
    vs = affs.voxel_size
    roi = affs.roi if roi is None else roi.snap_to_grid(vs, "grow")
    if not affs.roi.contains(roi):
        raise arrays.DataError(f"ROI {arrays.format_roi(roi)} is not inside {affs_path}")
    return roi, Coordinate(block_shape_or_default(block_shape, vs.dims)) * vs


def fragments_blockwise(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    roi: Roi | None = None,
    block_shape: Sequence[int] | None = None,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
    options: FragmentOptions | None = None,
) -> Graph:
    """Stages 1 and 2: fragments into ``frags_path``, region graph into ``graph_dir``.

    Fragments and graph left by a killed run on the same affinities with the
    same geometry and options are resumed; anything else starts afresh.
    """
    options = options or FragmentOptions()
    if options.method == "waterz" and arrays.affinity_dims(affs_path) != 3:
        raise arrays.DataError(f"{affs_path}: waterz fragments need 3D affinities (use seeded)")
    affs = arrays.open_array(affs_path)
    roi, block = _grid(affs, affs_path, roi, block_shape)
    vs = affs.voxel_size
    job = {
        "affinities": affs_path,
        "affinities_version": arrays.fingerprint(affs_path),
        "roi": arrays.format_roi(roi),
        "block": list(block),
        "fragments": options.model_dump(mode="json"),
        "affinity_dims": arrays.affinity_dims(affs_path),
    }
    if not arrays.same_attrs(frags_path, job):
        shutil.rmtree(graph_dir, ignore_errors=True)
    arrays.prepare_array(
        frags_path, roi, vs, np.uint64, chunk_shape=block / vs, attrs=job, reuse=True
    )
    stored = Path(graph_dir) / GRAPH_SHARD
    if stored.exists():  # written after every block was done
        return shard.read(stored)
    blocks_dir(graph_dir).mkdir(parents=True, exist_ok=True)
    zero = Coordinate((0,) * vs.dims)
    for stage, worker_cls, context in (
        ("fragments", FragmentWorker, zero),
        ("edges", EdgeWorker, vs),
    ):
        blockwise.run(
            stage,
            frags_path,
            total_roi=roi.grow(context, zero),
            read_roi=Roi(zero, block).grow(context, zero),
            write_roi=Roi(zero, block),
            worker=worker_cls(affs_path, frags_path, str(graph_dir), roi, block, options),
            num_workers=num_workers,
            log_dir=log_dir,
        )
    graph = Graph.from_blocks(blocks_dir(graph_dir))
    shard.write(stored, graph, roi, vs, meta={"chunk": [0] * vs.dims, "level": 0}, replace=True)
    shutil.rmtree(blocks_dir(graph_dir))
    return graph


#: the region graph of a whole volume, in its graph directory
GRAPH_SHARD = "graph.sqlite"


def blocks_dir(graph_dir: str | Path) -> Path:
    """Where the edge stage's blocks write their rows: a job's resumable scratch,
    removed once the job has stored them as one shard."""
    return Path(graph_dir) / "blocks"


def load_graph(graph_dir: str | Path) -> Graph:
    """The region graph the fragments job stored."""
    return shard.read(Path(graph_dir) / GRAPH_SHARD)


def relabel_blockwise(
    frags_path: str,
    out_path: str,
    history: MergeHistory,
    threshold: float,
    block_shape: Sequence[int] | None = None,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Stage 4: write the segmentation at ``threshold`` (resuming a killed run's)."""
    frags = arrays.open_array(frags_path)
    vs = frags.voxel_size
    block = Coordinate(block_shape_or_default(block_shape, vs.dims)) * vs
    nodes, segments = history.lookup(threshold)
    job = {
        "fragments_version": arrays.fingerprint(frags_path),
        "threshold": threshold,
        "lookup": hashlib.sha1(nodes.tobytes() + segments.tobytes()).hexdigest(),
    }
    arrays.prepare_array(
        out_path, frags.roi, vs, np.uint64, chunk_shape=block / vs, attrs=job, reuse=True
    )
    table = Path(out_path) / blockwise.TRACKING / "lookup.npz"
    table.parent.mkdir(parents=True, exist_ok=True)
    np.savez(table, nodes=nodes, segments=segments)
    zero = Coordinate((0,) * vs.dims)
    blockwise.run(
        "relabel",
        out_path,
        total_roi=frags.roi,
        read_roi=Roi(zero, block),
        write_roi=Roi(zero, block),
        worker=RelabelWorker(frags_path, out_path, str(table)),
        num_workers=num_workers,
        log_dir=log_dir,
    )


def fragment_prediction(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    options: FragmentOptions,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> Graph:
    """Rule fragments: fragments and region graph of a whole prediction, one block per
    chunk of it. Both are staged and published together; a killed job, rerun,
    resumes the blocks it had not finished."""
    chunks = arrays.open_array(affs_path).data.chunksize[1:]
    staged = [arrays.staging(p) for p in (frags_path, graph_dir)]
    graph = fragments_blockwise(
        affs_path, staged[0], staged[1], None, chunks, num_workers, log_dir, options
    )
    blockwise.publish(frags_path, graph_dir)
    return graph


def fragment_dims(frags_path: str | Path) -> int:
    """How many trailing axes the fragments' affinities connected (2 for a 2D network
    on a stack: fragments and segments per section)."""
    return int(zarr.open(str(frags_path), mode="r").attrs["affinity_dims"])


def segment_fragments(
    frags_path: str,
    graph_dir: str | Path,
    out_path: str,
    stage: AgglomerateStage,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Rule segment: agglomerate the region graph, then relabel the fragments chunk by
    chunk into a staged segmentation, published when every block is done."""
    history = merge_history(load_graph(graph_dir), stage.merge_function, stage.min_size)
    chunks = arrays.open_array(frags_path).data.chunksize
    staged = arrays.staging(out_path)
    relabel_blockwise(frags_path, staged, history, stage.threshold, chunks, num_workers, log_dir)
    blockwise.publish(out_path)


def segment_blockwise(
    affs_path: str,
    out_path: str,
    threshold: float,
    merge_function: str = "mean",
    min_size: int = 0,
    roi: Roi | None = None,
    block_shape: Sequence[int] | None = None,
    num_workers: int = 2,
    frags_path: str | None = None,
    graph_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    options: FragmentOptions | None = None,
) -> None:
    """Affinities -> seamless segmentation; fragments and graph are kept beside it.

    By default fragments go to ``{out}_fragments`` in the same container and the
    graph to ``{container stem}.{dataset}.graph`` next to the container. All
    three are staged and renamed together at the end; rerun after a kill, each
    stage does only the blocks it had not finished.
    """
    container, dataset = arrays.split_path(out_path)
    frags_path = frags_path or arrays.array_path(container, f"{dataset}_fragments")
    graph_dir = graph_dir or Path(container).parent / f"{Path(container).stem}.{dataset}.graph"
    staged = [arrays.staging(p) for p in (frags_path, graph_dir, out_path)]
    graph = fragments_blockwise(
        affs_path, staged[0], staged[1], roi, block_shape, num_workers, log_dir, options
    )
    relabel_blockwise(
        staged[0],
        staged[2],
        merge_history(graph, merge_function, min_size),
        threshold,
        block_shape,
        num_workers,
        log_dir,
    )
    blockwise.publish(frags_path, graph_dir, out_path)
