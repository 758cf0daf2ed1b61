"""Training in chunks: from checkpoint ``it - n`` to checkpoint ``it``.

Batches come from ``batches`` (seeded by iteration, so a chunk boundary does not
change what the network sees). A run that starts from another run's checkpoint
(fine-tuning) takes every layer whose shape still fits and re-initialises the rest.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

import gunpowder as gp
import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import arrays, pretrained
from .batches import KEYS, batches
from .checkpoint import load_checkpoint, model_config, resolve_device, save_checkpoint
from .config import Task, TrainerConfig
from .geometry import INPUT_CHANNELS, head_channels
from .model import UNet, activate, precision
from .stages import TrainStage
from .task import loss

log = logging.getLogger(__name__)


def new_model(stage: TrainStage) -> UNet:
    torch.manual_seed(stage.seed)
    return UNet(
        stage.architecture, INPUT_CHANNELS, head_channels(stage.task), stage.task.activation
    )


def new_optimizer(trainer: TrainerConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer; its learning rate is then scaled by the schedule."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}
    return kinds[trainer.optimizer](
        model.parameters(), lr=trainer.learning_rate, weight_decay=trainer.weight_decay
    )


def new_average(trainer: TrainerConfig, model: UNet) -> AveragedModel | None:
    """The moving average of ``model``'s weights (``trainer.ema_decay``), if asked for:
    checkpoints far apart in quality are common early in training, and the average
    smooths them at no cost in iterations."""
    if not trainer.ema_decay:
        return None
    return AveragedModel(model, multi_avg_fn=partial(_ema_step, trainer.ema_decay))


def ema_decay_at(decay: float, averaged: int) -> float:
    """The decay of the update after ``averaged`` others: warmed up as TensorFlow's
    ExponentialMovingAverage does with ``num_updates``, ``(1 + n) / (10 + n)`` until
    that reaches ``decay``. With a fixed 0.999 the average still held 47% of the
    initial weights after 750 iterations (validation VOI 2.2 on real EM)."""
    return min(decay, (1 + averaged) / (10 + averaged))


def _ema_step(
    decay: float, averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor
) -> None:
    get_ema_multi_avg_fn(ema_decay_at(decay, int(n)))(averaged, current, n)


def _weights(model: UNet, average: AveragedModel | None) -> dict[str, Any]:
    """A checkpoint's weights: ``model`` holds those that predict (the average when
    there is one); the trained weights and the average's step count go beside it."""
    if average is None:
        return {"model": model.state_dict()}
    return {
        "model": average.module.state_dict(),
        "trained_model": model.state_dict(),
        "averaged_steps": int(average.n_averaged),
    }


def _resume(model: UNet, average: AveragedModel | None, state: dict[str, Any]) -> None:
    """The weights of a checkpoint written by ``_weights``, into ``model`` (trained)
    and ``average``."""
    model.load_state_dict(state.get("trained_model", state["model"]))
    if average is not None and "trained_model" in state:
        average.module.load_state_dict(state["model"])
        average.n_averaged.fill_(state["averaged_steps"])


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


def init_from(model: torch.nn.Module, checkpoint: str | Path) -> list[str]:
    """Fine-tuning: copy the weights that fit from another run's checkpoint or a start
    file (``pretrained``); the names of those that don't.

    A new head (another number of channels) or a changed layer keeps its fresh
    initialisation, and the caller reports it. A file of which nothing fits is an error.
    """
    source = pretrained.load_state_dict(checkpoint)
    state = model.state_dict()
    fits = {n for n, t in state.items() if n in source and source[n].shape == t.shape}
    if not fits:
        raise pretrained.StartError(f"{checkpoint}: no layer fits this run's network")
    fresh = [
        f"{name} {tuple(source[name].shape) if name in source else 'missing'} -> {tuple(t.shape)}"
        for name, t in state.items()
        if name not in fits
    ]
    model.load_state_dict({**state, **{n: source[n] for n in fits}})
    for line in fresh:
        log.warning("re-initialised (shape differs from %s): %s", checkpoint, line)
    return fresh


def _step(
    model: UNet,
    task: Task,
    optimizer: torch.optim.Optimizer,
    batch: gp.Batch,
    device: torch.device,
    mixed: bool = False,
) -> tuple[float, torch.Tensor]:
    """One optimisation step on a batch: (loss, the head's logits); ``mixed``: the
    forward pass in bf16 autocast, the loss in float32."""
    raw, target, weights = (
        torch.from_numpy(batch[k].data).to(device) for k in (KEYS.raw, KEYS.target, KEYS.weights)
    )
    optimizer.zero_grad()
    with precision(device, mixed):
        logits = model.logits(raw).float()
    value = loss(task, logits, target, weights)
    value.backward()
    optimizer.step()
    return value.item(), logits


def train(
    stage: TrainStage,
    until: int,
    checkpoint_out: str | Path,
    start_checkpoint: str | Path | None = None,
    stats_out: str | Path | None = None,
    snapshot_dir: str | Path | None = None,
    threads: int | None = None,
    init_checkpoint: str | Path | None = None,
    name: str = "run",
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train up to iteration ``until``, from ``start_checkpoint`` if given; ``name``
    (the run's) labels the progress bar and the statistics; ``provenance`` is stored
    in the checkpoint, with its iteration.

    ``init_checkpoint`` (another run's, or a start file: see ``pretrained``) only
    initialises the weights of a run's first chunk; optimizer and schedule start fresh.
    """
    if threads:
        torch.set_num_threads(threads)
    trainer = stage.trainer
    device = resolve_device(trainer.device)
    model = new_model(stage).to(device)
    optimizer = new_optimizer(trainer, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, trainer.learning_rate_factor)
    average = new_average(trainer, model)
    start, origin = 0, None
    if start_checkpoint is not None:
        state = load_checkpoint(start_checkpoint)
        _resume(model, average, state)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["iteration"])
        torch.set_rng_state(state["torch_rng"])
    elif init_checkpoint is not None:
        origin = {"checkpoint": str(init_checkpoint), "fresh": init_from(model, init_checkpoint)}
    stats = []
    model.train()
    iterations = range(start + 1, until + 1)
    progress = tqdm(total=len(iterations), desc=f"train {name}", mininterval=5)
    t0 = time.perf_counter()
    for it, batch in batches(stage, iterations, trainer.num_data_fetchers):
        value, logits = _step(model, stage.task, optimizer, batch, device, trainer.mixed_precision)
        if average is not None:
            average.update_parameters(model)
        rate = scheduler.get_last_lr()[0]
        scheduler.step()
        now = time.perf_counter()
        stats.append({"iteration": it, "loss": value, "learning_rate": rate, "seconds": now - t0})
        t0 = now
        progress.update()
        if snapshot_dir is not None and it % trainer.snapshot_interval == 0:
            pred = activate(logits.detach(), model.activation).cpu().numpy()
            _write_snapshot(Path(snapshot_dir) / f"{it}.zarr", batch, pred)
    progress.close()
    save_checkpoint(
        Path(checkpoint_out),
        {
            "iteration": until,
            **_weights(model, average),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "model_config": model_config(stage),
            "torch_rng": torch.get_rng_state(),
            "provenance": {**(provenance or {}), "iteration": until},
        },
    )
    summary = {"run": name, "start": start, "until": until, "iterations": stats}
    if origin is not None:
        summary["initialised_from"] = origin
    if stats_out is not None:
        arrays.write_json(stats_out, summary)
    return summary
