"""The affinities task (what the network predicts, its target), the balanced weights
every task uses, and each task's loss. The class tasks' targets are in ``classes``.

Offsets in the config are positive (``[1, 0, 0]`` = the voxel one step back in
z); channel ``c`` at voxel ``p`` is 1 iff ``p`` and ``p - offset[c]`` carry the
same nonzero label. This is waterz's convention, so the first ``dims`` channels
feed the watershed directly.
"""

from __future__ import annotations

import gunpowder as gp
import numpy as np
import torch

from .config import AffinitiesTask, OneHotTask, Task
from .geometry import auxiliary_channels, lift, num_channels
from .model import activate


def gunpowder_neighborhood(task: AffinitiesTask, dims: int) -> list[list[int]]:
    """gunpowder compares ``p`` with ``p + n``: negate our offsets, on ``dims``-D data
    (2D offsets on a 3D stack stay within a section)."""
    return [list(lift([-o for o in offset], dims, fill=0)) for offset in task.neighborhood]


def balanced_weights(target: np.ndarray, mask: np.ndarray, clip: float = 0.05) -> np.ndarray:
    """Per channel, weigh positives (target > 0) and negatives equally (within the mask).

    Boundaries are a few percent of all edges, a rare class a few percent of a crop;
    without balancing, a network that predicts "always connected" (or "never this
    class") has a low loss. ``clip`` bounds a rare side's weight (at 10x for 0.05).
    """
    weights = np.zeros(target.shape, dtype=np.float32)
    for c in range(target.shape[0]):
        labelled = mask[c] > 0
        n = labelled.sum()
        if n == 0:
            continue
        positive = (target[c] > 0) & labelled
        frac_pos = np.clip(positive.sum() / n, clip, 1 - clip)
        weights[c][positive] = 0.5 / frac_pos
        weights[c][labelled & ~positive] = 0.5 / (1 - frac_pos)
    return weights


class BalanceWeights(gp.BatchFilter):
    """Adds balanced weights per target channel (zero outside the target's mask)."""

    def __init__(self, target: gp.ArrayKey, mask: gp.ArrayKey, weights: gp.ArrayKey) -> None:
        self.target = target
        self.mask = mask
        self.weights = weights

    def setup(self) -> None:
        spec = self.spec[self.target].copy()
        spec.dtype = np.float32
        self.provides(self.weights, spec)

    def prepare(self, request: gp.BatchRequest) -> gp.BatchRequest:
        deps = gp.BatchRequest()
        deps[self.target] = request[self.weights].copy()
        deps[self.mask] = request[self.weights].copy()
        return deps

    def process(self, batch: gp.Batch, request: gp.BatchRequest) -> gp.Batch:
        target = batch[self.target]
        weights = balanced_weights(target.data, batch[self.mask].data)
        spec = target.spec.copy()
        spec.dtype = np.float32
        out = gp.Batch()
        out[self.weights] = gp.Array(weights, spec)
        return out


def loss(
    task: Task, logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The network's loss from its head's ``logits``; target and weights have a
    channel per head channel.

    Affinities and distances: weighted mean squared error of the activated output,
    as in the MALA / lsd pipelines and DaCapo. One-hot: cross-entropy, each voxel
    weighted by its class's weight (the weight of its target channel). Auxiliary
    channels (LSDs) add ``lsds_weight`` times their own weighted mean squared error
    of the sigmoid, as DaCapo's affinities loss does.
    """
    n = num_channels(task)
    value = _predicted_loss(task, logits[:, :n], target[:, :n], weights[:, :n])
    if auxiliary_channels(task):
        lsds = torch.sigmoid(logits[:, n:])
        value = value + task.lsds_weight * (weights[:, n:] * (lsds - target[:, n:]) ** 2).mean()
    return value


def _predicted_loss(
    task: Task, logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    if isinstance(task, OneHotTask):
        return -(weights * target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return (weights * (activate(logits, task.activation) - target) ** 2).mean()
