"""Seamless blockwise watershed: fragments, a region graph, one global agglomeration.

1. ``FragmentWorker``: watershed fragments per block (seeded, or waterz's), with
   context, ids unique across blocks.
2. ``EdgeWorker``: region-graph edges per block, reading one voxel of context on
   the negative faces, so that edges across block faces exist. Each block writes
   one ``.npz`` file (fragment ids and sizes, edges with affinity statistics).
3. ``merge_history``: hierarchical agglomeration of the whole graph (mean or a
   quantile of affinities, small fragments first), recorded once; any threshold
   is then a prefix of the history.
4. ``RelabelWorker``: fragments -> segments through a lookup table, per block.

Because agglomeration is decided once for the whole graph, an object that
crosses block faces gets one label, and sweeping thresholds costs one lookup
table each instead of a new segmentation.

Affinities that connect only the trailing axes (a 2D network's prediction of a
3D stack) give fragments per section and no edges between sections, so every
segment lies in one section, as the per-section labels it was trained on.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import daisy
import numpy as np
import waterz
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy import ndimage
from skimage.segmentation import watershed

from . import arrays, blockwise
from .config import FragmentOptions, block_shape_or_default
from .sections import lift

#: affinity histogram bins per edge (for quantile merge functions)
BINS = 32


@dataclass(frozen=True)
class Graph:
    """The region graph: fragment ids and edges (u < v) with their statistics.

    ``stats[e]`` is ``[sum of affinities, count, histogram (BINS)]``: every merge
    function is computed from it, and merging regions just adds rows.
    ``sizes[i]`` is the voxel count of fragment ``nodes[i]``.
    """

    nodes: np.ndarray
    sizes: np.ndarray
    edges: np.ndarray
    stats: np.ndarray

    @classmethod
    def load(cls, graph_dir: str | Path) -> Graph:
        parts = [np.load(p) for p in sorted(Path(graph_dir).glob("*.npz"))]
        if not parts:
            raise FileNotFoundError(f"{graph_dir}: no region graph blocks")
        edges = np.concatenate([p["edges"] for p in parts]).reshape(-1, 2)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        stats = _merge_block_stats(np.concatenate([p["stats"] for p in parts]), inverse.ravel())
        # a fragment crossing block faces is counted in each block: sum its parts
        nodes, where = np.unique(np.concatenate([p["nodes"] for p in parts]), return_inverse=True)
        sizes = np.bincount(where.ravel(), np.concatenate([p["sizes"] for p in parts]))
        return cls(nodes, sizes.astype(np.int64), unique.astype(np.uint64), stats)


def _merge_block_stats(rows: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """One stats row per edge from its rows in several blocks.

    Sums and counts add up. Each block's histogram holds only that block's top
    bin (waterz's InitWithMax); an edge crossing blocks keeps the counts of its
    overall top bin only, so it equals the whole-volume edge.
    """
    n = int(edge.max()) + 1 if len(edge) else 0
    stats = np.zeros((n, 2 + BINS))
    np.add.at(stats[:, :2], edge, rows[:, :2])
    hist = rows[:, 2:]
    row_top = BINS - 1 - np.argmax(hist[:, ::-1] > 0, axis=1)
    top = np.full(n, -1)
    np.maximum.at(top, edge, row_top)
    keep = row_top == top[edge]
    np.add.at(stats[:, 2:], edge[keep], hist[keep])
    return stats


@dataclass(frozen=True)
class MergeHistory:
    """Merges in the order agglomeration made them: ``merged[i]`` into ``into[i]``."""

    nodes: np.ndarray
    merged: np.ndarray
    into: np.ndarray
    scores: np.ndarray

    def lookup(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(fragment ids, segment ids 1..n) after all merges below ``threshold``."""
        steps = int(np.searchsorted(np.maximum.accumulate(self.scores), threshold, "left"))
        parent = np.arange(len(self.nodes))
        src = np.searchsorted(self.nodes, self.merged[:steps])
        dst = np.searchsorted(self.nodes, self.into[:steps])
        parent[src] = dst
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        _, segments = np.unique(parent, return_inverse=True)
        return self.nodes, (segments + 1).astype(np.uint64)


def fragments(
    affs: np.ndarray, options: FragmentOptions | None = None, dims: int | None = None
) -> np.ndarray:
    """Fragments of the nearest-neighbour affinities (the first ``dims`` channels,
    which connect the trailing ``dims`` axes; default all).

    A fragment's id is 1 + the linear index of its representative voxel (its seed,
    or its first voxel): ids are unique, and the same seed gives the same id
    wherever it is computed.
    """
    options = options or FragmentOptions()
    spatial = affs.ndim - 1
    dims = dims or spatial
    if dims < spatial:  # sections on their own; ids as linear indices in the stack
        size = int(np.prod(affs.shape[2:]))
        per_section = [fragments(affs[:, z], options, dims) for z in range(affs.shape[1])]
        return np.stack([np.where(f > 0, f + z * size, 0) for z, f in enumerate(per_section)])
    if options.method == "waterz":
        nn = np.ascontiguousarray(affs[:3], dtype=np.float32)
        labels = next(iter(waterz.agglomerate(nn, thresholds=[0.0]))).copy()
        seeds = None
    else:
        labels, seeds = _seeded_watershed(affs[:dims], options.threshold, options.seed_distance)
    ids, first, inverse = np.unique(labels.ravel(), return_index=True, return_inverse=True)
    if seeds is not None:  # the first voxel of each basin's seed, not of the basin
        seed_ids, seed_first = np.unique(seeds.ravel(), return_index=True)
        by_label = np.zeros(int(seed_ids.max()) + 1, dtype=np.int64)
        by_label[seed_ids] = seed_first
        first = by_label[ids]
    representative = np.where(ids == 0, 0, first.astype(np.uint64) + 1)
    return representative[inverse].reshape(labels.shape)


def _seeded_watershed(
    nn: np.ndarray, threshold: float, seed_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Watershed of the distance to boundaries, seeded at its local maxima.

    One seed per object interior instead of one per noise minimum: far fewer
    fragments (and edges) than a plain affinity watershed, and the boundary
    voxels are still assigned, so neighbouring fragments share edges.
    Returns the basins and the seeds, both labelled 1..n alike.
    """
    inside = nn.mean(axis=0) > threshold
    distance = ndimage.distance_transform_edt(inside)
    peaks = (ndimage.maximum_filter(distance, size=2 * seed_distance + 1) == distance) & inside
    # every interior piece gets a seed, however small (pieces cut by a block face are)
    pieces, n = ndimage.label(inside)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[pieces[peaks]] = True
    unseeded = np.flatnonzero(~seeded[1:]) + 1
    for position in ndimage.maximum_position(distance, pieces, unseeded):
        peaks[position] = True
    seeds, _ = ndimage.label(peaks)
    return watershed(-distance, seeds), seeds


def edges(
    frags: np.ndarray, affs: np.ndarray, dims: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Edges between voxel ``p`` and ``p - e_d`` for all ``p`` but the first slab per axis,
    along the trailing ``dims`` axes (default all) that affinity channels 0.. connect.

    ``frags``/``affs`` carry one voxel of context on the negative side of each axis.
    Returns the pairs (u < v) and their statistics rows (see Graph).
    """
    pairs, values = [], []
    inner = tuple(slice(1, None) for _ in range(frags.ndim))
    first = frags.ndim - (dims or frags.ndim)
    for d in range(first, frags.ndim):
        back = tuple(slice(0, -1) if i == d else slice(1, None) for i in range(frags.ndim))
        u, v = frags[inner].ravel(), frags[back].ravel()
        keep = (u != v) & (u > 0) & (v > 0)
        pairs.append(np.stack([np.minimum(u, v)[keep], np.maximum(u, v)[keep]], axis=1))
        values.append(affs[d - first][inner].ravel()[keep])
    pairs_all = np.concatenate(pairs)
    if len(pairs_all) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros((0, 2 + BINS))
    unique, inverse = np.unique(pairs_all, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    value = np.concatenate(values).astype(np.float64)
    bins = np.minimum((value * BINS).astype(int), BINS - 1)
    n = len(unique)
    stats = np.empty((n, 2 + BINS))
    stats[:, 0] = np.bincount(inverse, value, minlength=n)
    stats[:, 1] = np.bincount(inverse, minlength=n)
    # as waterz (InitWithMax): an edge's initial histogram holds only its highest bin
    top = np.zeros(n, dtype=int)
    np.maximum.at(top, inverse, bins)
    at_top = bins == top[inverse]
    hist = np.bincount(inverse[at_top] * BINS + bins[at_top], minlength=n * BINS)
    stats[:, 2:] = hist.reshape(n, BINS)
    return unique, stats


def scoring(merge_function: str) -> Callable[[np.ndarray], float]:
    """Merge score (lower merges first) of a statistics row: ``1 - affinity``.

    ``mean``: the mean affinity across the boundary; ``hist_quant_Q``: its Q-th
    percentile, from the histogram (as waterz's HistogramQuantileAffinity).
    """
    if merge_function == "mean":
        return lambda row: 1.0 - row[0] / row[1]
    match = re.fullmatch(r"hist_quant_(\d+)", merge_function)
    if not match or not 0 < int(match.group(1)) < 100:
        raise ValueError(f"unknown merge function '{merge_function}'")
    q = int(match.group(1)) / 100

    def quantile(row: np.ndarray) -> float:
        hist = row[2:]
        pivot = int(q * 100) * int(hist.sum()) // 100 + 1  # 1-based rank, as waterz
        rank = np.searchsorted(np.cumsum(hist), pivot)
        return 1.0 - (rank + 0.5) / BINS

    return quantile


def merge_history(graph: Graph, merge_function: str = "mean", min_size: int = 0) -> MergeHistory:
    """Agglomerate greedily by ``merge_function`` until no edge is left.

    Merging two regions adds their edge statistics to each common neighbour, as
    waterz's region-graph agglomeration does on a whole volume. A region smaller
    than ``min_size`` voxels merges first, into its best neighbour, at any
    threshold (its edges score below 0), so specks never stay segments of their
    own; being graph-wide, this is seamless across blocks and costs no new fragments.
    """
    base = scoring(merge_function)
    size = dict(zip(graph.nodes.tolist(), graph.sizes.tolist(), strict=True))

    def score_of(u: int, v: int, row: np.ndarray) -> float:
        return base(row) - (1.0 if min(size[u], size[v]) < min_size else 0.0)

    adjacency: dict[int, dict[int, np.ndarray]] = {int(n): {} for n in graph.nodes}
    heap = []
    for (u, v), row in zip(graph.edges.tolist(), graph.stats, strict=True):
        adjacency[u][v] = adjacency[v][u] = row.copy()
        heap.append((score_of(u, v, row), u, v))
    heapq.heapify(heap)
    merged, into, scores = [], [], []
    while heap:
        score, u, v = heapq.heappop(heap)
        row = adjacency.get(u, {}).get(v)
        if row is None or score_of(u, v, row) != score:
            continue  # stale entry: a region merged or the edge changed since
        if len(adjacency[u]) > len(adjacency[v]):
            u, v = v, u
        del adjacency[v][u]
        was_small = size[v] < min_size
        size[v] += size.pop(u)
        changed = set(adjacency[u]) - {v}
        for n, other in adjacency.pop(u).items():
            if n == v:
                continue
            del adjacency[n][u]
            joint = adjacency[v].get(n)
            adjacency[v][n] = adjacency[n][v] = other if joint is None else joint + other
        if was_small and size[v] >= min_size:  # all of v's edges lose their priority
            changed = set(adjacency[v])
        for n in changed:
            heapq.heappush(heap, (score_of(v, n, adjacency[v][n]), min(n, v), max(n, v)))
        merged.append(u)
        into.append(v)
        scores.append(score)
    return MergeHistory(
        graph.nodes,
        np.array(merged, np.uint64),
        np.array(into, np.uint64),
        np.array(scores, np.float64),
    )


def relabel(frags: np.ndarray, nodes: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Map fragment ids to segment ids (0 stays 0)."""
    out = np.zeros(frags.shape, np.uint64)
    inside = frags > 0
    out[inside] = segments[np.searchsorted(nodes, frags[inside])]
    return out


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
        affs = arrays.read_affinities(self.affs_array, self.affs, read)
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
        affs = arrays.read_affinities(self.affs_array, self.affs, read)
        pairs, stats = edges(frags, affs, self.dims)
        nodes, sizes = np.unique(frags[(slice(1, None),) * frags.ndim], return_counts=True)
        name = Path(self.graph_dir) / ("_".join(map(str, self.index(block))) + ".npz")
        tmp = name.with_suffix(f".{os.getpid()}.tmp.npz")
        inside = nodes > 0
        np.savez(tmp, nodes=nodes[inside], sizes=sizes[inside], edges=pairs, stats=stats)
        os.replace(tmp, name)


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
    }
    if not arrays.same_attrs(frags_path, job):
        shutil.rmtree(graph_dir, ignore_errors=True)
    arrays.prepare_array(
        frags_path, roi, vs, np.uint64, chunk_shape=block / vs, attrs=job, reuse=True
    )
    Path(graph_dir).mkdir(parents=True, exist_ok=True)
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
    return Graph.load(graph_dir)


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
