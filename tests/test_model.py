"""The UNet: computed output shapes match a real forward pass; bad shapes are named."""

import pytest
import torch

from dacapo_core.config import UNetConfig
from dacapo_core.geometry import ShapeError, output_shape
from dacapo_core.model import UNet


@pytest.mark.parametrize(
    ("factors", "shape"),
    [
        ([[2, 2, 2], [2, 2, 2]], [60, 60, 60]),
        ([[2, 2, 2]], [44, 44, 44]),
        ([[1, 2, 2]], [20, 44, 44]),
    ],
)
def test_output_shape_matches_forward(factors, shape):
    """The computed shape is the real one, and the output is a function of its input
    window alone: a window one grid step further gives the same values where both
    overlap (what seamless blockwise prediction relies on)."""
    cfg = UNetConfig(input_shape=shape, fmaps=4, fmap_inc_factor=2, downsample_factors=factors)
    torch.manual_seed(0)
    net = UNet(cfg, 1, 3)
    step = [int(torch.tensor(f).prod()) for f in zip(*factors, strict=True)]
    x = torch.rand(1, 1, *(s + t for s, t in zip(shape, step, strict=True)))
    with torch.no_grad():
        out = net(x[(..., *(slice(0, s) for s in shape))])
        shifted = net(x[(..., *(slice(t, None) for t in step))])
    assert tuple(out.shape[1:]) == (3, *output_shape(cfg, shape))
    overlap = tuple(slice(t, None) for t in step)
    back = tuple(slice(0, o - t) for o, t in zip(out.shape[2:], step, strict=True))
    assert torch.allclose(out[(..., *overlap)], shifted[(..., *back)], rtol=0, atol=1e-6)
    spread = (out - out.mean(dim=(2, 3, 4), keepdim=True)).abs().amax()
    assert spread > 1e-4  # the output varies in space: the comparison above could fail


def test_2d_unet():
    cfg = UNetConfig(input_shape=[44, 44], fmaps=2, downsample_factors=[[2, 2]])
    out = UNet(cfg, 1, 2)(torch.zeros(1, 1, 44, 44))
    assert tuple(out.shape[2:]) == tuple(output_shape(cfg, [44, 44]))


def test_invalid_input_shape_names_the_level():
    cfg = UNetConfig(input_shape=[61, 61, 61])
    with pytest.raises(ShapeError, match="downsampling level 0"):
        output_shape(cfg, cfg.input_shape)
