"""Training batches: the gunpowder pipeline, and fetchers that prepare them ahead.

Samples lie inside the GT ROI, the network's context comes from the real raw
around it (padded only where raw ends). A class task's GT is the crop's class
masks (``classes``); a distances task reads them ``clip`` beyond the sample, and
LSDs (``lsds``) read GT the Gaussian's reach beyond it, where GT is padded as
unlabelled beyond the crop. A 2D network on a 3D stack gets samples
one section thick, and affinities within that section only. The randomness of
batch ``i`` is seeded by (run seed, ``i``) through the request, so batch ``i`` is
the same whether it is made in this process or by a fetcher process, in one
chunk or another.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import dask
import gunpowder as gp
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from . import arrays, classes, lsds
from .augment import node as augment_node
from .checkpoint import intensity_scale
from .classes import AddClassTarget, class_masks
from .config import AffinitiesTask, DatasetConfig, Task
from .geometry import lift, output_shape
from .stages import TrainStage
from .task import BalanceWeights, gunpowder_neighborhood


@dataclass(frozen=True)
class Keys:
    raw: gp.ArrayKey = gp.ArrayKey("RAW")
    gt: gp.ArrayKey = gp.ArrayKey("GT")
    mask: gp.ArrayKey = gp.ArrayKey("MASK")
    target: gp.ArrayKey = gp.ArrayKey("TARGET")
    target_mask: gp.ArrayKey = gp.ArrayKey("TARGET_MASK")
    weights: gp.ArrayKey = gp.ArrayKey("WEIGHTS")


KEYS = Keys()


def _mask_array(dataset: DatasetConfig, gt: Array) -> Array:
    if dataset.mask is not None:
        return arrays.open_array(arrays.array_path(dataset.container, dataset.mask))
    ones = np.ones(gt.shape, dtype=np.uint8)
    return Array(ones, offset=gt.offset, voxel_size=gt.voxel_size)


def _source(dataset: DatasetConfig, task: Task, min_masked: float) -> gp.Pipeline:
    """One training volume: raw (padded where it ends), gt (a class task's: the class
    masks), mask; a random location."""
    raw = arrays.open_array(arrays.array_path(dataset.container, dataset.raw))
    gt = arrays.open_array(arrays.array_path(dataset.container, dataset.gt))
    mask = _mask_array(dataset, gt)
    labels = gt if isinstance(task, AffinitiesTask) else class_masks(dataset, task)
    pipeline = (
        gp.ArraySource(KEYS.raw, raw, interpolatable=True),
        gp.ArraySource(KEYS.gt, labels, interpolatable=False),
        gp.ArraySource(KEYS.mask, mask, interpolatable=False),
    ) + gp.MergeProvider()
    pipeline += gp.Normalize(KEYS.raw, factor=intensity_scale(raw.dtype))
    pipeline += gp.Pad(KEYS.raw, None)
    margin = _gt_context(task, gt.voxel_size)
    if margin is not None:
        pipeline += gp.Pad(KEYS.gt, margin)
        pipeline += gp.Pad(KEYS.mask, margin)
    return pipeline + gp.RandomLocation(min_masked=min_masked, mask=KEYS.mask)


def _gt_context(task: Task, voxel_size: Coordinate) -> Coordinate | None:
    """World units of GT a target needs around its window, where it is padded as
    unlabelled beyond the crop; None: affinities, whose samples stay inside the crop."""
    if not isinstance(task, AffinitiesTask):
        return classes.context(task, voxel_size)
    return lsds.context(task, voxel_size) if task.lsds else None


def training_voxel_size(stage: TrainStage) -> Coordinate:
    """The voxel size of the (first) training raw: shapes in voxels become world units."""
    first = next(iter(stage.datasets.values()))
    return arrays.open_array(arrays.array_path(first.container, first.raw)).voxel_size


def build_pipeline(stage: TrainStage, voxel_size: Coordinate) -> gp.Pipeline:
    """Sources -> random choice -> augmentations -> target + balanced weights."""
    sources = tuple(
        _source(d, stage.task, stage.trainer.min_masked) for d in stage.datasets.values()
    )
    pipeline = sources + gp.RandomProvider(probabilities=stage.train_weights)
    network_dims = len(stage.architecture.input_shape)
    for augment in stage.trainer.augments:
        pipeline += augment_node(augment, KEYS.raw, voxel_size, network_dims)
    if isinstance(stage.task, AffinitiesTask):
        pipeline += gp.AddAffinities(
            gunpowder_neighborhood(stage.task, voxel_size.dims),
            labels=KEYS.gt,
            affinities=KEYS.target,
            labels_mask=KEYS.mask,
            affinities_mask=KEYS.target_mask,
            dtype=np.float32,
        )
    else:
        pipeline += AddClassTarget(stage.task, KEYS.gt, KEYS.mask, KEYS.target, KEYS.target_mask)
    pipeline += BalanceWeights(KEYS.target, KEYS.target_mask, KEYS.weights)
    if isinstance(stage.task, AffinitiesTask) and stage.task.lsds:
        pipeline += lsds.AppendLsds(stage.task, KEYS.gt, KEYS.mask, KEYS.target, KEYS.weights)
    pipeline += gp.Unsqueeze([KEYS.raw])
    pipeline += gp.Stack(stage.trainer.batch_size)
    return pipeline


def make_request(stage: TrainStage, voxel_size: Coordinate, seed: int) -> gp.BatchRequest:
    """One batch: raw at the input shape, targets at the output shape, centred."""
    arch = stage.architecture
    in_size = lift(arch.input_shape, voxel_size.dims) * voxel_size
    out_size = lift(output_shape(arch, arch.input_shape), voxel_size.dims) * voxel_size
    context = (in_size - out_size) / 2
    request = gp.BatchRequest(random_seed=seed)
    request.add(KEYS.raw, in_size)
    for key in (KEYS.gt, KEYS.mask, KEYS.target, KEYS.weights):
        request[key] = gp.ArraySpec(roi=Roi(context, out_size))
    return request


def batch_seed(seed: int, iteration: int) -> int:
    """The random seed of batch ``iteration``: a function of (seed, iteration) only."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


class BatchMaker:
    """A built pipeline that makes batch ``i`` on request (one per process)."""

    def __init__(self, stage: TrainStage) -> None:
        self.stage = stage
        self.voxel_size = training_voxel_size(stage)
        self.pipeline = build_pipeline(stage, self.voxel_size)
        self.pipeline.setup()

    def __call__(self, iteration: int) -> gp.Batch:
        seed = batch_seed(self.stage.seed, iteration)
        return self.pipeline.request_batch(make_request(self.stage, self.voxel_size, seed))

    def close(self) -> None:
        self.pipeline.internal_teardown()


_worker_maker: BatchMaker | Exception | None = None


def _start_worker(stage: TrainStage) -> None:
    global _worker_maker  # one pipeline per fetcher process, built once
    dask.config.set(scheduler="synchronous")  # the forked thread pool has no threads
    try:
        _worker_maker = BatchMaker(stage)
    except Exception as e:  # raised with the first batch, not as a broken pool
        _worker_maker = e


def _make_in_worker(iteration: int) -> gp.Batch:
    if isinstance(_worker_maker, Exception):
        raise _worker_maker
    assert _worker_maker is not None
    return _worker_maker(iteration)


def batches(
    stage: TrainStage,
    iterations: range,
    fetchers: int,
) -> Iterator[tuple[int, gp.Batch]]:
    """``(i, batch i)`` in order; with ``fetchers`` > 0, made ahead by that many processes.

    At most ``2 * fetchers`` batches wait in memory, so a slow network never lets
    the queue grow with the chunk length.
    """
    if fetchers == 0:
        maker = BatchMaker(stage)
        try:
            yield from ((i, maker(i)) for i in iterations)
        finally:
            maker.close()
        return
    # fork (as torch's DataLoader does): spawn would re-run a Snakemake script's top
    # level in each child; the children never touch torch, nor dask's inherited pool
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        fetchers, context, initializer=_start_worker, initargs=(stage,)
    ) as pool:
        pending: deque[tuple[int, Future]] = deque()
        upcoming = iter(iterations)
        for i in upcoming:
            pending.append((i, pool.submit(_make_in_worker, i)))
            if len(pending) >= 2 * fetchers:
                break
        while pending:
            i, future = pending.popleft()
            nxt = next(upcoming, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_make_in_worker, nxt)))
            yield i, future.result()
