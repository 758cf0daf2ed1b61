"""The checkpoint format and the intensity scaling a network was trained with.

Both are a contract between training and prediction: prediction rebuilds the
network from the checkpoint alone (``model_config``) and must feed it raw scaled
as in training. They live here, not in ``train``, so that prediction does not
import the training pipeline (gunpowder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .stages import TrainStage


def model_config(stage: TrainStage) -> dict[str, Any]:
    """What a checkpoint needs to rebuild its network without the experiment config."""
    return {
        "architecture": stage.architecture.model_dump(),
        "task": stage.task.model_dump(),
        "mixed_precision": stage.trainer.mixed_precision,
    }


def predicting_weights(model: dict[str, Any], channels: int) -> dict[str, Any]:
    """A checkpoint's network weights for its first ``channels`` outputs only: a head
    trained with auxiliary channels (LSDs) drops them. The head is a 1x1 convolution,
    so its first rows compute exactly those channels; a head without auxiliary
    channels (every checkpoint before them) is unchanged."""
    return {n: t[:channels] if n.startswith("head.") else t for n, t in model.items()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save under a temporary name, then rename: never a partial checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's state on the CPU, tensors and plain data only (no pickled code)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU if there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def intensity_scale(dtype: np.dtype) -> float:
    """Factor that maps raw intensities to [0, 1]; shared by training and prediction."""
    dtype = np.dtype(dtype)
    return 1.0 / np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
