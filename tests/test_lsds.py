"""Local shape descriptors: the target against a direct computation, and an affinities
run with ``lsds`` that trains on them and predicts affinities only."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import ARCH_2D, TINY
from funlib.geometry import Coordinate, Roi
from lsd.train.local_shape_descriptor import get_local_shape_descriptors

from dacapo_core import arrays, batches, checkpoint, config, lsds, train
from dacapo_core.config import AffinitiesTask
from dacapo_core.demo import cells, make_demo
from dacapo_core.model import UNet
from dacapo_core.predict import Predictor, predict_blockwise
from dacapo_core.stages import TrainStage
from dacapo_core.task import loss

VS = Coordinate(10, 8, 8)
SIGMA = 24.0


def sphere(radius: float = 40.0, shape: tuple[int, ...] = (17, 21, 21)) -> np.ndarray:
    """A ball of label 7 (radius in world units) at the centre voxel."""
    grid = np.indices(shape) - (np.array(shape) // 2)[:, None, None, None]
    world = grid * np.array(VS)[:, None, None, None]
    return ((world**2).sum(axis=0) <= radius**2).astype(np.uint64) * 7


def direct(labels: np.ndarray, voxel: tuple[int, int, int]) -> np.ndarray:
    """The 10 LSDs of one voxel from their definition: Gaussian weights (truncated at 3
    sigma per axis and normalised, as scipy's filter) over the voxel's object."""
    reach = [int(3 * SIGMA / v + 0.5) for v in VS]
    axes = [np.arange(-r, r + 1) for r in reach]
    kernels = [np.exp(-0.5 * (a * v / SIGMA) ** 2) for a, v in zip(axes, VS, strict=True)]
    kernels = [k / k.sum() for k in kernels]
    weights = np.einsum("i,j,k->ijk", *kernels)
    offsets = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T
    points = offsets + np.array(voxel)
    inside = np.all((points >= 0) & (points < labels.shape), axis=1)
    points, w = points[inside], weights.reshape(-1)[inside]
    w = w * (labels[tuple(points.T)] == labels[voxel])
    size = w.sum()
    world = points * np.array(VS)
    mean = (w[:, None] * world).sum(axis=0) / size
    centred = world - mean
    cov = (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(axis=0) / size
    var = np.diag(cov)
    pearson = [cov[a, b] / np.sqrt(var[a] * var[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    offset = mean - np.array(voxel) * np.array(VS)
    values = [*(offset / SIGMA * 0.5 + 0.5), *(var / SIGMA**2), *(np.array(pearson) * 0.5 + 0.5)]
    return np.clip([*values, size], 0, 1)


def test_lsds_of_a_sphere_match_their_definition():
    labels = sphere()
    window = tuple(slice(2, s - 2) for s in labels.shape)
    got = lsds.descriptors(labels, window, SIGMA, VS)
    assert got.shape == (10, 13, 17, 17) and got.dtype == np.float32
    centre = tuple(s // 2 - 2 for s in labels.shape)
    assert np.allclose(got[[0, 1, 2, 6, 7, 8], *centre], 0.5, atol=1e-5)  # offset 0, symmetric
    inner = labels[window]
    assert np.all(got[:, inner == 0] == 0)  # background
    for voxel in np.argwhere(inner)[::7]:
        expected = direct(labels, tuple(int(v) + 2 for v in voxel))
        assert np.allclose(got[:, *voxel], expected, atol=1e-4), voxel
    # off-centre voxels: the mean lies towards the centre (z offset positive below it)
    below = (centre[0] - 2, *centre[1:])
    assert got[0, *below] > 0.55 and got[3, *below] < got[3, *centre]


def test_object_by_object_equals_lsd_on_the_whole_array():
    labels = cells((24, 24, 24), 14, np.random.default_rng(3))
    labels[labels == labels[12, 12, 12]] = 0  # background inside the window too
    window = (slice(6, 18), slice(4, 20), slice(8, 22))
    ours = lsds.descriptors(labels, window, SIGMA, VS)
    whole = get_local_shape_descriptors(labels, (SIGMA,) * 3, voxel_size=VS)
    assert np.abs(ours - whole[(slice(None), *window)]).max() < 1e-4


def test_2d_lsds_have_six_channels_and_the_centre_is_neutral():
    disc = sphere(shape=(1, 21, 21))[0]
    got = lsds.descriptors(disc, (slice(None), slice(None)), SIGMA, VS[1:])
    assert got.shape == (6, 21, 21)
    assert np.allclose(got[[0, 1, 4], 10, 10], 0.5, atol=1e-5)


def test_the_loss_adds_the_weighted_lsd_error_to_the_affinities_loss():
    plain = AffinitiesTask()
    task = AffinitiesTask(lsds=True, lsds_weight=0.5)
    logits, target = torch.randn(1, 16, 4, 4, 4), torch.rand(1, 16, 4, 4, 4)
    weights = torch.rand(1, 16, 4, 4, 4)
    affinities = loss(plain, logits[:, :6], target[:, :6], weights[:, :6])
    lsd = (weights[:, 6:] * (torch.sigmoid(logits[:, 6:]) - target[:, 6:]) ** 2).mean()
    assert torch.isclose(loss(task, logits, target, weights), affinities + 0.5 * lsd)


def test_lsds_are_refused_on_a_class_task_and_need_a_positive_sigma():
    data = copy.deepcopy(TINY)
    data["runs"]["tiny"]["task"] = {"type": "distances", "classes": {"c": {"labels": "all"}}}
    data["runs"]["tiny"]["task"]["lsds"] = True
    with pytest.raises(config.ConfigError, match=r"runs\.tiny\.task\.lsds: unknown key"):
        config.parse(data)
    data["runs"]["tiny"]["task"] = {"lsds": True, "lsd_sigma": 0}
    with pytest.raises(config.ConfigError, match=r"runs\.tiny\.task\.lsd_sigma"):
        config.parse(data)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsds")
    make_demo(f"{root}/demo.zarr", seed=0)
    return root


def lsd_stage(root, run_update: dict) -> TrainStage:
    """TINY's training on the demo data, with ``lsds`` (sigma 40: a smaller context,
    a faster test) and ``run_update``."""
    data = copy.deepcopy(TINY)
    for ds in data["datasets"].values():
        ds["container"] = f"{root}/demo.zarr"
    run = data["runs"]["tiny"]
    run["task"] = {"lsds": True, "lsd_sigma": 40}
    run["trainer"].update(num_data_fetchers=0, snapshot_interval=3)
    run.update(run_update)
    experiment = config.parse(data)
    return TrainStage.of(experiment.resolved_runs()["tiny"], experiment.datasets)


@pytest.fixture(scope="module")
def lsd_run(demo):
    """Three training iterations of TINY with ``lsds``."""
    stats = train.train(lsd_stage(demo, {}), 3, demo / "3.pt", snapshot_dir=demo / "snapshots")
    return demo, stats


def test_an_lsds_run_trains_affinities_and_lsds(lsd_run):
    root, stats = lsd_run
    assert all(np.isfinite(s["loss"]) for s in stats["iterations"])
    state = checkpoint.load_checkpoint(root / "3.pt")
    assert state["model"]["head.weight"].shape[0] == 6 + 10
    snapshot = root / "snapshots/3.zarr"
    target, weights, gt = (
        np.asarray(arrays.open_array(snapshot / name).data) for name in ("target", "weights", "gt")
    )
    assert target.shape[0] == weights.shape[0] == 16
    assert np.all(target[6:, gt == 0] == 0) and target[6:, gt > 0].max() > 0.5
    assert np.all(weights[6:] == 1)  # all labelled: the LSDs weigh everywhere


def test_an_lsds_checkpoint_predicts_only_the_affinities(lsd_run):
    root, _ = lsd_run
    state = checkpoint.load_checkpoint(root / "3.pt")
    predictor = Predictor.load(root / "3.pt", 3)
    assert predictor.channels == 6 and predictor.model.head.out_channels == 6
    full = UNet(predictor.model.config, 1, 16)
    full.load_state_dict(state["model"])
    x = torch.rand(1, 1, *predictor.input_shape)
    with torch.no_grad():  # a 6- and a 16-channel head may take different CPU kernels
        torch.testing.assert_close(predictor.model(x), full(x)[:, :6], rtol=0, atol=1e-6)
    raw = f"{root}/demo.zarr/test/raw"
    roi = Roi(arrays.open_array(raw).roi.begin, (224, 224, 224))
    out = predict_blockwise(root / "3.pt", raw, f"{root}/p.zarr/affs", roi, num_workers=1)
    assert out.data.shape[0] == 6 and out.dtype == np.float32


def test_a_checkpoint_from_before_lsds_still_loads(lsd_run):
    root, _ = lsd_run
    state = checkpoint.load_checkpoint(root / "3.pt")
    old_task = {"type": "affinities", "neighborhood": AffinitiesTask().neighborhood}
    state["model_config"]["task"] = old_task
    state["model"] = checkpoint.predicting_weights(state["model"], 6)
    checkpoint.save_checkpoint(root / "old.pt", state)
    x = torch.rand(1, 1, 44, 44, 44)
    old, new = (Predictor.load(root / name, 3).model for name in ("old.pt", "3.pt"))
    with torch.no_grad():
        assert torch.equal(old(x), new(x))


def test_a_2d_network_on_a_stack_gets_the_lsds_of_each_section(demo):
    task = {"lsds": True, "lsd_sigma": 40, "neighborhood": [[1, 0], [0, 1]]}
    maker = batches.BatchMaker(lsd_stage(demo, {"task": task, "architecture": ARCH_2D}))
    try:
        batch = maker(0)
    finally:
        maker.close()
    target, weights = batch[batches.KEYS.target].data[0], batch[batches.KEYS.weights].data[0]
    gt = batch[batches.KEYS.gt].data[0]
    assert target.shape == weights.shape == (2 + 6, *gt.shape) and gt.shape[0] == 1
    assert np.all(target[2:, gt == 0] == 0) and np.all(weights[2:] == 1)
    assert 0.4 < np.median(target[2:4, gt > 0]) < 0.6  # mean offsets: about 0 on average
