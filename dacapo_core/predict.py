"""Blockwise prediction: daisy blocks much larger than the network window.

Each worker loads the model once (on its own GPU when there are several) and
scans its block with the largest windows the block and ``max_input_voxels``
allow, one per forward pass: one large window recomputes less context than a
batch of small ones, on CPU and GPU alike. The context each block reads follows
from the network's input/output shapes; raw is padded with zeros only where the
data itself ends.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daisy
import numpy as np
import torch
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from pydantic import TypeAdapter

from . import arrays, blockwise, codec, tta
from .checkpoint import intensity_scale, load_checkpoint, predicting_weights, resolve_device
from .config import AffinitiesTask, DistancesTask, Task, UNetConfig
from .geometry import (
    INPUT_CHANNELS,
    channel_names,
    eval_input_shape,
    lift,
    num_channels,
    output_shape,
)
from .model import UNet, precision
from .stages import PredictStage
from .superblocks import Superblocks

log = logging.getLogger(__name__)


@dataclass
class Predictor:
    """A trained network with its window geometry (voxels).

    ``input_shape``/``output_shape`` is the smallest prediction window; any
    window ``step`` voxels larger per axis is valid too. Windows start on a grid
    of ``step`` anchored at the raw data's origin: a valid-convolution UNet then
    gives every voxel the same value whichever window (block, ROI) computed it.
    The geometry is that of the data: a 2D network on a 3D stack has windows one
    section thick, grown along z like any other axis. ``network_dims`` are the
    network's own (trailing) axes.

    With ``augmentation`` (``tta``), the output is the mean over views of the raw,
    each predicted in the view's frame on the grid anchored at the raw's origin seen
    through the view (mirrored, the same planes), so it too is the same whichever
    window computed it, and a block on the grid is on it in every view.
    """

    model: torch.nn.Module
    input_shape: Coordinate
    output_shape: Coordinate
    step: Coordinate
    task: Task
    device: torch.device
    network_dims: int
    augmentation: tta.Mode = "none"
    mixed_precision: bool = False
    max_input_voxels: int = 200**3

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        dims: int,
        device: str = "auto",
        augmentation: tta.Mode = "none",
        mixed_precision: bool | None = None,
    ) -> Predictor:
        """The checkpoint's network, for ``dims``-D data; its task (the ``type`` in the
        checkpoint, affinities where it has none) gives the predicted channels and the
        activation (auxiliary channels are trained, never predicted). The forward pass
        is in the precision the network was trained in unless ``mixed_precision``
        says otherwise."""
        state = load_checkpoint(checkpoint)
        arch = UNetConfig.model_validate(state["model_config"]["architecture"])
        task = TypeAdapter(Task).validate_python(state["model_config"]["task"])
        if dims < len(arch.input_shape):
            raise arrays.DataError(
                f"{checkpoint}: a {len(arch.input_shape)}D network cannot predict {dims}D data"
            )
        model = UNet(arch, INPUT_CHANNELS, num_channels(task), task.activation)
        model.load_state_dict(predicting_weights(state["model"], num_channels(task)))
        dev = resolve_device(device)
        model.to(dev).eval()
        shape = eval_input_shape(arch)
        step = np.prod(arch.downsample_factors, axis=0).astype(int).tolist()
        geometry = (shape, output_shape(arch, shape), step)
        lifted = (lift(g, dims) for g in geometry)
        if mixed_precision is None:
            mixed_precision = state["model_config"].get("mixed_precision", False)
        dims_net = len(arch.input_shape)
        return cls(model, *lifted, task, dev, dims_net, augmentation, mixed_precision)

    @property
    def channels(self) -> int:
        return num_channels(self.task)

    def augmentations(self, voxel_size: Coordinate) -> list[tta.Augmentation]:
        """The views the prediction averages on data of ``voxel_size``."""
        offsets = None
        if isinstance(self.task, AffinitiesTask):
            offsets = [lift(o, voxel_size.dims, fill=0) for o in self.task.neighborhood]
        return tta.plan(self.augmentation, voxel_size, self.network_dims, self.channels, offsets)

    def margins(self, augmentations: list[tta.Augmentation]) -> tuple[Coordinate, Coordinate]:
        """Voxels predicted before and after a ROI to undo the views' shifts, in whole
        grid steps: a ROI on the grid stays on it, in one window per axis, not two."""
        low, high = tta.margins(augmentations)
        return -(-low // self.step) * self.step, -(-high // self.step) * self.step

    def network_context(self, voxel_size: Coordinate) -> Coordinate:
        """World-unit margin a window needs around its output (in its view's frame)."""
        return (self.input_shape - self.output_shape) / 2 * voxel_size

    def context(self, voxel_size: Coordinate) -> Coordinate:
        """World-unit margin a prediction of ROI r needs around r: the network's in
        every view, and the shifts that undo the affinities' views."""
        augmentations = self.augmentations(voxel_size)
        low, high = self.margins(augmentations)
        network = [
            a.view.inverse.sizes(self.network_context(a.view.sizes(voxel_size)))
            for a in augmentations
        ]
        return Coordinate(np.max(network, axis=0)) + Coordinate(np.maximum(low, high)) * voxel_size

    def window(self, shape: Coordinate) -> Coordinate:
        """Output voxels of the largest window that fits ``shape`` (at least the
        smallest window) and whose input stays under ``max_input_voxels``."""
        sizes = zip(shape, self.output_shape, self.step, strict=True)
        window = Coordinate(o + max(0, (s - o) // p) * p for s, o, p in sizes)
        context = self.input_shape - self.output_shape
        while np.prod(window + context) > self.max_input_voxels and window != self.output_shape:
            axis = int(np.argmax(window - self.output_shape))  # shrink the most grown axis
            window -= self.step * Coordinate(int(i == axis) for i in range(window.dims))
        return window

    def windows(self, roi: Roi, origin: Coordinate, voxel_size: Coordinate) -> list[Roi]:
        """Output windows covering ``roi``, on the grid anchored at ``origin``."""
        window = self.window(roi.shape / voxel_size)
        stride = (window // self.step) * self.step * voxel_size
        starts = []
        for begin, end, anchor, grid, step in zip(
            roi.begin, roi.end, origin, self.step * voxel_size, stride, strict=True
        ):
            first = anchor + (begin - anchor) // grid * grid
            starts.append(range(first, end, step))
        return [Roi(s, window * voxel_size) for s in itertools.product(*starts)]

    def predict(self, raw: Array, roi: Roi) -> np.ndarray:
        """The network's output (C, *roi voxels) for ``roi``: the mean over the
        augmentation's views (just the raw without one), each undone."""
        vs = raw.voxel_size
        augmentations = self.augmentations(vs)
        low, high = self.margins(augmentations)
        grown = roi.grow(low * vs, high * vs)
        total = np.zeros((self.channels, *(roi.shape / vs)), dtype=np.float32)
        for augmentation in augmentations:
            seen = self.predict_view(raw, grown, augmentation.view)
            total += augmentation.undo(seen, grown, roi, vs)
        return total / len(augmentations)

    def predict_view(self, raw: Array, roi: Roi, view: tta.View) -> np.ndarray:
        """The network's output for ``roi`` of ``raw`` seen through ``view`` (in the
        view's frame), computed in as few windows as fit.

        Raw is read once for all windows; outside the raw data it is zero.
        """
        vs = view.sizes(raw.voxel_size)
        context = self.network_context(vs)
        seen = view.roi(roi)
        windows = self.windows(seen, view.vector(raw.roi.begin), vs)
        covered = windows[0].union(windows[-1])
        source = view.inverse.roi(covered.grow(context, context))
        data = view.array(arrays.read(raw, source)).astype(np.float32)
        data *= intensity_scale(raw.dtype)
        result = np.zeros((self.channels, *(covered.shape / vs)), dtype=np.float32)
        origin = covered.begin - context
        for window in windows:
            inputs = data[((window.grow(context, context) - origin) / vs).to_slices()]
            x = torch.from_numpy(np.ascontiguousarray(inputs)[None, None]).to(self.device)
            with torch.no_grad(), precision(self.device, self.mixed_precision):
                out = self.model(x)[0].float().cpu().numpy()
            result[(slice(None), *((window - covered.begin) / vs).to_slices())] = out
        return result[(slice(None), *((seen - covered.begin) / vs).to_slices())]


def worker_device(device: str, worker_id: int, gpus: int) -> str:
    """Each worker its own GPU (round robin) when several are visible; else ``device``."""
    if device == "auto" and gpus > 1:
        return f"cuda:{worker_id % gpus}"
    return device


@dataclass
class PredictWorker(blockwise.BlockWorker):
    """Loads the model once per worker process, then predicts whole blocks."""

    checkpoint: str
    raw: str
    out: str
    device: str = "auto"
    threads: int = 1
    augmentation: tta.Mode = "none"

    def setup(self) -> None:
        torch.set_num_threads(self.threads)  # workers share the job's cores, not oversubscribe
        device = worker_device(self.device, self.worker_id, torch.cuda.device_count())
        self.raw_array = arrays.open_array(self.raw)
        dims = self.raw_array.voxel_size.dims
        self.predictor = Predictor.load(self.checkpoint, dims, device, self.augmentation)
        self.out_array = arrays.open_array(self.out, mode="r+")

    def process(self, block: daisy.Block) -> None:
        roi = block.write_roi
        output = self.predictor.predict(self.raw_array, roi)
        self.out_array[roi] = codec.encode(output, self.out_array.dtype)


def target_roi(raw: Array, roi: Roi | None) -> Roi:
    """The ROI to predict: ``roi`` (snapped to the voxel grid) or all of raw."""
    if roi is None:
        return raw.roi
    snapped = roi.snap_to_grid(raw.voxel_size, mode="grow")
    if not raw.roi.contains(snapped):
        raise arrays.DataError(
            f"ROI {arrays.format_roi(roi)} is not inside {arrays.format_roi(raw.roi)} of raw"
        )
    return snapped


def task_attrs(task: Task) -> dict[str, Any]:
    """What a prediction's readers need to know of its channels: the affinities'
    neighbourhood, or the class task and a name per channel (post-processing, viewer)."""
    if isinstance(task, AffinitiesTask):
        return {"neighborhood": task.neighborhood}
    attrs = {"task": task.type, "channels": channel_names(task)}
    if isinstance(task, DistancesTask):
        attrs["distance_scale"] = task.scale
    return attrs


def prepare_prediction(
    checkpoint: str | Path,
    raw_path: str,
    out_path: str,
    roi: Roi | None = None,
    block_shape: Coordinate | None = None,
    dtype: str = "float32",
    augmentation: tta.Mode = "none",
) -> tuple[Roi, Coordinate]:
    """Create the staged prediction array of ``roi`` (whole blocks of ``block_shape``
    voxels, default one network window each), or keep one a killed job left with
    the same attributes; returns the ROI and the block (world units). Affinities or
    one_hot probabilities are stored as float32 or uint8 (a quarter of the disk);
    distances (tanh, in [-1, 1]) as float32 only. The attributes hold the scale,
    what the channels are (``task_attrs``) and the test-time augmentation, which the
    blocks' workers read from them."""
    raw = arrays.open_array(raw_path)
    vs = raw.voxel_size
    predictor = Predictor.load(checkpoint, vs.dims, "cpu", augmentation)
    if isinstance(predictor.task, DistancesTask) and dtype != "float32":
        raise arrays.DataError(f"{checkpoint}: distances are stored as float32, not {dtype}")
    roi = target_roi(raw, roi)
    if block_shape is None:  # one window per block: a whole number of grid steps
        block_shape = predictor.window(roi.shape / vs) // predictor.step * predictor.step
    block = Coordinate(block_shape) * vs
    job = {
        "checkpoint": str(checkpoint),
        "checkpoint_version": arrays.fingerprint(checkpoint),
        "raw": raw_path,
        "raw_version": arrays.fingerprint(raw_path),
        "roi": arrays.format_roi(roi),
        "block": list(block),
        "scale": codec.SCALES[dtype],
        "test_time_augmentation": augmentation,
        **task_attrs(predictor.task),
    }
    if augmentation != "none":
        views = len(predictor.augmentations(vs))
        every = len(tta.views(augmentation, vs, predictor.network_dims))
        log.info("test-time augmentation %s: %d of %d views", augmentation, views, every)
    arrays.prepare_array(
        arrays.staging(out_path),
        roi,
        vs,
        np.dtype(dtype),
        num_channels=predictor.channels,
        chunk_shape=block / vs,
        attrs=job,
        reuse=True,
    )
    return roi, block


def predict_part(
    checkpoint: str | Path,
    out_path: str,
    part: Roi,
    stage: str = "predict",
    num_workers: int = 2,
    device: str = "auto",
    log_dir: str | Path | None = None,
) -> None:
    """Predict the blocks of ``part`` (a superblock, or the whole ROI) into the
    staged array ``prepare_prediction`` made; ``stage`` names its block tracking,
    so that a killed job, rerun, predicts only the blocks it had not finished."""
    staged = arrays.staging(out_path)
    attrs = zarr.open(staged, mode="r").attrs
    raw_path = attrs["raw"]
    augmentation = attrs["test_time_augmentation"]
    vs = arrays.open_array(raw_path).voxel_size
    context = Predictor.load(checkpoint, vs.dims, "cpu", augmentation).context(vs)
    block = Coordinate(attrs["block"])
    threads = max(1, len(os.sched_getaffinity(0)) // num_workers)  # the job's cores (SLURM)
    worker = PredictWorker(str(checkpoint), raw_path, staged, device, threads, augmentation)
    blockwise.run(
        stage,
        staged,
        total_roi=part.grow(context, context),
        read_roi=Roi((0,) * vs.dims, block).grow(context, context),
        write_roi=Roi((0,) * vs.dims, block),
        worker=worker,
        num_workers=num_workers,
        log_dir=log_dir,
    )


def predict_blockwise(
    checkpoint: str | Path,
    raw_path: str,
    out_path: str,
    roi: Roi | None = None,
    num_workers: int = 2,
    block_shape: Coordinate | None = None,
    device: str = "auto",
    log_dir: str | Path | None = None,
    dtype: str = "float32",
    superblock_shape: Sequence[int] | None = None,
    augmentation: tta.Mode = "none",
) -> Array:
    """Predict ``roi`` of ``raw_path`` into ``out_path``: affinities as float32, or as
    uint8 (a quarter of the disk), averaged over the views ``augmentation`` names.
    The array's attributes hold the scale and the network's neighbourhood (which
    axes the affinities connect).

    The array is written under a staged name and renamed once every block is
    done; rerun after a kill, only the unfinished blocks are predicted. With
    ``superblock_shape`` (voxels, whole blocks), superblock after superblock.
    """
    roi, block = prepare_prediction(
        checkpoint, raw_path, out_path, roi, block_shape, dtype, augmentation
    )
    vs = arrays.open_array(raw_path).voxel_size
    plan = Superblocks.plan(roi, vs, block / vs, superblock_shape)
    for index in plan.indices():
        stage = "predict" if len(plan) == 1 else f"predict-{plan.name(index)}"
        part = plan.roi_of(index)
        predict_part(checkpoint, out_path, part, stage, num_workers, device, log_dir)
    blockwise.publish(out_path)
    return arrays.open_array(out_path)


def predict(
    checkpoint: str | Path,
    out_path: str,
    stage: PredictStage,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> Array:
    """Rules predict and validate_predict: ``stage`` says what to predict and how to
    store it; the ROI is the stage's, or its ``roi_of`` array's (a GT crop)."""
    roi = arrays.parse_roi(stage.roi) if stage.roi else None
    if stage.roi_of is not None:
        roi = arrays.open_array(stage.roi_of).roi
    block_shape = Coordinate(stage.block_shape) if stage.block_shape else None
    log.info("predicting %s with %s (iteration %s)", stage.raw, checkpoint, stage.iteration)
    return predict_blockwise(
        checkpoint,
        stage.raw,
        out_path,
        roi=roi,
        num_workers=num_workers,
        block_shape=block_shape,
        log_dir=log_dir,
        dtype=stage.dtype,
        augmentation=stage.test_time_augmentation,
    )
