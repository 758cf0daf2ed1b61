"""The blockwise jobs of the stages: each runs its worker (``workers``) over the blocks
of a part of the volume, resumably, and stores what the blocks made."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi

from .. import arrays, blockwise
from ..config import block_shape_or_default
from ..geometry import lift
from ..stages import AgglomerateStage, MutexStage, SegmentStage
from ..superblocks import Superblocks
from . import shard
from .faces import face_graph, faces_in
from .fragments import FragmentOptions
from .graph import Graph
from .mutex import mutex_lookup
from .octree import Octree, agglomerate_chunk, label_chunk, save_labels
from .workers import FragmentWorker, GraphWorker, LongRangeWorker, RelabelWorker, blocks_dir

if TYPE_CHECKING:
    from funlib.persistence import Array


def _grid(
    affs: Array, affs_path: str, roi: Roi | None, block_shape: Sequence[int] | None
) -> tuple[Roi, Coordinate]:
    """The ROI to segment and the block size, in world units."""
    vs = affs.voxel_size
    roi = affs.roi if roi is None else roi.snap_to_grid(vs, "grow")
    if not affs.roi.contains(roi):
        raise arrays.DataError(f"ROI {arrays.format_roi(roi)} is not inside {affs_path}")
    return roi, Coordinate(block_shape_or_default(block_shape, vs.dims)) * vs


def rows_dir(graph_dir: str | Path) -> Path:
    """The region graph's leaf shards, one per superblock (``rows/{z}_{y}_{x}.sqlite``)."""
    return Path(graph_dir) / "rows"


def load_graph(graph_dir: str | Path) -> Graph:
    """The whole region graph the fragments jobs stored (validation volumes: small)."""
    shards = sorted(rows_dir(graph_dir).glob("*.sqlite"))
    if not shards:
        raise FileNotFoundError(f"{graph_dir}: no region graph shards")
    return Graph.combine([shard.read(p) for p in shards])


def prepare_fragments(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    roi: Roi | None = None,
    block_shape: Sequence[int] | None = None,
    options: FragmentOptions | None = None,
    superblock_shape: Sequence[int] | None = None,
) -> Superblocks:
    """Create the (staged) fragments array, or keep the one a killed run left on the
    same affinities with the same geometry and options (with its graph); anything
    else starts afresh. Returns the superblocks (``superblock_shape`` voxels, whole
    blocks; default one) whose shards the graph will have."""
    options = options or FragmentOptions()
    if options.method == "waterz" and arrays.affinity_dims(affs_path) != 3:
        raise arrays.DataError(f"{affs_path}: waterz fragments need 3D affinities (use seeded)")
    affs = arrays.open_array(affs_path)
    roi, block = _grid(affs, affs_path, roi, block_shape)
    vs = affs.voxel_size
    plan = Superblocks.plan(roi, vs, block / vs, superblock_shape)
    if options.long_range and len(plan.indices()) > 1:  # edges would read ahead of a job
        raise arrays.DataError(f"{frags_path}: long-range edges need one superblock")
    job = {
        "affinities": affs_path,
        "affinities_version": arrays.fingerprint(affs_path),
        "roi": arrays.format_roi(roi),
        "block": list(block),
        "superblock": list(plan.shape),
        "fragments": options.model_dump(mode="json"),
        "affinity_dims": arrays.affinity_dims(affs_path),
    }
    if not arrays.same_attrs(frags_path, job):
        shutil.rmtree(graph_dir, ignore_errors=True)
    arrays.prepare_array(
        frags_path, roi, vs, np.uint64, chunk_shape=block / vs, attrs=job, reuse=True
    )
    return plan


def fragments_plan(frags_path: str | Path) -> Superblocks:
    """The superblocks ``prepare_fragments`` recorded in the fragments array."""
    attrs = zarr.open(str(frags_path), mode="r").attrs
    return Superblocks(arrays.parse_roi(attrs["roi"]), Coordinate(attrs["superblock"]))


def _graph_worker(
    cls: type[GraphWorker], affs_path: str, frags_path: str, graph_dir: str | Path
) -> GraphWorker:
    """A fragment or long-range worker with the geometry and options ``prepare_fragments``
    recorded in the fragments array."""
    attrs = zarr.open(str(frags_path), mode="r").attrs
    options = FragmentOptions.model_validate(attrs["fragments"])
    vs = Coordinate(attrs["voxel_size"])
    context = lift([options.context] * attrs["affinity_dims"], vs.dims, fill=0) * vs
    return cls(
        affs_path,
        frags_path,
        str(graph_dir),
        fragments_plan(frags_path),
        Coordinate(attrs["block"]),
        options,
        context,
    )


def _stored(graph_dir: str | Path, plan: Superblocks, part: Roi) -> list[Path]:
    return [rows_dir(graph_dir) / f"{plan.name(i)}.sqlite" for i in plan.within(part)]


def fragments_part(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    part: Roi,
    stage: str = "fragments",
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Stage 1 on ``part`` (whole superblocks: one, or the volume): its blocks'
    fragments, read with context from the affinities around it. ``stage`` names
    its block tracking."""
    worker = _graph_worker(FragmentWorker, affs_path, frags_path, graph_dir)
    if all(p.exists() for p in _stored(graph_dir, worker.plan, part)):
        return  # their edges are stored: their fragments were done
    zero = Coordinate((0,) * part.dims)
    blockwise.run(
        stage,
        frags_path,
        total_roi=part,
        read_roi=Roi(zero, worker.block),
        write_roi=Roi(zero, worker.block),
        worker=worker,
        num_workers=num_workers,
        log_dir=log_dir,
    )


def edges_part(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    part: Roi,
    stage: str = "edges",
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Stage 2 on ``part``: each of its superblocks' rows (its blocks' own, the edges
    across their faces, and with ``long_range`` a blockwise pass of those) stored as
    one shard, and the blocks' scratch removed. The faces behind a superblock are read
    from the fragments, so the superblocks behind must have theirs."""
    worker = _graph_worker(LongRangeWorker, affs_path, frags_path, graph_dir)
    plan = worker.plan
    if all(p.exists() for p in _stored(graph_dir, plan, part)):
        return
    if worker.options.long_range:
        zero = Coordinate((0,) * part.dims)
        block = Roi(zero, worker.block)
        blockwise.run(stage, frags_path, part, block, block, worker, num_workers, log_dir)
    frags = arrays.open_zarr(frags_path)
    for index, stored in zip(plan.within(part), _stored(graph_dir, plan, part), strict=True):
        blocks = blocks_dir(graph_dir, plan.name(index))
        behind = partial(_plane_behind, frags, plan.roi.begin, worker.block)
        across = face_graph(faces_in(blocks), behind)
        meta = {"superblock": list(index), "part": arrays.format_roi(plan.roi_of(index))}
        stored.parent.mkdir(parents=True, exist_ok=True)
        graph = Graph.from_blocks(blocks, [across])
        shard.write(stored, graph, plan.roi, frags.voxel_size, meta=meta, replace=True)
        shutil.rmtree(blocks)


def _plane_behind(
    frags: arrays.ZarrArray, begin: Coordinate, block: Coordinate, index: Sequence[int], axis: int
) -> np.ndarray:
    """The fragments of the voxel plane just behind block ``index`` along ``axis``."""
    vs = frags.voxel_size
    own = Roi(begin + block * Coordinate(index), block).intersect(frags.roi)
    step = Coordinate(vs[a] if a == axis else 0 for a in range(vs.dims))
    shape = Coordinate(vs[a] if a == axis else own.shape[a] for a in range(vs.dims))
    return arrays.read(frags, Roi(own.begin - step, shape)).squeeze(axis)


def fragments_blockwise(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    roi: Roi | None = None,
    block_shape: Sequence[int] | None = None,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
    options: FragmentOptions | None = None,
    superblock_shape: Sequence[int] | None = None,
) -> Superblocks:
    """Stages 1 and 2 on the whole volume: fragments into ``frags_path``, region graph
    into ``graph_dir``, one shard per superblock (default: one).

    Fragments and graph left by a killed run on the same affinities with the
    same geometry and options are resumed; anything else starts afresh.
    """
    plan = prepare_fragments(
        affs_path, frags_path, graph_dir, roi, block_shape, options, superblock_shape
    )
    fragments_part(affs_path, frags_path, graph_dir, plan.roi, "fragments", num_workers, log_dir)
    edges_part(affs_path, frags_path, graph_dir, plan.roi, "edges", num_workers, log_dir)
    return plan


def prepare_segmentation(frags_path: str, out_path: str, stage: SegmentStage) -> Roi:
    """Create the (staged) segmentation array, or keep the one a killed run left for
    the same fragments and parameters (with its octree); returns its ROI."""
    frags = arrays.open_array(frags_path)
    job = {"fragments_version": arrays.fingerprint(frags_path), **stage.model_dump(mode="json")}
    if not arrays.same_attrs(out_path, job):  # its octree's shards are for other inputs
        shutil.rmtree(out_path, ignore_errors=True)
    chunks = Coordinate(frags.data.chunksize)
    arrays.prepare_array(
        out_path, frags.roi, frags.voxel_size, np.uint64, chunk_shape=chunks, attrs=job, reuse=True
    )
    return frags.roi


def octree_of(graph_dir: str | Path, plan: Superblocks, work: str | Path) -> Octree:
    """The octree over the superblocks' shards, its files under ``work``."""
    return Octree(rows_dir(graph_dir), Path(work), plan.grid)


def relabel_part(
    frags_path: str,
    out_path: str,
    tree: Octree,
    part: Roi,
    stage: str = "relabel",
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Stage 4 on ``part`` (whole superblocks): fragments -> segments, each block
    through its superblock's lookup table (the octree's leaf labels)."""
    frags = arrays.open_array(frags_path)
    block = Coordinate(frags.data.chunksize) * frags.voxel_size
    zero = Coordinate((0,) * block.dims)
    blockwise.run(
        stage,
        out_path,
        total_roi=part,
        read_roi=Roi(zero, block),
        write_roi=Roi(zero, block),
        worker=RelabelWorker(frags_path, out_path, fragments_plan(frags_path), tree),
        num_workers=num_workers,
        log_dir=log_dir,
    )


def segment_fragments(
    frags_path: str,
    graph_dir: str | Path,
    out_path: str,
    stage: SegmentStage,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Rule segment: agglomerate the region graph over the octree of its superblocks
    (chunk jobs up, label jobs down, in sequence; a chunk a killed run finished is
    not redone), or cluster it by mutex watershed (one superblock), then relabel the
    fragments into a staged segmentation, published when every block is done."""
    staged = arrays.staging(out_path)
    roi = prepare_segmentation(frags_path, staged, stage)
    plan = fragments_plan(frags_path)
    tree = octree_of(graph_dir, plan, Path(staged) / blockwise.TRACKING / "octree")
    if isinstance(stage, MutexStage):
        mutex_labels(graph_dir, plan, tree, stage.bias)
    else:
        octree_labels(tree, roi, arrays.open_array(frags_path).voxel_size, stage)
    relabel_part(frags_path, staged, tree, roi, "relabel", num_workers, log_dir)
    blockwise.publish(out_path)


def octree_labels(tree: Octree, roi: Roi, voxel_size: Coordinate, stage: AgglomerateStage) -> None:
    """Every superblock's lookup table from the agglomeration octree, run in sequence."""
    for level, chunk in tree.upwards():
        if not tree.result(level, chunk).exists():
            agglomerate_chunk(tree, level, chunk, roi, voxel_size, stage)
    for level, chunk in reversed(tree.upwards()):
        label_chunk(tree, level, chunk, stage.threshold)


def mutex_labels(graph_dir: str | Path, plan: Superblocks, tree: Octree, bias: float) -> None:
    """The lookup table of mutex watershed at ``bias``, as the one superblock's."""
    (index, *others) = plan.indices()
    if others:
        raise arrays.DataError(f"{graph_dir}: mutex watershed runs within one superblock")
    save_labels(tree.labels(0, index), *mutex_lookup(load_graph(graph_dir), bias))


def fragment_prediction(
    affs_path: str,
    frags_path: str,
    graph_dir: str | Path,
    options: FragmentOptions,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> None:
    """Rule fragments: fragments and region graph of a whole prediction, one block per
    chunk of it. Both are staged and published together; a killed job, rerun,
    resumes the blocks it had not finished."""
    chunks = arrays.open_array(affs_path).data.chunksize[1:]
    staged = [arrays.staging(p) for p in (frags_path, graph_dir)]
    fragments_blockwise(affs_path, *staged, None, chunks, num_workers, log_dir, options)
    blockwise.publish(frags_path, graph_dir)


def fragment_dims(frags_path: str | Path) -> int:
    """How many trailing axes the fragments' affinities connected (2 for a 2D network
    on a stack: fragments and segments per section)."""
    return int(zarr.open(str(frags_path), mode="r").attrs["affinity_dims"])


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
    superblock_shape: Sequence[int] | None = None,
) -> None:
    """Affinities -> seamless segmentation; fragments and graph are kept beside it.

    By default fragments go to ``{out}_fragments`` in the same container and the
    graph to ``{container stem}.{dataset}.graph`` next to the container. With
    ``superblock_shape`` (voxels, whole blocks) every stage goes superblock by
    superblock and the agglomeration over their octree, so memory follows the
    superblock, not the volume. All three outputs are staged and renamed together
    at the end; rerun after a kill, each stage does only what it had not finished.
    """
    container, dataset = arrays.split_path(out_path)
    frags_path = frags_path or arrays.array_path(container, f"{dataset}_fragments")
    graph_dir = graph_dir or Path(container).parent / f"{Path(container).stem}.{dataset}.graph"
    staged = [arrays.staging(p) for p in (frags_path, graph_dir)]
    fragments_blockwise(
        affs_path, *staged, roi, block_shape, num_workers, log_dir, options, superblock_shape
    )
    stage = AgglomerateStage(merge_function=merge_function, min_size=min_size, threshold=threshold)
    segment_fragments(*staged, out_path, stage, num_workers, log_dir)
    blockwise.publish(frags_path, graph_dir)
