"""Training: chunk-invariant reproducibility, resume after SIGKILL, schedules,
augmentations that keep raw and labels aligned, masks."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import gunpowder as gp
import numpy as np
import pytest
import torch
from conftest import TINY
from funlib.geometry import Coordinate, Roi

from dacapo_core import arrays, augment, batches, checkpoint, config, train
from dacapo_core.demo import make_demo
from dacapo_core.predict import Predictor
from dacapo_core.stages import TrainStage

#: every augmentation, so that all their randomness is covered by the seeding
AUGMENTS = [
    {"type": "simple"},
    {"type": "elastic", "control_point_spacing": [8, 8, 8], "jitter_sigma": [1, 1, 1]},
    {"type": "intensity"},
    {"type": "gamma"},
    {"type": "noise", "p": 1.0},
    {"type": "defect", "prob_missing": 0.1, "prob_low_contrast": 0.1},
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    container = f"{root}/demo.zarr"
    make_demo(container, seed=0)
    cfg = copy.deepcopy(TINY)
    for ds in cfg["datasets"].values():
        ds["container"] = container
    run = cfg["runs"]["tiny"]
    run["trainer"].update(
        augments=AUGMENTS, optimizer="adamw", weight_decay=0.01, warmup=2, decay="cosine"
    )
    run["trainer"]["decay_iterations"] = 8
    experiment = config.parse(cfg)
    return root, TrainStage.of(experiment.resolved_runs()["tiny"], experiment.datasets)


def state_of(path) -> dict:
    return checkpoint.load_checkpoint(path)


def assert_identical(a: dict, b: dict) -> None:
    for key in ("model",):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), name
    assert json.dumps(a["scheduler"], sort_keys=True) == json.dumps(b["scheduler"], sort_keys=True)
    for group_a, group_b in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        for name in group_a:
            assert torch.equal(torch.as_tensor(group_a[name]), torch.as_tensor(group_b[name]))


def test_two_chunks_give_the_bit_identical_checkpoint_of_one(demo):
    root, stage = demo
    train.train(stage, 6, root / "one/6.pt")
    train.train(stage, 3, root / "two/3.pt")
    stats = train.train(stage, 6, root / "two/6.pt", root / "two/3.pt")
    assert [s["iteration"] for s in stats["iterations"]] == [4, 5, 6]
    assert_identical(state_of(root / "one/6.pt"), state_of(root / "two/6.pt"))
    assert state_of(root / "two/6.pt")["iteration"] == 6


def test_learning_rate_follows_warmup_then_cosine_decay(demo):
    root, stage = demo
    stats = train.train(stage, 8, root / "lr/8.pt")
    rates = [s["learning_rate"] for s in stats["iterations"]]
    base = stage.trainer.learning_rate
    assert rates[0] == pytest.approx(base / 2) and rates[1] == pytest.approx(base)
    assert rates[2:] == sorted(rates[2:], reverse=True) and rates[-1] < 0.2 * base


TRAIN_JOB = """
import sys
from dacapo_core import train
from dacapo_core.stages import TrainStage
stage = TrainStage.model_validate_json(open(sys.argv[1]).read())
train.train(stage, int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None,
            stats_out=sys.argv[3] + ".json")
"""


def test_a_training_job_killed_mid_chunk_resumes_from_the_last_checkpoint(demo):
    root, stage = demo
    (root / "stage.json").write_text(stage.model_dump_json())
    job = [sys.executable, "-c", TRAIN_JOB, str(root / "stage.json")]
    ckpt_dir = root / "killed"
    assert subprocess.run([*job, "3", str(ckpt_dir / "3.pt")]).returncode == 0
    running = subprocess.Popen(
        [*job, "200", str(ckpt_dir / "200.pt"), str(ckpt_dir / "3.pt")], start_new_session=True
    )
    time.sleep(8)  # mid-chunk: imports done, some iterations trained
    os.killpg(running.pid, signal.SIGKILL)  # the job and its batch fetchers
    running.wait()
    assert sorted(p.name for p in ckpt_dir.iterdir() if p.suffix == ".pt") == ["3.pt"]
    # rerun: the chunk starts again from the last complete checkpoint
    assert (
        subprocess.run([*job, "6", str(ckpt_dir / "6.pt"), str(ckpt_dir / "3.pt")]).returncode == 0
    )
    # straight through, in a fresh process too: torch's thread count (which other tests
    # in this process may have set) changes the order of float sums
    assert subprocess.run([*job, "6", str(root / "straight/6.pt")]).returncode == 0
    assert_identical(state_of(ckpt_dir / "6.pt"), state_of(root / "straight/6.pt"))


def with_trainer(stage: TrainStage, **updates) -> TrainStage:
    trainer = config.TrainerConfig.model_validate(
        {**stage.trainer.model_dump(mode="json"), **updates}
    )
    return stage.model_copy(update={"trainer": trainer})


def batch(stage, datasets, augments, seed=7):
    """One batch of ``datasets`` with the given augmentations (and none of the run's)."""
    stage = with_trainer(stage, augments=augments).model_copy(update={"datasets": datasets})
    voxel_size = batches.training_voxel_size(stage)
    pipeline = batches.build_pipeline(stage, voxel_size)
    with gp.build(pipeline):
        return pipeline.request_batch(batches.make_request(stage, voxel_size, seed))


@pytest.fixture(scope="module")
def blocks(demo):
    """Labels in 16^3 blocks and raw = a brightness per label: raw and labels are
    aligned in a batch iff raw == brightness[labels] there."""
    root, _ = demo
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 50, (8, 8, 8))
    for axis in range(3):
        labels = np.repeat(labels, 16, axis)
    brightness = rng.integers(20, 235, 50).astype(np.uint8)
    container = f"{root}/blocks.zarr"
    arrays.write_numpy(f"{container}/raw", brightness[labels], Coordinate(8, 8, 8))
    arrays.write_numpy(f"{container}/gt", labels.astype(np.uint64), Coordinate(8, 8, 8))
    datasets = {"train_a": config.DatasetConfig(container=container, raw="raw", gt="gt")}
    return datasets, brightness / 255


def aligned(stage, blocks, augment, seed=3) -> tuple[np.ndarray, np.ndarray]:
    """(raw where the labels are, brightness of those labels) of one batch."""
    datasets, brightness = blocks
    result = batch(stage, datasets, [augment] if augment else [], seed=seed)
    raw, gt = result[batches.KEYS.raw], result[batches.KEYS.gt]
    inner = raw.data[0, 0][((gt.spec.roi - raw.spec.roi.offset) / 8).to_slices()]
    return inner, brightness[gt.data[0]]


def test_no_augment_batch_is_aligned(demo, blocks):
    raw, expected = aligned(demo[1], blocks, None)
    assert np.allclose(raw, expected, atol=1e-6)


@pytest.mark.parametrize(
    "augment",
    [
        {"type": "simple"},
        {"type": "elastic", "control_point_spacing": [8, 8, 8], "jitter_sigma": [2, 2, 2]},
    ],
)
def test_geometric_augments_keep_raw_and_labels_aligned(demo, blocks, augment):
    raw, expected = aligned(demo[1], blocks, augment)
    agree = np.abs(raw - expected) < 2 / 255
    assert agree.mean() > 0.7  # all but the interpolated voxels at label borders
    shifted = np.roll(expected, 8, axis=(0, 1, 2))  # what misalignment would look like
    assert (np.abs(raw - shifted) < 2 / 255).mean() < 0.4


def test_gamma_noise_and_defects_change_raw_as_specified(demo, blocks):
    raw, expected = aligned(demo[1], blocks, {"type": "gamma", "gamma": [2.0, 2.0]})
    assert np.allclose(raw, expected**2, atol=1e-6)
    raw, expected = aligned(demo[1], blocks, {"type": "noise", "var": 0.01, "p": 1.0})
    assert 0.08 < (raw - expected).std() < 0.11  # sqrt(var), a little less where clipped
    missing = {"type": "defect", "prob_missing": 0.5, "prob_low_contrast": 0}
    raw, expected = aligned(demo[1], blocks, missing)
    gone = [z for z in range(len(raw)) if not raw[z].any()]
    kept = [z for z in range(len(raw)) if np.allclose(raw[z], expected[z])]
    assert gone and kept and len(gone) + len(kept) == len(raw)  # whole sections, along z


def test_min_masked_rejects_samples_outside_the_mask(tmp_path, demo):
    _, stage = demo
    labels = np.ones((40, 64, 96), np.uint64)
    mask = np.zeros_like(labels, dtype=np.uint8)
    mask[:, :, 48:] = 1  # only the right half is labelled
    x = np.broadcast_to(np.arange(96, dtype=np.uint8), labels.shape)  # raw tells where we are
    container = f"{tmp_path}/m.zarr"
    for name, data in (("raw", x), ("gt", labels), ("mask", mask)):
        arrays.write_numpy(f"{container}/{name}", np.ascontiguousarray(data), Coordinate(8, 8, 8))
    datasets = {
        "train_a": config.DatasetConfig(container=container, raw="raw", gt="gt", mask="mask")
    }
    for min_masked, inside in ((0.9, lambda f: f >= 0.85), (0.0, lambda f: f < 0.85)):
        fractions = []
        for seed in range(8):
            result = batch(with_trainer(stage, min_masked=min_masked), datasets, [], seed)
            raw, weights = result[batches.KEYS.raw], result[batches.KEYS.weights]
            where = (weights.spec.roi - raw.spec.roi.offset) / 8
            position = np.rint(raw.data[0, 0][where.to_slices()] * 255)
            fractions.append((position >= 48).mean())
            assert not weights.data[0][:, position < 48].any()  # no loss outside the mask
        assert inside(min(fractions)), fractions


def test_fetcher_processes_make_the_same_batches_as_the_training_process(demo):
    root, stage = demo
    for fetchers in (0, 2):
        run = with_trainer(stage, num_data_fetchers=fetchers)
        train.train(run, 4, root / f"fetchers{fetchers}/4.pt")
    assert_identical(state_of(root / "fetchers0/4.pt"), state_of(root / "fetchers2/4.pt"))


def test_fine_tuning_keeps_fitting_layers_and_reinitialises_a_new_head(demo):
    root, stage = demo
    train.train(stage, 2, root / "base/2.pt")
    task = config.AffinitiesTask(neighborhood=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    narrow = stage.model_copy(update={"task": task})
    model = train.new_model(narrow)
    fresh = train.init_from(model, root / "base/2.pt")
    assert [line.split()[0] for line in fresh] == ["head.weight", "head.bias"]
    base = state_of(root / "base/2.pt")["model"]
    state = model.state_dict()
    assert torch.equal(state["down.0.0.weight"], base["down.0.0.weight"])
    assert state["head.weight"].shape[0] == 3 != base["head.weight"].shape[0]
    stats = train.train(narrow, 2, root / "tuned/2.pt", init_checkpoint=root / "base/2.pt")
    assert stats["initialised_from"]["fresh"] == fresh
    assert state_of(root / "tuned/2.pt")["model"]["head.weight"].shape[0] == 3


def test_training_datasets_are_sampled_by_their_weights(tmp_path, demo):
    _, stage = demo
    datasets = {}
    for name, value in (("bright", 200), ("dark", 50)):
        container = f"{tmp_path}/{name}.zarr"
        raw = np.full((40, 64, 64), value, np.uint8)
        arrays.write_numpy(f"{container}/raw", raw, Coordinate(8, 8, 8))
        arrays.write_numpy(f"{container}/gt", np.ones(raw.shape, np.uint64), Coordinate(8, 8, 8))
        datasets[name] = config.DatasetConfig(container=container, raw="raw", gt="gt")

    def bright_fraction(weights: list[float]) -> float:
        weighted = stage.model_copy(update={"train_weights": weights})
        raws = [batch(weighted, datasets, [], seed)[batches.KEYS.raw].data for seed in range(12)]
        centres = [raw[(0, 0, *(np.array(raw.shape[2:]) // 2))] for raw in raws]  # inside gt
        return float(np.mean(np.isclose(centres, 200 / 255)))

    assert bright_fraction([1.0, 0.0]) == 1.0
    assert bright_fraction([0.0, 1.0]) == 0.0
    assert 0.0 < bright_fraction([0.5, 0.5]) < 1.0


def test_simple_augment_transposes_only_axes_of_equal_resolution(tmp_path, demo):
    """Anisotropic EM (z 40, y/x 8): swapping z with y would not fit the request."""
    _, stage = demo
    rng = np.random.default_rng(0)
    labels = np.repeat(np.repeat(rng.integers(1, 50, (12, 8, 8)), 16, 1), 16, 2)
    brightness = rng.integers(20, 235, 50).astype(np.uint8)
    container = f"{tmp_path}/aniso.zarr"
    arrays.write_numpy(f"{container}/raw", brightness[labels], Coordinate(40, 8, 8))
    arrays.write_numpy(f"{container}/gt", labels.astype(np.uint64), Coordinate(40, 8, 8))
    datasets = {"train_a": config.DatasetConfig(container=container, raw="raw", gt="gt")}
    arch = {"input_shape": [8, 44, 44], "eval_shape_increase": [0, 0, 0], "kernel_size": 1}
    arch = {**arch, "downsample_factors": [[1, 2, 2]]}
    stage = stage.model_copy(update={"architecture": config.UNetConfig(**arch)})
    square = augment.node(config.SimpleAugment(), batches.KEYS.raw, Coordinate(40, 8, 8), 3)
    assert square.transpose_only == [1, 2]  # y and x swap, z stays
    for seed in range(8):
        result = batch(stage, datasets, [{"type": "simple"}], seed=seed)
        raw, gt = result[batches.KEYS.raw], result[batches.KEYS.gt]
        under_gt = (gt.spec.roi - raw.spec.roi.offset) / Coordinate(40, 8, 8)
        inner = raw.data[0, 0][under_gt.to_slices()]
        assert np.allclose(inner, brightness[gt.data[0]] / 255, atol=1e-6)


def test_mixed_precision_trains_and_predicts_in_bf16_as_its_checkpoint_says(demo):
    """bf16 autocast (CPU here, as on a GPU): the loss stays finite, the checkpoint
    records the precision, its predictor uses it unless told otherwise, and bf16
    outputs are near float32's without being them (autocast really ran)."""
    root, stage = demo
    mixed = with_trainer(stage, mixed_precision=True)
    stats = train.train(mixed, 2, root / "bf16/2.pt")
    assert all(np.isfinite(s["loss"]) for s in stats["iterations"])
    assert state_of(root / "bf16/2.pt")["model_config"]["mixed_precision"] is True
    bf16 = Predictor.load(root / "bf16/2.pt", 3)
    fp32 = Predictor.load(root / "bf16/2.pt", 3, mixed_precision=False)
    assert bf16.mixed_precision and not fp32.mixed_precision
    raw = arrays.open_array(f"{root}/demo.zarr/validate/raw")
    roi = Roi(raw.roi.offset, fp32.output_shape * raw.voxel_size)
    low, high = bf16.predict(raw, roi), fp32.predict(raw, roi)
    assert low.dtype == np.float32 and not np.array_equal(low, high)
    assert np.abs(low - high).max() < 0.05


def test_weight_average_predicts_resumes_bit_identically_and_follows_its_decay(demo):
    """``ema_decay``: a checkpoint's ``model`` is the moving average (what predicts),
    its ``trained_model`` the weights training goes on from; two chunks give one
    chunk's checkpoint, and each step moves the average toward the trained weights
    by 1 minus that step's decay (warmed up)."""
    root, stage = demo
    decay = 0.75
    averaged = with_trainer(stage, ema_decay=decay)
    train.train(averaged, 4, root / "ema_one/4.pt")
    train.train(averaged, 3, root / "ema_two/3.pt")
    train.train(averaged, 4, root / "ema_two/4.pt", root / "ema_two/3.pt")
    step = train.ema_decay_at(decay, 3)  # the update after 3 others: warmed up, 4/13
    assert step == 4 / 13 and train.ema_decay_at(decay, 50) == decay
    one, two, three = (state_of(root / p) for p in ("ema_one/4.pt", "ema_two/4.pt", "ema_two/3.pt"))
    assert_identical(one, two)
    assert one["averaged_steps"] == 4 and three["averaged_steps"] == 3
    for name, trained in one["trained_model"].items():
        assert torch.equal(trained, two["trained_model"][name]), name
        expected = step * three["model"][name] + (1 - step) * trained
        assert torch.allclose(one["model"][name], expected, atol=1e-7), name
    assert not all(torch.equal(one["model"][n], t) for n, t in one["trained_model"].items())
    train.train(stage, 1, root / "no_ema/1.pt")
    assert "trained_model" not in state_of(root / "no_ema/1.pt")
