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
    cfg = UNetConfig(input_shape=shape, fmaps=2, fmap_inc_factor=2, downsample_factors=factors)
    net = UNet(cfg, 1, 3)
    out = net(torch.zeros(1, 1, *shape))
    assert tuple(out.shape[2:]) == tuple(output_shape(cfg, shape))
    assert out.shape[1] == 3 and out.min().item() >= 0 and out.max().item() <= 1


def test_2d_unet():
    cfg = UNetConfig(input_shape=[44, 44], fmaps=2, downsample_factors=[[2, 2]])
    out = UNet(cfg, 1, 2)(torch.zeros(1, 1, 44, 44))
    assert tuple(out.shape[2:]) == tuple(output_shape(cfg, [44, 44]))


def test_invalid_input_shape_names_the_level():
    cfg = UNetConfig(input_shape=[61, 61, 61])
    with pytest.raises(ShapeError, match="downsampling level 0"):
        output_shape(cfg, cfg.input_shape)
