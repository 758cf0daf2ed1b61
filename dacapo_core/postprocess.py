"""Post-processing of class predictions, blockwise with daisy and resumable.

- ``threshold_blockwise``: one class's channel -> a uint8 binary array (1 where the
  prediction is above the threshold, in the prediction's units: tanh of the
  distance for distances, a probability for one_hot).
- ``components_blockwise``: a binary array -> instances (connected components,
  face-connected), seamless across blocks, components under ``min_size`` voxels
  removed. Each block is labelled on its own; a component's block-local id is the
  whole-volume raster index (+1) of its first voxel, so ids are unique without
  coordination. Pairs of ids touching across a block face are then joined
  (connected components of the pair graph, the union-find), and the result is
  relabelled 1..N in raster order of each instance's first voxel: the same ids a
  whole-volume ``scipy.ndimage.label`` gives, whatever the blocks.
- ``argmax_blockwise``: one_hot probabilities -> one class-label array (channel k
  is label k; 0, background).

Each output is written under its staged name with its job in its attributes, and
published when every block is done: a killed job, rerun with the same inputs,
does only the blocks it had not finished. Outputs keep the prediction's voxel size
and offset.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daisy
import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from . import arrays, blockwise, codec
from .segment.relabel import relabel


def channel_index(prediction: str, name: str) -> int:
    """The channel of class ``name`` in a class prediction (its ``channels`` attribute)."""
    channels = zarr.open(str(prediction), mode="r").attrs.get("channels")
    if channels is None:
        raise arrays.DataError(f"{prediction}: not a class prediction (no channel names)")
    if name not in channels:
        raise arrays.DataError(f"{prediction}: no class '{name}' (channels: {channels})")
    return channels.index(name)


def read_channel(array: Array, path: str, channel: int, roi: Roi) -> np.ndarray:
    """One channel of a prediction within ``roi``, decoded (float32), the others unread."""
    slices = ((roi - array.roi.offset) / array.voxel_size).to_slices()
    return codec.decode(np.asarray(array.data[(channel, *slices)]), codec.scale_of(path))


@dataclass
class MapWorker(blockwise.BlockWorker):
    """Reads one array and writes another, block by block."""

    source_path: str
    out: str

    def setup(self) -> None:
        self.source = arrays.open_array(self.source_path)
        self.target = arrays.open_array(self.out, mode="r+")


@dataclass
class ThresholdWorker(MapWorker):
    channel: int
    threshold: float

    def process(self, block: daisy.Block) -> None:
        roi = block.write_roi
        values = read_channel(self.source, self.source_path, self.channel, roi)
        self.target[roi] = (values > self.threshold).astype(np.uint8)


class ArgmaxWorker(MapWorker):
    def process(self, block: daisy.Block) -> None:
        roi = block.write_roi
        stored = arrays.read(self.source, roi)  # the scale is monotonic: argmax as stored
        self.target[roi] = np.argmax(stored, axis=0).astype(self.target.dtype)


class LabelWorker(MapWorker):
    """Components within a block, named by the whole-volume index of their first voxel."""

    def process(self, block: daisy.Block) -> None:
        roi = block.write_roi
        vs = self.source.voxel_size
        local, _ = ndimage.label(arrays.read(self.source, roi) != 0)
        ids, first = np.unique(local, return_index=True)
        coords = np.unravel_index(first, local.shape)
        shift = (roi.offset - self.target.roi.offset) / vs
        coords = tuple(c + s for c, s in zip(coords, shift, strict=True))
        whole = tuple(self.target.roi.shape / vs)
        names = np.zeros(ids.max() + 1, np.uint64)
        names[ids] = np.ravel_multi_index(coords, whole).astype(np.uint64) + 1
        names[0] = 0
        self.target[roi] = names[local]


@dataclass
class FaceWorker(blockwise.BlockWorker):
    """A block's components (ids and sizes) and the pairs of ids that touch across its
    lower faces, saved as ``{block id}.npz``; the upper faces are its neighbours'."""

    labels: str
    folder: str

    def setup(self) -> None:
        self.source = arrays.open_array(self.labels)

    def process(self, block: daisy.Block) -> None:
        vs = self.source.voxel_size
        data = arrays.read(self.source, block.write_roi.grow(vs, vs * 0))
        inner = (slice(1, None),) * data.ndim
        nodes, sizes = np.unique(data[inner], return_counts=True)
        pairs = []
        for axis in range(data.ndim):
            below = data[inner[:axis] + (slice(0, 1),) + inner[axis + 1 :]].ravel()
            above = data[inner[:axis] + (slice(1, 2),) + inner[axis + 1 :]].ravel()
            touching = (below != 0) & (above != 0) & (below != above)
            pairs.append(np.stack([below[touching], above[touching]], axis=1))
        pairs = np.unique(np.concatenate(pairs), axis=0)
        arrays.write_npz(
            Path(self.folder) / f"{block.block_id[1]}.npz",
            nodes=nodes[nodes > 0],
            sizes=sizes[nodes > 0],
            pairs=pairs,
        )


@dataclass
class RelabelWorker(MapWorker):
    lookup: str

    def setup(self) -> None:
        super().setup()
        table = np.load(self.lookup)
        self.nodes, self.instances = table["nodes"], table["instances"]

    def process(self, block: daisy.Block) -> None:
        data = arrays.read(self.source, block.write_roi)
        self.target[block.write_roi] = relabel(data, self.nodes, self.instances)


def join(folder: Path, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, instances): every block component's id and its instance, 1..N in order
    of the instances' smallest node id, 0 for instances under ``min_size`` voxels."""
    blocks = [np.load(path) for path in sorted(folder.glob("*.npz"))]
    nodes = np.concatenate([b["nodes"] for b in blocks]).astype(np.uint64)
    sizes = np.concatenate([b["sizes"] for b in blocks])
    pairs = np.concatenate([b["pairs"].reshape(-1, 2) for b in blocks]).astype(np.uint64)
    order = np.argsort(nodes)
    nodes, sizes = nodes[order], sizes[order]
    ends = np.searchsorted(nodes, pairs)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs)), (ends[:, 0], ends[:, 1])), shape=(len(nodes), len(nodes))
    )
    count, component = connected_components(graph, directed=False)
    first = np.full(count, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(first, component, nodes)
    big = np.bincount(component, weights=sizes, minlength=count) >= min_size
    order = np.argsort(first)
    kept = order[big[order]]
    numbers = np.zeros(count, np.uint64)
    numbers[kept] = np.arange(1, len(kept) + 1, dtype=np.uint64)
    return nodes, numbers[component]


def default_block(array: Array, block_shape: Coordinate | None) -> Coordinate:
    """World-unit blocks: ``block_shape`` (voxels), else the array's spatial chunks."""
    shape = block_shape or Coordinate(array.data.chunksize[-array.voxel_size.dims :])
    return Coordinate(shape) * array.voxel_size


def _run(
    stage: str,
    staged: str,
    roi: Roi,
    block: Coordinate,
    worker: blockwise.BlockWorker,
    num_workers: int,
    log_dir: str | Path | None,
    context: Coordinate | None = None,
) -> None:
    """A blockwise stage writing ``staged``; blocks read ``context`` below them."""
    zero = block * 0
    context = context if context is not None else zero
    blockwise.run(
        stage,
        staged,
        total_roi=roi.grow(context, zero),
        read_roi=Roi(zero, block).grow(context, zero),
        write_roi=Roi(zero, block),
        worker=worker,
        num_workers=num_workers,
        log_dir=log_dir,
    )


def _prepare(
    staged: str, source: Array, dtype: Any, block: Coordinate, job: dict[str, Any]
) -> None:
    vs = source.voxel_size
    arrays.prepare_array(
        staged, source.roi, vs, dtype, chunk_shape=block / vs, attrs=job, reuse=True
    )


def threshold_blockwise(
    prediction: str,
    out: str,
    name: str,
    threshold: float,
    block_shape: Coordinate | None = None,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> Array:
    """Class ``name`` of ``prediction`` above ``threshold`` -> uint8 0/1 array ``out``."""
    channel = channel_index(prediction, name)
    source = arrays.open_array(prediction)
    block = default_block(source, block_shape)
    staged = arrays.staging(out)
    job = {
        "prediction": prediction,
        "prediction_version": arrays.fingerprint(prediction),
        "class": name,
        "threshold": threshold,
        "block": list(block),
    }
    _prepare(staged, source, np.uint8, block, job)
    worker = ThresholdWorker(prediction, staged, channel, threshold)
    _run("threshold", staged, source.roi, block, worker, num_workers, log_dir)
    blockwise.publish(out)
    return arrays.open_array(out)


def argmax_blockwise(
    prediction: str,
    out: str,
    block_shape: Coordinate | None = None,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> Array:
    """A one_hot prediction -> class labels (uint8, or uint16 past 255 classes); the
    output's ``classes`` attribute names each label (0: background)."""
    attrs = zarr.open(str(prediction), mode="r").attrs
    if attrs.get("task") != "one_hot":
        raise arrays.DataError(f"{prediction}: argmax needs a one_hot prediction")
    source = arrays.open_array(prediction)
    block = default_block(source, block_shape)
    staged = arrays.staging(out)
    job = {
        "prediction": prediction,
        "prediction_version": arrays.fingerprint(prediction),
        "classes": attrs["channels"],
        "block": list(block),
    }
    dtype = np.uint8 if len(attrs["channels"]) <= 256 else np.uint16
    _prepare(staged, source, dtype, block, job)
    worker = ArgmaxWorker(prediction, staged)
    _run("argmax", staged, source.roi, block, worker, num_workers, log_dir)
    blockwise.publish(out)
    return arrays.open_array(out)


def components_blockwise(
    mask: str,
    out: str,
    min_size: int = 0,
    block_shape: Coordinate | None = None,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> Array:
    """Instances (uint64, 1..N) of the nonzero voxels of ``mask``; components smaller
    than ``min_size`` voxels become background.

    Block labels go to a staged scratch array beside ``out`` (``{out}.blocks``),
    removed once ``out`` is published; the three stages (label, faces, relabel)
    each resume a killed job's finished blocks.
    """
    source = arrays.open_array(mask)
    vs = source.voxel_size
    block = default_block(source, block_shape)
    scratch = arrays.staging(f"{out}.blocks")
    job = {
        "mask": mask,
        "mask_version": arrays.fingerprint(mask),
        "block": list(block),
    }
    _prepare(scratch, source, np.uint64, block, job)
    _run("label", scratch, source.roi, block, LabelWorker(mask, scratch), num_workers, log_dir)
    faces = Path(scratch) / blockwise.TRACKING / "faces"
    faces.mkdir(parents=True, exist_ok=True)
    worker = FaceWorker(scratch, str(faces))
    _run("faces", scratch, source.roi, block, worker, num_workers, log_dir, context=vs)
    nodes, instances = join(faces, min_size)
    staged = arrays.staging(out)
    _prepare(staged, source, np.uint64, block, {**job, "min_size": min_size})
    lookup = Path(staged) / blockwise.TRACKING / "lookup.npz"
    arrays.write_npz(lookup, nodes=nodes, instances=instances)
    worker = RelabelWorker(scratch, staged, str(lookup))
    _run("relabel", staged, source.roi, block, worker, num_workers, log_dir)
    blockwise.publish(out)
    shutil.rmtree(scratch)
    return arrays.open_array(out)
