"""Class tasks (distances, one_hot): class grouping, targets against direct
computations, unknown voxels masked (weight 0), balanced weights, short training
runs, and bad class configs as one-line errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import zarr
from conftest import TINY
from funlib.geometry import Coordinate, Roi
from scipy.ndimage import distance_transform_edt

from dacapo_core import arrays, checkpoint, config, preflight, train
from dacapo_core.classes import (
    UNANNOTATED,
    class_masks,
    distances_target,
    one_hot_target,
    signed_distances,
)
from dacapo_core.demo import make_demo
from dacapo_core.predict import predict_blockwise
from dacapo_core.stages import TrainStage
from dacapo_core.task import balanced_weights, loss

VOXEL = Coordinate(8, 4, 4)  # anisotropic, as EM often is
CLASSES = {"mito": {"labels": [3, 4]}, "nucleus": {"labels": "all"}, "er": {"array": "gt_er"}}


def blobs(shape=(12, 20, 20), seed=0) -> np.ndarray:
    """Labels 0..4: random boxes of ids 1..4 on background."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint64)
    for label in (1, 2, 3, 4, 3):
        lo = [rng.integers(0, s - 4) for s in shape]
        hi = [a + rng.integers(2, 6) for a in lo]
        labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = label
    return labels


@pytest.fixture
def crop(tmp_path):
    """A crop with gt labels and an ER array, and the class task's config."""
    container = str(tmp_path / "crop.zarr")
    labels = blobs()
    er = (np.arange(labels.shape[-1]) % 5 == 0) * np.ones(labels.shape, np.uint8)
    arrays.write_numpy(f"{container}/raw", np.zeros(labels.shape, np.uint8), VOXEL)
    arrays.write_numpy(f"{container}/gt", labels, VOXEL)
    arrays.write_numpy(f"{container}/gt_er", er, VOXEL)
    data = {
        "datasets": {"a": {"container": container, "raw": "raw", "gt": "gt"}},
        "runs": {"r": {"datasplit": {"train": ["a"]}, "task": {"type": "distances"}}},
    }
    data["runs"]["r"]["architecture"] = {  # a network whose output fits the small crop
        "input_shape": [8, 8, 8],
        "eval_shape_increase": [0, 0, 0],
        "downsample_factors": [],
    }
    data["runs"]["r"]["task"]["classes"] = copy.deepcopy(CLASSES)
    return data, labels, er


def test_classes_group_label_ids_all_ids_or_their_own_array(crop):
    data, labels, er = crop
    cfg = config.parse(data)
    masks = class_masks(cfg.datasets["a"], cfg.runs["r"].task)
    stack = masks.to_ndarray(masks.roi)
    assert stack.dtype == np.uint8 and masks.voxel_size == VOXEL
    np.testing.assert_array_equal(stack[0], np.isin(labels, [3, 4]))
    np.testing.assert_array_equal(stack[1], labels != 0)
    np.testing.assert_array_equal(stack[2], er != 0)
    assert stack[0].any() and not stack[0].all()  # the comparisons could fail

    data["datasets"]["a"]["classes"] = ["mito", "er"]  # this crop leaves nucleus out
    cfg = config.parse(data)
    masks = class_masks(cfg.datasets["a"], cfg.runs["r"].task)
    stack = masks.to_ndarray(masks.roi)
    assert (stack[1] == UNANNOTATED).all()
    np.testing.assert_array_equal(stack[0], np.isin(labels, [3, 4]))


def test_distances_are_scipy_edt_in_world_units_tanh_scaled_and_clipped():
    inside = np.isin(blobs(), [3, 4])
    expected = distance_transform_edt(inside, sampling=VOXEL) - distance_transform_edt(
        ~inside, sampling=VOXEL
    )
    isotropic = distance_transform_edt(inside) - distance_transform_edt(~inside)
    assert not np.allclose(expected, isotropic * 4)  # the voxel size matters here
    everywhere = np.ones(inside.shape, bool)
    distance, _ = signed_distances(inside, everywhere, VOXEL, clip=1000.0)
    np.testing.assert_allclose(distance, expected)
    assert (distance[inside] > 0).all() and (distance[~inside] < 0).all()

    task = config.DistancesTask(type="distances", classes={"m": {"labels": [3]}}, scale=10, clip=12)
    target, _ = distances_target(task, inside[None].astype(np.uint8), everywhere, VOXEL)
    np.testing.assert_allclose(target[0], np.tanh(np.clip(expected, -12, 12) / 10), rtol=1e-6)
    assert (expected < -12).any() and np.isclose(target.min(), -np.tanh(1.2))  # clipped


def test_distance_is_unknown_where_the_crop_edge_is_nearer_than_boundary_and_clip():
    shape, clip = (20, 20, 20), 5.0
    inside = np.zeros(shape, bool)
    inside[..., :10] = True  # a half-space: its boundary lies between x = 9 and 10
    labelled = np.ones(shape, bool)
    labelled[..., 17:] = False  # an unlabelled slab: as unknown as the window's outside
    distance, known = signed_distances(inside, labelled, Coordinate(1, 1, 1), clip)
    assert distance[10, 10, 0] == 10 and distance[10, 10, 12] == -3
    assert not known[0, 10, 3]  # boundary 7 away, crop edge 1 away: it may lie nearer
    assert known[0, 10, 9]  # boundary 1 away, crop edge 1 away: nothing can be nearer
    assert known[10, 10, 5]  # edge 6 away, beyond clip: the clipped distance is known
    assert not known[10, 10, 14]  # boundary 5 away, unlabelled voxel 3 away
    assert known[10, 10, 12]  # boundary 3 away, unlabelled voxel 5 away
    assert not known[..., 17:].any()
    edge = np.minimum.reduce([np.minimum(i + 1, 20 - i) for i in np.indices(shape)])
    assert known[(edge >= clip) & labelled & (np.arange(20) < 12)].all()


def test_one_hot_target_matches_labels_and_unannotated_classes_get_weight_zero(crop):
    data, labels, er = crop
    data["runs"]["r"]["task"] = {
        "type": "one_hot",
        "classes": {"mito": {"labels": [3, 4]}, "small": {"labels": [1]}},
    }
    cfg = config.parse(data)
    task = cfg.runs["r"].task
    masks = class_masks(cfg.datasets["a"], task)
    stack = masks.to_ndarray(masks.roi)
    labelled = np.ones(labels.shape, bool)
    target, known = one_hot_target(stack, labelled)
    expected = np.select([np.isin(labels, [3, 4]), labels == 1], [1, 2], 0)
    np.testing.assert_array_equal(target.argmax(axis=0), expected)
    np.testing.assert_array_equal(target.sum(axis=0), 1)
    assert known.all()  # every class annotated: background is certain

    data["datasets"]["a"]["classes"] = ["mito"]
    cfg = config.parse(data)
    stack = class_masks(cfg.datasets["a"], task).to_ndarray(masks.roi)
    target, known = one_hot_target(stack, labelled)
    weights = balanced_weights(target, known) * target  # what the cross-entropy weighs
    voxel_weight = weights.sum(axis=0)
    mito = np.isin(labels, [3, 4])
    assert (voxel_weight[~mito] == 0).all()  # background or "small": unknown here
    assert (voxel_weight[mito] > 0).all()


def test_unannotated_distance_classes_get_weight_zero_and_rare_classes_weigh_more(crop):
    data, labels, er = crop
    data["datasets"]["a"]["classes"] = ["mito", "er"]
    cfg = config.parse(data)
    task = cfg.runs["r"].task
    masks = class_masks(cfg.datasets["a"], task)
    stack = masks.to_ndarray(masks.roi)
    labelled = np.ones(labels.shape, bool)
    target, known = distances_target(task, stack, labelled, VOXEL)
    weights = balanced_weights(target, known)
    assert (weights[1] == 0).all()  # nucleus: not annotated in this crop
    for c in (0, 2):
        positive = (target[c] > 0) & known[c]
        negative = ~(target[c] > 0) & known[c]
        assert positive.any() and negative.any()
        # each side weighs half, whatever its share (within the clip of 5%..95%)
        assert np.isclose(weights[c][positive].sum(), weights[c][negative].sum(), rtol=1e-4)
        share = positive.sum() / known[c].sum()
        if share < 0.5:
            assert weights[c][positive].min() > weights[c][negative].max()


def test_one_hot_loss_is_weighted_cross_entropy():
    logits = torch.randn(1, 3, 4, 4, 4)
    labels = torch.randint(0, 3, (1, 4, 4, 4))
    target = torch.nn.functional.one_hot(labels, 3).permute(0, 4, 1, 2, 3).float()
    weights = torch.rand(1, 3, 4, 4, 4)
    task = config.OneHotTask(type="one_hot", classes={"a": {"labels": [1]}, "b": {"labels": [2]}})
    voxel_weights = (weights * target).sum(dim=1)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert torch.isclose(loss(task, logits, target, weights), (voxel_weights * ce).mean())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    container = f"{root}/demo.zarr"
    make_demo(container, seed=0)
    return root, container


@pytest.mark.parametrize(
    ("task", "channels"),
    [
        (
            {
                "type": "distances",
                "classes": {"low": {"labels": list(range(1, 30))}, "cells": {"array": "x"}},
            },
            2,
        ),
        (
            {
                "type": "one_hot",
                "classes": {"low": {"labels": list(range(1, 30))}, "rest": {"array": "x"}},
            },
            3,
        ),
    ],
)
def test_a_short_class_run_trains_with_a_finite_loss_and_predicts_named_channels(
    demo, task, channels
):
    root, container = demo
    cfg = copy.deepcopy(TINY)
    for ds in cfg["datasets"].values():
        ds["container"] = container
    task = copy.deepcopy(task)
    for definition in task["classes"].values():
        if "array" in definition:
            definition["array"] = "train/labels"  # a class of its own array: the cells
    if task["type"] == "one_hot":
        rest = zarr.open(f"{container}/train/labels", mode="r")[:]
        rest[rest < 30] = 0
        meta = arrays.open_array(f"{container}/train/labels")
        arrays.write_numpy(f"{container}/train/rest", rest, meta.voxel_size, meta.offset)
        task["classes"]["rest"]["array"] = "train/rest"
    run = cfg["runs"]["tiny"]
    run["task"] = task
    del run["post_processor"]  # TINY's is a watershed grid: the task's default instead
    run["trainer"].update(num_data_fetchers=0, snapshot_interval=3)
    experiment = config.parse(cfg)
    stage = TrainStage.of(experiment.resolved_runs()["tiny"], experiment.datasets)
    out = root / task["type"]
    stats = train.train(stage, 3, out / "3.pt", snapshot_dir=out / "snapshots", threads=1)
    losses = [s["loss"] for s in stats["iterations"]]
    assert len(losses) == 3 and np.isfinite(losses).all() and max(losses) > 0
    state = checkpoint.load_checkpoint(out / "3.pt")
    assert state["model"]["head.weight"].shape[0] == channels
    assert state["model_config"]["task"]["type"] == task["type"]
    prediction = zarr.open(str(out / "snapshots/3.zarr/prediction"), mode="r")[:]
    assert prediction.shape[0] == channels
    activation = {"distances": "tanh", "one_hot": "softmax"}[task["type"]]
    assert train.new_model(stage).activation == activation
    assert np.abs(prediction).max() <= 1
    if task["type"] == "one_hot":
        np.testing.assert_allclose(prediction.sum(axis=0), 1, rtol=1e-5)

    # the checkpoint predicts blockwise: its channels named, in its head's range
    raw = f"{container}/validate/raw"
    vs = arrays.open_array(raw).voxel_size
    roi = Roi(arrays.open_array(raw).roi.begin, Coordinate(20, 24, 28) * vs)
    path = f"{out}/predicted.zarr/prediction"
    predicted = predict_blockwise(out / "3.pt", raw, path, roi, num_workers=1)
    values = predicted.to_ndarray(roi)
    assert predicted.roi == roi and values.shape == (channels, 20, 24, 28)
    attrs = zarr.open(path, mode="r").attrs
    names = list(task["classes"])
    assert attrs["task"] == task["type"]
    assert attrs["channels"] == (["background", *names] if task["type"] == "one_hot" else names)
    assert np.abs(values).max() <= 1
    if task["type"] == "one_hot":
        np.testing.assert_allclose(values.sum(axis=0), 1, rtol=1e-5)
    else:
        assert attrs["distance_scale"] == 50 and values.min() < 0 < values.max()
        with pytest.raises(arrays.DataError, match="distances are stored as float32"):
            predict_blockwise(out / "3.pt", raw, f"{out}/u.zarr/p", roi, dtype="uint8")


def distances_config() -> dict:
    """A distances run of CLASSES (nucleus, all labels, overlaps mito) on one crop."""
    return {
        "datasets": {"a": {"container": "x.zarr", "raw": "raw", "gt": "gt"}},
        "runs": {
            "r": {
                "datasplit": {"train": ["a"]},
                "task": {"type": "distances", "classes": copy.deepcopy(CLASSES)},
            }
        },
    }


def test_distances_classes_may_overlap():
    """Each class has its own distance, so an organelle and a part of it (or all labels
    and some) are both classes; one_hot refuses overlaps (below)."""
    assert list(config.parse(distances_config()).runs["r"].task.classes) == list(CLASSES)


def bad(mutate) -> str:
    data = distances_config()
    mutate(data)
    with pytest.raises(config.ConfigError) as e:
        config.parse(data)
    return str(e.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["runs"]["r"]["task"].update(type="one_hot"),
            "runs.r.task.classes: Value error, 'nucleus' overlaps 'mito' (one_hot classes",
        ),
        (
            lambda d: d["runs"]["r"]["task"].update(
                type="one_hot", classes={"a": {"labels": [1, 2]}, "b": {"labels": [2]}}
            ),
            "'b' overlaps 'a'",
        ),
        (
            lambda d: d["datasets"]["a"].update(classes=["mito", "err"]),
            "datasets.a.classes[1]: unknown class 'err' (classes of the runs using it: er, ",
        ),
        (
            lambda d: d["runs"]["r"]["task"]["classes"].update(x={"labels": [1], "array": "y"}),
            "runs.r.task.classes.x: Value error, give either labels or array",
        ),
        (lambda d: d["runs"]["r"]["task"].update(classes={}), "runs.r.task.classes"),
        (lambda d: d["runs"]["r"]["task"].update(scale=0), "runs.r.task.scale"),
        (lambda d: d["runs"]["r"]["task"].update(neighborhood=[[1]]), "task.neighborhood: unknown"),
    ],
)
def test_bad_class_config_is_one_line_naming_the_key(mutate, expected):
    message = bad(mutate)
    assert expected in message
    assert "\n" not in message


def test_a_class_naming_an_array_the_crop_lacks_stops_preflight(crop):
    data, _, _ = crop
    data["runs"]["r"]["task"]["classes"]["er"]["array"] = "gt_golgi"
    with pytest.raises(config.ConfigError) as e:
        preflight.check(config.parse(data))
    assert str(e.value).startswith("runs.r.task.classes.er.array: dataset 'a' lacks it")
    assert "\n" not in str(e.value)
    data["datasets"]["a"]["classes"] = ["mito", "nucleus"]  # a crop without ER needs none
    preflight.check(config.parse(data))


def test_class_runs_default_to_their_post_processor_and_dice(crop):
    data, _, _ = crop
    run = config.parse(data).runs["r"]
    assert run.post_processor.type == "threshold" and run.criterion == "dice"
    data["runs"]["r"]["task"]["type"] = "one_hot"
    data["runs"]["r"]["task"]["classes"] = {"mito": {"labels": [3, 4]}, "er": {"array": "gt_er"}}
    run = config.parse(data).runs["r"]
    assert run.post_processor.type == "argmax" and run.criterion == "dice"
    assert config.parse(minimal_affinities()).runs["r"].post_processor.type == "watershed"


def minimal_affinities() -> dict:
    return {
        "datasets": {"a": {"container": "x.zarr", "raw": "raw", "gt": "gt"}},
        "runs": {"r": {"datasplit": {"train": ["a"]}}},
    }


def threshold(**keys) -> dict:
    return {"type": "threshold", **keys}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["runs"]["r"].update(post_processor={"type": "argmax"}),
            "runs.r.post_processor.type: argmax does not post-process distances predictions "
            "(use threshold)",
        ),
        (
            lambda d: d["runs"]["r"].update(post_processor={"type": "watershed"}),
            "runs.r.post_processor.type: watershed does not post-process distances",
        ),
        (
            lambda d: d["runs"]["r"].update(post_processor=threshold(instances={"golgi": {}})),
            "runs.r.post_processor.instances.golgi: unknown class 'golgi' (classes: mito, ",
        ),
        (
            lambda d: d["runs"]["r"].update(post_processor=threshold(thresholds=[0, 1.5])),
            "runs.r.post_processor.thresholds[1]: 1.5 is outside (-1, 1)",
        ),
        (
            lambda d: d["runs"]["r"].update(criterion="voi"),
            "runs.r.criterion: 'voi' does not score distances runs (choose from dice, ",
        ),
        (
            lambda d: d["runs"]["r"].update(criterion="dicey"),
            "runs.r.criterion: Value error, unknown criterion 'dicey'",
        ),
        (
            lambda d: d.update(apply=[{"run": "r", "input": "a", "threshold": 0.5}]),
            "apply[0].threshold: a class run's target pins only its iteration",
        ),
    ],
)
def test_bad_class_post_processor_is_one_line(mutate, expected):
    message = bad(mutate)
    assert expected in message
    assert "\n" not in message


def test_the_workflow_refuses_class_targets_of_several_superblocks_in_one_line(crop):
    data, _, _ = crop
    config.check_workflow_support(config.parse(data))  # class runs validate and apply
    data["apply"] = [{"run": "r", "input": "a", "superblock_shape": [8, 8, 8]}]
    with pytest.raises(config.ConfigError) as e:
        config.check_workflow_support(config.parse(data))
    assert str(e.value).startswith("apply[0].superblock_shape: class runs post-process a target")
    data["runs"]["r"]["task"] = {}
    data["runs"]["r"]["criterion"] = "voi"
    config.check_workflow_support(config.parse(data))
