"""Training in chunks: from checkpoint ``it - n`` to checkpoint ``it``.

Batches come from a gunpowder pipeline: samples lie inside the GT ROI, the
network's context comes from the real raw around it (padded only where raw
ends). The randomness of batch ``i`` is seeded by (run seed, ``i``), so a chunk
boundary does not change what the network sees.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gunpowder as gp
import numpy as np
import torch
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from tqdm import tqdm

from . import arrays
from .augment import node as augment_node
from .config import DatasetConfig, ResolvedRun, TrainerConfig
from .model import UNet, output_shape
from .task import BalanceAffinities, gunpowder_neighborhood, loss, num_channels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Keys:
    raw: gp.ArrayKey = gp.ArrayKey("RAW")
    gt: gp.ArrayKey = gp.ArrayKey("GT")
    mask: gp.ArrayKey = gp.ArrayKey("MASK")
    target: gp.ArrayKey = gp.ArrayKey("TARGET")
    target_mask: gp.ArrayKey = gp.ArrayKey("TARGET_MASK")
    weights: gp.ArrayKey = gp.ArrayKey("WEIGHTS")


KEYS = Keys()


def intensity_scale(dtype: np.dtype) -> float:
    """Factor that maps raw intensities to [0, 1]; shared by training and prediction."""
    dtype = np.dtype(dtype)
    return 1.0 / np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _mask_array(dataset: DatasetConfig, gt: Array) -> Array:
    if dataset.mask is not None:
        return arrays.open_array(arrays.array_path(dataset.container, dataset.mask))
    ones = np.ones(gt.shape, dtype=np.uint8)
    return Array(ones, offset=gt.offset, voxel_size=gt.voxel_size)


def _source(dataset: DatasetConfig, min_masked: float) -> gp.Pipeline:
    """One training volume: raw (padded where it ends), gt, mask; a random location."""
    raw = arrays.open_array(arrays.array_path(dataset.container, dataset.raw))
    gt = arrays.open_array(arrays.array_path(dataset.container, dataset.gt))
    mask = _mask_array(dataset, gt)
    return (
        (
            gp.ArraySource(KEYS.raw, raw, interpolatable=True),
            gp.ArraySource(KEYS.gt, gt, interpolatable=False),
            gp.ArraySource(KEYS.mask, mask, interpolatable=False),
        )
        + gp.MergeProvider()
        + gp.Normalize(KEYS.raw, factor=intensity_scale(raw.dtype))
        + gp.Pad(KEYS.raw, None)
        + gp.RandomLocation(min_masked=min_masked, mask=KEYS.mask)
    )


def training_voxel_size(resolved: ResolvedRun, datasets: dict[str, DatasetConfig]) -> Coordinate:
    """The voxel size of the (first) training raw: shapes in voxels become world units."""
    first = datasets[resolved.run.datasplit.train[0]]
    return arrays.open_array(arrays.array_path(first.container, first.raw)).voxel_size


def build_pipeline(
    resolved: ResolvedRun, datasets: dict[str, DatasetConfig], voxel_size: Coordinate
) -> gp.Pipeline:
    """Sources -> random choice -> augmentations -> affinities + balanced weights."""
    run = resolved.run
    split = run.datasplit
    sources = tuple(_source(datasets[name], run.trainer.min_masked) for name in split.train)
    pipeline = sources + gp.RandomProvider(probabilities=split.train_weights)
    for augment in run.trainer.augments:
        pipeline += augment_node(augment, KEYS.raw, voxel_size)
    pipeline += gp.AddAffinities(
        gunpowder_neighborhood(run.task),
        labels=KEYS.gt,
        affinities=KEYS.target,
        labels_mask=KEYS.mask,
        affinities_mask=KEYS.target_mask,
        dtype=np.float32,
    )
    pipeline += BalanceAffinities(KEYS.target, KEYS.target_mask, KEYS.weights)
    pipeline += gp.Unsqueeze([KEYS.raw])
    pipeline += gp.Stack(run.trainer.batch_size)
    return pipeline


def make_request(resolved: ResolvedRun, voxel_size: Coordinate, seed: int) -> gp.BatchRequest:
    """One batch: raw at the input shape, targets at the output shape, centred."""
    arch = resolved.run.architecture
    in_size = Coordinate(arch.input_shape) * voxel_size
    out_size = output_shape(arch, arch.input_shape) * voxel_size
    context = (in_size - out_size) / 2
    request = gp.BatchRequest(random_seed=seed)
    request.add(KEYS.raw, in_size)
    for key in (KEYS.gt, KEYS.mask, KEYS.target, KEYS.weights):
        request[key] = gp.ArraySpec(roi=Roi(context, out_size))
    return request


def batch_seed(seed: int, iteration: int) -> int:
    """The random seed of batch ``iteration``: a function of (seed, iteration) only."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def new_model(resolved: ResolvedRun) -> UNet:
    torch.manual_seed(resolved.seed)
    return UNet(resolved.run.architecture, 1, num_channels(resolved.run.task))


def new_optimizer(trainer: TrainerConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer; its learning rate is then scaled by the schedule."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}
    return kinds[trainer.optimizer](
        model.parameters(), lr=trainer.learning_rate, weight_decay=trainer.weight_decay
    )


def model_config(resolved: ResolvedRun) -> dict[str, Any]:
    """What a checkpoint needs to rebuild its network without the experiment config."""
    return {
        "architecture": resolved.run.architecture.model_dump(),
        "task": resolved.run.task.model_dump(),
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save under a temporary name, then rename: never a partial checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _write_snapshot(path: Path, batch: gp.Batch, prediction: np.ndarray) -> None:
    """The first sample of a batch, as zarr arrays at their world positions."""
    for name, key in (
        ("raw", KEYS.raw),
        ("gt", KEYS.gt),
        ("mask", KEYS.mask),
        ("target", KEYS.target),
        ("weights", KEYS.weights),
    ):
        array = batch[key]
        data = array.data[0]
        if name == "raw":
            data = data[0]
        arrays.write_numpy(path / name, data, array.spec.voxel_size, array.spec.roi.offset)
    spec = batch[KEYS.target].spec
    arrays.write_numpy(path / "prediction", prediction[0], spec.voxel_size, spec.roi.offset)


def train(
    resolved: ResolvedRun,
    datasets: dict[str, DatasetConfig],
    until: int,
    checkpoint_out: str | Path,
    start_checkpoint: str | Path | None = None,
    stats_out: str | Path | None = None,
    snapshot_dir: str | Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train up to iteration ``until``, from ``start_checkpoint`` if given."""
    if threads:
        torch.set_num_threads(threads)
    run = resolved.run
    device = resolve_device(run.trainer.device)
    model = new_model(resolved).to(device)
    optimizer = new_optimizer(run.trainer, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, run.trainer.learning_rate_factor)
    start = 0
    if start_checkpoint is not None:
        state = load_checkpoint(start_checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["iteration"])
        torch.set_rng_state(state["torch_rng"])
    voxel_size = training_voxel_size(resolved, datasets)
    pipeline = build_pipeline(resolved, datasets, voxel_size)
    stats = []
    model.train()
    with gp.build(pipeline):
        for it in tqdm(range(start + 1, until + 1), desc=f"train {resolved.name}", mininterval=5):
            t0 = time.perf_counter()
            request = make_request(resolved, voxel_size, batch_seed(resolved.seed, it))
            batch = pipeline.request_batch(request)
            tensors = [
                torch.from_numpy(batch[k].data).to(device)
                for k in (KEYS.raw, KEYS.target, KEYS.weights)
            ]
            optimizer.zero_grad()
            prediction = model(tensors[0])
            value = loss(prediction, tensors[1], tensors[2])
            value.backward()
            optimizer.step()
            rate = scheduler.get_last_lr()[0]
            scheduler.step()
            stats.append(
                {
                    "iteration": it,
                    "loss": value.item(),
                    "learning_rate": rate,
                    "seconds": time.perf_counter() - t0,
                }
            )
            if snapshot_dir is not None and it % run.trainer.snapshot_interval == 0:
                pred = prediction.detach().cpu().numpy()
                _write_snapshot(Path(snapshot_dir) / f"{it}.zarr", batch, pred)
    save_checkpoint(
        Path(checkpoint_out),
        {
            "iteration": until,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "model_config": model_config(resolved),
            "torch_rng": torch.get_rng_state(),
        },
    )
    summary = {"run": resolved.name, "start": start, "until": until, "iterations": stats}
    if stats_out is not None:
        arrays.write_json(stats_out, summary)
    return summary
