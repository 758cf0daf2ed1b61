"""A UNet with valid convolutions (2D or 3D); its geometry is in ``geometry``.

Valid convolutions make the output a function of a fixed input window only, so
blockwise prediction is seamless.

A 2D network also runs on a 3D stack, each section on its own (see ``sections``).

This module needs nothing but torch at run time: a BioImage.IO export ships it
verbatim as the architecture source of ``UNetNetwork`` (plain arguments), and
``UNetNetwork`` compiles with ``torch.jit.script`` (the TorchScript weights).
``UNet`` is the same network built from a run's ``UNetConfig``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # not imported at run time: the file stands alone in an export
    from .config import Activation, UNetConfig


def activate(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """The head's output function on (N, C, ...) logits (softmax over channels)."""
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    return torch.tanh(logits)


def precision(device: torch.device, mixed: bool) -> torch.autocast:
    """The context of a forward pass: bf16 autocast when ``mixed`` (matrix work in
    bfloat16, reductions in float32), else plain float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed)


def _conv_pass(dims: int, fin: int, fout: int, kernel: int) -> nn.Sequential:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return nn.Sequential(
        conv(fin, fout, kernel), nn.ReLU(inplace=True), conv(fout, fout, kernel), nn.ReLU(True)
    )


def _center_crop(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    for d in range(len(shape)):
        x = x.narrow(2 + d, (x.shape[2 + d] - shape[d]) // 2, shape[d])
    return x


class UNetNetwork(nn.Module):
    """Encoder/decoder with skip connections on ``dims``-D images; ``out_channels``
    outputs through ``activation`` (sigmoid, tanh or softmax over channels).
    ``logits`` is the output before it, which a loss may need (cross-entropy takes
    logits: stabler than the log of a softmax)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: int,
        fmaps: int,
        fmap_inc_factor: int,
        downsample_factors: list[list[int]],
        kernel_size: int = 3,
        activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.activation = activation
        self.dims = dims
        levels = len(downsample_factors)
        k = kernel_size
        widths = [fmaps * fmap_inc_factor**i for i in range(levels + 1)]
        pool = nn.MaxPool3d if dims == 3 else nn.MaxPool2d
        upconv = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        fin = in_channels
        for level, factor in enumerate(downsample_factors):
            self.down.append(_conv_pass(dims, fin, widths[level], k))
            self.pools.append(pool(tuple(factor), tuple(factor)))
            fin = widths[level]
        self.bottom = _conv_pass(dims, fin, widths[levels], k)
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for level in reversed(range(levels)):
            factor = tuple(downsample_factors[level])
            self.ups.append(upconv(widths[level + 1], widths[level], factor, factor))
            self.up_convs.append(_conv_pass(dims, 2 * widths[level], widths[level], k))
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.head = conv(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *spatial) -> (N, out_channels, *smaller spatial), activated."""
        return activate(self.logits(x), self.activation)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before its activation; a 2D network given a stack
        (N, C, Z, Y, X) processes its Z sections as a batch of images."""
        if x.dim() == self.dims + 3:
            n, z = x.shape[0], x.shape[2]
            images = self._unet(x.transpose(1, 2).flatten(0, 1))
            return images.unflatten(0, (n, z)).transpose(1, 2)
        return self._unet(x)

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for down, pool in zip(self.down, self.pools):  # noqa: B905 (TorchScript)
            x = down(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        last = len(skips) - 1
        for i, (up, conv) in enumerate(zip(self.ups, self.up_convs)):  # noqa: B905
            x = up(x)
            skip = _center_crop(skips[last - i], x.shape[2:])
            x = conv(torch.cat([skip, x], dim=1))
        return self.head(x)


def network_kwargs(
    config: UNetConfig, in_channels: int, out_channels: int, activation: str
) -> dict:
    """``UNetNetwork``'s arguments for a run's architecture (plain values: an export
    writes them into its description)."""
    return {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "dims": len(config.input_shape),
        "fmaps": config.fmaps,
        "fmap_inc_factor": config.fmap_inc_factor,
        "downsample_factors": [list(f) for f in config.downsample_factors],
        "kernel_size": config.kernel_size,
        "activation": activation,
    }


class UNet(UNetNetwork):
    """``UNetNetwork`` built from a run's ``UNetConfig`` (kept as ``config``)."""

    def __init__(
        self,
        config: UNetConfig,
        in_channels: int,
        out_channels: int,
        activation: Activation = "sigmoid",
    ) -> None:
        super().__init__(**network_kwargs(config, in_channels, out_channels, activation))
        self.config = config

    @property
    def levels(self) -> int:
        return len(self.config.downsample_factors)
