"""A UNet with valid convolutions (2D or 3D); its geometry is in ``geometry``.

Valid convolutions make the output a function of a fixed input window only, so
blockwise prediction is seamless.

A 2D network also runs on a 3D stack, each section on its own (see ``sections``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import Activation, UNetConfig


def activate(logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    """The head's output function on (N, C, ...) logits (softmax over channels)."""
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    return torch.sigmoid(logits) if activation == "sigmoid" else torch.tanh(logits)


def _conv_pass(dims: int, fin: int, fout: int, kernel: int) -> nn.Sequential:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return nn.Sequential(
        conv(fin, fout, kernel), nn.ReLU(inplace=True), conv(fout, fout, kernel), nn.ReLU(True)
    )


def _center_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    spatial = x.shape[2:]
    slices = [slice((s - t) // 2, (s - t) // 2 + t) for s, t in zip(spatial, shape, strict=True)]
    return x[(slice(None), slice(None), *slices)]


class UNet(nn.Module):
    """Encoder/decoder with skip connections; ``out_channels`` outputs through the
    task's ``activation``. ``logits`` is the output before it, which a loss may need
    (cross-entropy takes logits: stabler than the log of a softmax)."""

    def __init__(
        self,
        config: UNetConfig,
        in_channels: int,
        out_channels: int,
        activation: Activation = "sigmoid",
    ) -> None:
        super().__init__()
        self.config = config
        self.activation = activation
        dims = len(config.input_shape)
        k = config.kernel_size
        fmaps = [config.fmaps * config.fmap_inc_factor**i for i in range(self.levels + 1)]
        pool = nn.MaxPool3d if dims == 3 else nn.MaxPool2d
        upconv = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        fin = in_channels
        for level, factor in enumerate(config.downsample_factors):
            self.down.append(_conv_pass(dims, fin, fmaps[level], k))
            self.pools.append(pool(tuple(factor), tuple(factor)))
            fin = fmaps[level]
        self.bottom = _conv_pass(dims, fin, fmaps[self.levels], k)
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for level in reversed(range(self.levels)):
            factor = tuple(config.downsample_factors[level])
            self.ups.append(upconv(fmaps[level + 1], fmaps[level], factor, factor))
            self.up_convs.append(_conv_pass(dims, 2 * fmaps[level], fmaps[level], k))
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.head = conv(fmaps[0], out_channels, 1)

    @property
    def levels(self) -> int:
        return len(self.config.downsample_factors)

    @property
    def dims(self) -> int:
        return len(self.config.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *spatial) -> (N, out_channels, *smaller spatial), activated."""
        return activate(self.logits(x), self.activation)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before its activation; a 2D network given a stack
        (N, C, Z, Y, X) processes its Z sections as a batch of images."""
        if x.dim() == self.dims + 3:
            n, _, z = x.shape[:3]
            images = self.logits(x.transpose(1, 2).flatten(0, 1))
            return images.unflatten(0, (n, z)).transpose(1, 2)
        skips = []
        for down, pool in zip(self.down, self.pools, strict=True):
            x = down(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips), strict=True):
            x = up(x)
            x = conv(torch.cat([_center_crop(skip, x.shape[2:]), x], dim=1))
        return self.head(x)
