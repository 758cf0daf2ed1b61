"""Test-time augmentation: views undone exactly, blockwise as whole, neighbourhoods
that do not map onto themselves."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import TINY
from funlib.geometry import Coordinate, Roi

from dacapo_core import arrays, checkpoint, config, train, tta
from dacapo_core.config import AffinitiesTask, DistancesTask
from dacapo_core.predict import Predictor, predict_blockwise
from dacapo_core.stages import TrainStage

NEIGHBORHOOD_3D = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0], [0, 3, 0], [0, 0, 3]]
NEIGHBORHOOD_2D = [[1, 0], [0, 1], [3, 0], [0, 3]]

#: a real UNet small enough to predict blocks in many views quickly (context 8, step 2)
SMALL = {
    "input_shape": [20, 20, 20],
    "eval_shape_increase": [0, 0, 0],
    "fmaps": 2,
    "fmap_inc_factor": 2,
    "downsample_factors": [[2, 2, 2]],
}


class LabelAffinities(torch.nn.Module):
    """What a perfect network predicts from label-valued input: 1 where voxel ``p``
    and ``p - offset`` carry the same nonzero label; valid-cropped by ``context``.
    Exactly equivariant, so every view undone must give the same affinities."""

    def __init__(self, offsets: list[Coordinate], context: Coordinate) -> None:
        super().__init__()
        self.offsets, self.context = offsets, context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = x[0, 0]
        shape = labels.shape

        def window(shift: Coordinate) -> torch.Tensor:
            return labels[
                tuple(
                    slice(c - d, n - c - d)
                    for c, d, n in zip(self.context, shift, shape, strict=True)
                )
            ]

        centre = window(self.offsets[0] * 0)
        same = [(centre == window(o)) & (centre != 0) for o in self.offsets]
        return torch.stack(same).float()[None]


class Centre(torch.nn.Module):
    """A class network that outputs its input's centre: equivariant, like distances."""

    def __init__(self, context: Coordinate) -> None:
        super().__init__()
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        crop = (slice(c, n - c) for c, n in zip(self.context, x.shape[2:], strict=True))
        return x[:, :, *crop]


def blocky_labels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random labels in boxes of unequal sides (so no view maps them onto themselves)."""
    rng = np.random.default_rng(seed)
    sides = (2, 3, 4)[-len(shape) :]
    coarse = rng.integers(
        0, 4, [-(-n // s) for n, s in zip(shape, sides, strict=True)], dtype=np.uint8
    )
    for axis, side in enumerate(sides):
        coarse = coarse.repeat(side, axis=axis)
    return coarse[tuple(slice(n) for n in shape)]


def label_predictor(neighborhood: list[list[int]], network_dims: int, mode: tta.Mode) -> Predictor:
    """A predictor of affinities from labels with a step-2 window grid; a 2D network on a
    3D stack is one section thick."""
    context = Coordinate((0,) * (3 - network_dims) + (3,) * network_dims)
    output = Coordinate((1,) * (3 - network_dims) + (10,) * network_dims)
    step = Coordinate((1,) * (3 - network_dims) + (2,) * network_dims)
    offsets = [Coordinate((0,) * (3 - network_dims) + tuple(o)) for o in neighborhood]
    model = LabelAffinities(offsets, context)
    task = AffinitiesTask(neighborhood=neighborhood)
    cpu = torch.device("cpu")
    predictor = Predictor(model, output + context * 2, output, step, task, cpu, network_dims, mode)
    predictor.max_input_voxels = 20**3  # several windows per prediction
    return predictor


@pytest.mark.parametrize(
    ("neighborhood", "network_dims", "mode", "views"),
    [
        (NEIGHBORHOOD_3D, 3, "mirror", 8),
        (NEIGHBORHOOD_3D, 3, "mirror_transpose", 48),
        (NEIGHBORHOOD_2D, 2, "mirror", 4),  # a 2D network on a 3D stack: in-plane only
        (NEIGHBORHOOD_2D, 2, "mirror_transpose", 8),
    ],
)
def test_an_equivariant_predictor_is_unchanged_by_augmentation(
    tmp_path, neighborhood, network_dims, mode, views
):
    vs = Coordinate(8, 8, 8)
    labels = blocky_labels((30, 34, 38))
    arrays.write_numpy(f"{tmp_path}/l.zarr/labels", labels, vs, Coordinate(16, 8, 24))
    raw = arrays.open_array(f"{tmp_path}/l.zarr/labels")
    roi = Roi((24, 24, 40), (25 * 8, 27 * 8, 29 * 8))  # off the window grid, near raw's ends

    plain = label_predictor(neighborhood, network_dims, "none").predict(raw, roi)
    augmented = label_predictor(neighborhood, network_dims, mode)
    assert len(augmented.augmentations(vs)) == views
    assert 0 < plain.mean() < 1
    assert np.array_equal(augmented.predict(raw, roi), plain)


def test_a_class_output_is_undone_without_shifts(tmp_path):
    vs = Coordinate(8, 8, 8)
    values = np.random.default_rng(1).random((20, 22, 24), dtype=np.float32)
    arrays.write_numpy(f"{tmp_path}/v.zarr/raw", values, vs)
    raw = arrays.open_array(f"{tmp_path}/v.zarr/raw")
    context = Coordinate(2, 2, 2)
    task = DistancesTask(type="distances", classes={"a": {"labels": [1]}})
    output, step = Coordinate(6, 6, 6), Coordinate(2, 2, 2)
    cpu = torch.device("cpu")
    roi = Roi((8, 16, 8), (15 * 8, 17 * 8, 19 * 8))
    for mode in ("none", "mirror_transpose"):
        model = Centre(context)
        predictor = Predictor(model, output + context * 2, output, step, task, cpu, 3, mode)
        assert np.allclose(predictor.predict(raw, roi)[0], raw.to_ndarray(roi), atol=1e-6)


def test_blockwise_augmented_prediction_equals_one_whole_prediction(tmp_path):
    data = copy.deepcopy(TINY)
    data["runs"]["tiny"]["architecture"] = SMALL
    experiment = config.parse(data)
    stage = TrainStage.of(experiment.resolved_runs()["tiny"], experiment.datasets)
    ckpt = tmp_path / "model.pt"
    state = {"model": train.new_model(stage).state_dict()}
    checkpoint.save_checkpoint(ckpt, {**state, "model_config": checkpoint.model_config(stage)})
    vs = Coordinate(16, 8, 8)  # anisotropic: transposes only in-plane, 16 views
    raw_path = f"{tmp_path}/in.zarr/raw"
    raw_data = np.random.default_rng(2).integers(0, 255, (15, 25, 23), dtype=np.uint8)
    arrays.write_numpy(raw_path, raw_data, vs, Coordinate(32, 16, 8))
    raw = arrays.open_array(raw_path)
    roi = Roi((64, 32, 24), (8 * 16, 12 * 8, 8 * 8))  # on the grid (step 2) and raw's end

    mode = "mirror_transpose"
    out = f"{tmp_path}/p.zarr/prediction"
    blocks = predict_blockwise(ckpt, raw_path, out, roi, 1, Coordinate(8, 6, 8), augmentation=mode)
    whole = Predictor.load(ckpt, 3, "cpu", mode)
    assert len(whole.augmentations(vs)) == 16
    expected = whole.predict(raw, roi)
    assert np.allclose(blocks.to_ndarray(roi), expected, atol=1e-5)
    plain = Predictor.load(ckpt, 3, "cpu").predict(raw, roi)
    assert not np.allclose(expected, plain, atol=1e-3)  # the views were averaged


class Counted(torch.nn.Module):
    """Counts its module's forward passes."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.module(x)


def test_a_block_on_the_grid_is_one_window_in_every_view(tmp_path):
    """Margins in whole steps and every view's grid on the raw's origin: a block on the
    grid needs one window per view, whatever the raw's far end."""
    vs = Coordinate(8, 8, 8)
    arrays.write_numpy(f"{tmp_path}/l.zarr/labels", blocky_labels((31, 33, 35)), vs)
    raw = arrays.open_array(f"{tmp_path}/l.zarr/labels")
    predictor = label_predictor(NEIGHBORHOOD_3D, 3, "mirror")
    predictor.max_input_voxels = 40**3
    predictor.model = Counted(predictor.model)
    predictor.predict(raw, Roi((16, 32, 48), (12 * 8, 14 * 8, 16 * 8)))
    assert predictor.model.calls == 8


def test_views_that_do_not_map_the_neighbourhood_onto_itself_are_left_out():
    vs = Coordinate(8, 8, 8)
    no_long_x = [Coordinate(o) for o in NEIGHBORHOOD_3D[:5]]
    kept = tta.plan("mirror_transpose", vs, 3, 5, no_long_x)
    assert {a.view.axes for a in kept} == {(0, 1, 2), (1, 0, 2)}  # z and y swap, x stays
    assert len(kept) == 16
    diagonal = [Coordinate(o) for o in [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]]]
    mirrors = tta.plan("mirror", vs, 3, 4, diagonal)
    assert {a.view.flips[1:] for a in mirrors} == {(False, False), (True, True)}


@pytest.mark.parametrize(
    "neighborhood",
    [[[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [0, 3, 0], [0, 0, 4]], [[1, 0], [0, 1], [3, 0]]],
)
def test_transposes_no_neighbourhood_allows_are_a_config_error(neighborhood):
    data = copy.deepcopy(TINY)
    run = data["runs"]["tiny"]
    run.update(task={"neighborhood": neighborhood}, test_time_augmentation="mirror_transpose")
    if len(neighborhood[0]) == 2:
        run["architecture"] = {"input_shape": [44, 44], "eval_shape_increase": [16, 16]}
        run["architecture"]["downsample_factors"] = [[2, 2]]
    where = r"runs\.tiny\.test_time_augmentation: no transpose"
    with pytest.raises(config.ConfigError, match=where):
        config.parse(data)
    run["test_time_augmentation"] = "mirror"
    config.parse(data)
