"""Section mode: a 2D network on a 3D stack whose labels are per section."""

from __future__ import annotations

import json
import subprocess

import gunpowder as gp
import numpy as np
import pytest
import torch
import zarr
from conftest import ARCH_2D, BIN
from funlib.geometry import Coordinate, Roi
from gunpowder.nodes.add_affinities import seg_to_affgraph
from skimage.metrics import variation_of_information

from dacapo_core import arrays, batches, checkpoint, config, train, validate
from dacapo_core.demo import cells, membranes
from dacapo_core.evaluate import evaluate
from dacapo_core.model import UNet
from dacapo_core.predict import Predictor
from dacapo_core.sections import per_section
from dacapo_core.segment import edges, fragments_blockwise, segment_blockwise
from dacapo_core.stages import ScoreStage, TrainStage

NEIGHBORHOOD_2D = [[1, 0], [0, 1], [0, 3]]


def stack_run(container: str, augments: list[dict]) -> TrainStage:
    data = {
        "datasets": {"stack": {"container": container, "raw": "raw", "gt": "gt"}},
        "runs": {
            "flat": {
                "datasplit": {"train": ["stack"]},
                "task": {"neighborhood": NEIGHBORHOOD_2D},
                "architecture": ARCH_2D,
                "trainer": {"augments": augments, "batch_size": 2},
            }
        },
    }
    experiment = config.parse(data)
    return TrainStage.of(experiment.resolved_runs()["flat"], experiment.datasets)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Per-section labels (each section its own blocks, ids reused between sections)
    and raw = a brightness per label, so raw and labels align iff raw == brightness[gt]."""
    root = tmp_path_factory.mktemp("sections")
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 40, (6, 8, 8))
    labels = np.repeat(np.repeat(labels, 12, axis=1), 12, axis=2)
    brightness = rng.integers(20, 235, 40).astype(np.uint8)
    container = f"{root}/stack.zarr"
    arrays.write_numpy(f"{container}/raw", brightness[labels], Coordinate(40, 4, 4))
    arrays.write_numpy(f"{container}/gt", labels.astype(np.uint64), Coordinate(40, 4, 4))
    return root, container, brightness / 255


def test_a_2d_network_processes_the_sections_of_a_stack_one_by_one():
    net = UNet(config.UNetConfig.model_validate(ARCH_2D), 1, 3)
    stack = torch.rand(2, 1, 3, 44, 44)
    with torch.no_grad():
        out = net(stack)
        for z in range(3):
            assert torch.allclose(out[:, :, z], net(stack[:, :, z]), atol=1e-6)


@pytest.mark.parametrize(
    "augments",
    [
        [],
        [{"type": "simple"}, {"type": "elastic", "control_point_spacing": [8, 8]}],
    ],
)
def test_a_training_sample_is_one_section_with_in_plane_affinities(stack, augments):
    _, container, brightness = stack
    stage = stack_run(container, augments)
    voxel_size = batches.training_voxel_size(stage)
    pipeline = batches.build_pipeline(stage, voxel_size)
    with gp.build(pipeline):
        batch = pipeline.request_batch(batches.make_request(stage, voxel_size, 5))
    raw, gt, target = (batch[k] for k in (batches.KEYS.raw, batches.KEYS.gt, batches.KEYS.target))
    assert raw.data.shape[:3] == (2, 1, 1) and gt.data.shape[:2] == (2, 1)
    assert target.data.shape[:3] == (2, len(NEIGHBORHOOD_2D), 1)
    labels = gt.data[:, 0]
    under_gt = ((gt.spec.roi - raw.spec.roi.offset) / voxel_size).to_slices()[1:]
    inner = raw.data[:, 0, 0][(slice(None), *under_gt)]
    agree = np.abs(inner - brightness[labels]) < 2 / 255
    assert agree.mean() > 0.7  # aligned, but for interpolated voxels at label borders
    # channel 0 connects y neighbours of the same section, channel 1 x neighbours
    same_y = (labels[:, 1:] == labels[:, :-1]) & (labels[:, 1:] > 0)
    assert np.array_equal(target.data[:, 0, 0, 1:] > 0.5, same_y)
    same_x = (labels[:, :, 1:] == labels[:, :, :-1]) & (labels[:, :, 1:] > 0)
    assert np.array_equal(target.data[:, 1, 0, :, 1:] > 0.5, same_x)


def test_a_stack_is_predicted_as_its_sections_are_alone(tmp_path):
    stage = stack_run("unused.zarr", [])
    ckpt = tmp_path / "model.pt"
    model = train.new_model(stage)
    state = {"model": model.state_dict(), "model_config": checkpoint.model_config(stage)}
    checkpoint.save_checkpoint(ckpt, state)
    raw = np.random.default_rng(1).integers(0, 255, (5, 90, 90)).astype(np.uint8)
    arrays.write_numpy(f"{tmp_path}/s.zarr/raw", raw, Coordinate(40, 4, 4))
    with pytest.raises(arrays.DataError, match="a 2D network cannot predict 1D data"):
        Predictor.load(ckpt, 1, "cpu")
    on_stack = Predictor.load(ckpt, 3, "cpu")
    assert tuple(on_stack.output_shape)[0] == 1 and tuple(on_stack.step)[0] == 1
    roi = Roi((40, 80, 80), (3 * 40, 160, 160))
    affs = on_stack.predict(arrays.open_array(f"{tmp_path}/s.zarr/raw"), roi)
    alone = Predictor.load(ckpt, 2, "cpu")
    for z in range(1, 4):
        arrays.write_numpy(f"{tmp_path}/s.zarr/section{z}", raw[z], Coordinate(4, 4))
        in_plane = Roi(roi.begin[1:], roi.shape[1:])
        section = alone.predict(arrays.open_array(f"{tmp_path}/s.zarr/section{z}"), in_plane)
        assert np.allclose(affs[:, z - 1], section, atol=1e-6)


def in_plane_prediction(path: str) -> np.ndarray:
    """Cells through every section (ids reused), and their in-plane affinities as a
    2D network's prediction of the stack; returns the labels."""
    rng = np.random.default_rng(3)
    labels = cells((4, 64, 64), diameter=16, rng=rng)
    labels[membranes(labels)] = 0
    in_plane = np.array([[0, -1, 0], [0, 0, -1]])
    affs = seg_to_affgraph(labels.astype(np.int32), in_plane).astype(np.float32)
    arrays.write_numpy(path, affs, Coordinate(40, 4, 4))
    zarr.open(path, mode="a").attrs["neighborhood"] = [[1, 0], [0, 1]]
    return labels


def test_edges_of_a_stack_stay_within_sections_with_their_own_channel():
    frags = np.ones((2, 3, 3), np.uint64)  # section 0 is context (and all one fragment)
    frags[1] = [[11, 11, 11], [12, 12, 13], [12, 12, 13]]
    affs = np.stack([np.full(frags.shape, 0.2), np.full(frags.shape, 0.8)])  # y, x
    pairs, stats = edges(frags, affs, dims=2)
    means = {tuple(p): s[0] / s[1] for p, s in zip(pairs.tolist(), stats, strict=True)}
    assert means == pytest.approx({(11, 12): 0.2, (11, 13): 0.2, (12, 13): 0.8})


def test_a_stack_of_sections_is_segmented_section_by_section(tmp_path):
    path = f"{tmp_path}/s.zarr/affs"
    labels = in_plane_prediction(path)
    results = {}
    for name, block in (("whole", (4, 64, 64)), ("blocks", (2, 24, 24))):
        out = f"{tmp_path}/s.zarr/{name}"
        segment_blockwise(path, out, threshold=0.5, block_shape=block, num_workers=2)
        results[name] = arrays.open_array(out).to_ndarray(arrays.open_array(out).roi)
    waterz = config.FragmentOptions(method="waterz")
    with pytest.raises(arrays.DataError, match="waterz fragments need 3D affinities"):
        segment_blockwise(path, f"{tmp_path}/s.zarr/w", 0.5, options=waterz)
    for seg in results.values():
        for segment in np.unique(seg[seg > 0]):
            assert len(np.unique(np.nonzero(seg == segment)[0])) == 1  # one section each
        assert evaluate(per_section(seg), per_section(labels))["voi"] < 0.1
    inside = labels > 0
    whole, blocks = (np.where(inside, results[k], 0) for k in ("whole", "blocks"))
    assert evaluate(blocks, whole)["voi"] < 0.05


def test_validation_scores_a_stack_per_section(tmp_path):
    """The GT reuses each id in all 4 sections; scored as 3D objects, the per-section
    segments would be a split error of 2 bits."""
    path = f"{tmp_path}/s.zarr/affs"
    labels = in_plane_prediction(path)
    arrays.write_numpy(f"{tmp_path}/s.zarr/gt", labels.astype(np.uint64), Coordinate(40, 4, 4))
    grid = config.WatershedConfig(thresholds=[0.5], merge_function=["mean"])
    frags, graph = f"{tmp_path}/s.zarr/frags", tmp_path / "graph"
    fragments_blockwise(path, frags, graph, block_shape=(2, 32, 32), num_workers=1)
    stage = ScoreStage(
        gt=f"{tmp_path}/s.zarr/gt", parameter_sets=grid.parameter_sets(), criterion="voi"
    )
    result = validate.score(frags, graph, f"{tmp_path}/s.zarr/seg", stage)
    assert result["results"][0]["scores"]["voi"] < 0.1


def test_scores_count_a_label_in_two_sections_as_two_objects():
    gt = np.ones((2, 4, 4), np.uint64)  # one id, but each section is its own object
    per_object = np.stack([np.full((4, 4), 1), np.full((4, 4), 2)])
    assert evaluate(per_object, gt)["voi_split"] == pytest.approx(1.0)  # as a 3D object
    assert evaluate(per_section(per_object), per_section(gt))["voi"] == 0.0


def test_voi_of_a_stack_is_the_voxel_weighted_mean_of_its_sections():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 4, (3, 20, 20))
    seg = rng.integers(1, 5, (3, 20, 20))
    stack = evaluate(per_section(seg), per_section(gt))
    labelled = gt > 0
    weights = labelled.sum(axis=(1, 2)) / labelled.sum()
    sections = [
        sum(variation_of_information(g[m], s[m])) for g, s, m in zip(gt, seg, labelled, strict=True)
    ]
    assert stack["voi"] == pytest.approx(np.dot(weights, sections))


def test_cli_evaluate_scores_per_section_on_request(tmp_path):
    gt = np.ones((2, 4, 4), np.uint64)
    seg = np.stack([np.full((4, 4), 1), np.full((4, 4), 2)]).astype(np.uint64)
    for name, data in (("gt", gt), ("seg", seg)):
        arrays.write_numpy(f"{tmp_path}/s.zarr/{name}", data, Coordinate(40, 4, 4))
    command = [str(BIN / "dacapo-flow"), "evaluate", "--segmentation", f"{tmp_path}/s.zarr/seg"]
    command += ["--gt", f"{tmp_path}/s.zarr/gt"]
    for extra, voi in (([], 1.0), (["--per-section"], 0.0)):
        result = subprocess.run([*command, *extra], capture_output=True, text=True, check=True)
        assert json.loads(result.stdout)["voi"] == pytest.approx(voi)
    arrays.write_numpy(f"{tmp_path}/i.zarr/gt", gt[0], Coordinate(4, 4))
    command[-1] = f"{tmp_path}/i.zarr/gt"
    command[command.index("--segmentation") + 1] = f"{tmp_path}/i.zarr/gt"
    result = subprocess.run([*command, "--per-section"], capture_output=True, text=True)
    assert result.returncode != 0 and "--per-section needs 3D arrays" in result.stderr
    assert "Traceback" not in result.stderr
