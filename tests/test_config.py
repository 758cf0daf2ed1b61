"""Config: defaults that make a minimal config work, and one-line errors naming the key."""

import numpy as np
import pytest
from conftest import ARCH_2D

from dacapo_core import arrays, config, preflight
from dacapo_core.geometry import eval_input_shape, output_shape


def minimal() -> dict:
    return {
        "datasets": {"a": {"container": "x.zarr", "raw": "raw", "gt": "gt"}},
        "runs": {"r": {"datasplit": {"train": ["a"], "validate": ["a"]}}},
    }


def test_minimal_config_gets_documented_defaults():
    cfg = config.parse(minimal())
    run = cfg.runs["r"]
    assert run.criterion == "voi"
    assert run.iterations() == [500, 1000, 1500, 2000]
    assert run.task.neighborhood[:3] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert len(run.post_processor.parameter_sets()) == 19 * 2  # thresholds x merge functions


def test_a_2d_neighborhood_or_input_shape_gets_2d_defaults_for_the_rest():
    data = minimal()
    data["runs"]["r"]["task"] = {"neighborhood": [[1, 0], [0, 1]]}
    data["runs"]["s"] = {**data["runs"]["r"], "task": {}, "architecture": {"input_shape": [92, 92]}}
    runs = config.parse(data).runs
    assert runs["r"].architecture == config.UNetConfig(**config.DEFAULTS_2D["architecture"])
    assert runs["s"].task.neighborhood == config.DEFAULTS_2D["task"]["neighborhood"]
    assert runs["s"].architecture.downsample_factors == [[2, 2], [2, 2]]
    assert runs["s"].architecture.input_shape == [92, 92]
    model = runs["r"].architecture
    assert len(output_shape(model, eval_input_shape(model))) == 2  # a valid 2D network


def test_iterations_end_at_train_until():
    data = minimal()
    data["runs"]["r"].update(train_until=1200, validation_interval=500)
    assert config.parse(data).runs["r"].iterations() == [500, 1000, 1200]


def test_repetitions_expand_to_numbered_runs_with_distinct_seeds():
    data = minimal()
    data["runs"]["r"]["repetitions"] = 3
    runs = config.parse(data).resolved_runs()
    assert sorted(runs) == ["r__0", "r__1", "r__2"]
    assert len({r.seed for r in runs.values()}) == 3


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["runs"]["r"].update(learning_rat=1), "runs.r.learning_rat: unknown key"),
        (lambda d: d["runs"]["r"].update(train_until="many"), "runs.r.train_until"),
        (lambda d: d["runs"]["r"]["datasplit"].update(train=["nope"]), "runs.r.datasplit.train[0]"),
        (lambda d: d["runs"].update({"bad name": d["runs"]["r"]}), "runs.bad name"),
        (lambda d: d.update(apply=[{"run": "zz", "input": "a"}]), "apply[0].run: unknown run"),
        (lambda d: d.update(apply=[{"run": "r", "input": "a", "roi": "0:1"}]), "apply[0].roi"),
        (lambda d: d["runs"]["r"].update(criterion="best"), "runs.r.criterion"),
        (lambda d: d["runs"]["r"].update(task={"neighborhood": [[3, 0, 0]]}), "neighborhood"),
        (lambda d: d["runs"]["r"].update(start={"run": "other"}), "runs.r.start.run: unknown"),
        (lambda d: d["runs"]["r"].update(start={"run": "r"}), "starts from itself (r -> r)"),
        (lambda d: d["runs"]["r"].update(start={"run": "r", "criterion": "x"}), "start.criterion"),
        (lambda d: d["runs"]["r"].update(trainer={"num_data_fetchers": -1}), "fetchers"),
        (
            lambda d: d["runs"]["r"].update(
                task={"neighborhood": [[1, 0], [0, 1]]},
                architecture={"input_shape": [44, 44], "downsample_factors": [[2, 2, 2]]},
            ),
            "runs.r.architecture.downsample_factors[0]: needs 2 entries",
        ),
        (
            lambda d: d["runs"]["r"].update(
                trainer={"augments": [{"type": "elastic", "jitter_sigma": [1, 1]}]}
            ),
            "runs.r.trainer.augments[0].jitter_sigma: needs 3 entries",
        ),
        (
            lambda d: d["runs"]["r"].update(
                task={"neighborhood": [[1, 0], [0, 1]]},
                architecture={
                    "input_shape": [44, 44],
                    "eval_shape_increase": [0, 0],
                    "downsample_factors": [[2, 2]],
                },
                post_processor={"fragments": {"method": "waterz"}},
            ),
            "runs.r.post_processor.fragments.method: waterz needs 3D affinities",
        ),
        (
            lambda d: d["runs"]["r"].update(
                task={"neighborhood": [[1, 0], [0, 1]]}, trainer={"augments": [{"type": "defect"}]}
            ),
            "runs.r.trainer.augments[0]: defect needs a 3D network",
        ),
    ],
)
def test_bad_config_is_one_line_naming_the_key(mutate, expected):
    data = minimal()
    mutate(data)
    with pytest.raises(config.ConfigError) as e:
        config.parse(data)
    message = str(e.value)
    assert expected in message
    assert "\n" not in message


def test_roi_strings_round_trip():
    roi = arrays.parse_roi("[0:80, -16:64,8:88]")
    assert tuple(roi.offset) == (0, -16, 8) and tuple(roi.shape) == (80, 80, 80)
    assert arrays.format_roi(roi) == "[0:80,-16:64,8:88]"
    for bad in ("[10:5,0:1,0:1]", "[0:8,0:8]x", "[0:8,1,0:8]", "[0:a,0:8,0:8]", "[:8,0:8,0:8]"):
        with pytest.raises(arrays.DataError, match="ROI"):
            arrays.parse_roi(bad)


def test_committed_schema_matches_the_models():
    import json

    from conftest import REPO

    committed = json.loads((REPO / "workflow/schemas/config.schema.json").read_text())
    assert committed == json.loads(json.dumps(config.json_schema()))


def test_raw_thinner_than_the_input_is_padded_but_gt_needs_raw_under_it(tmp_path):
    data = minimal()
    data["datasets"]["a"]["container"] = str(tmp_path / "thin.zarr")
    raw = np.zeros((50, 100, 100), np.uint8)  # thinner in z than the 76^3 input
    labels = np.ones(raw.shape, np.uint64)
    arrays.write_numpy(tmp_path / "thin.zarr/raw", raw, (10, 10, 10))
    arrays.write_numpy(tmp_path / "thin.zarr/gt", labels, (10, 10, 10))
    preflight.check(config.parse(data))
    arrays.write_numpy(tmp_path / "thin.zarr/gt", labels, (10, 10, 10), (20, 0, 0))
    with pytest.raises(config.ConfigError, match=r"datasets.a.gt: ROI .* extends beyond raw"):
        preflight.check(config.parse(data))


def _volume(path, shape) -> None:
    data = np.zeros(shape, np.uint8)
    voxel_size = (10,) * len(shape)
    arrays.write_numpy(f"{path}/raw", data, voxel_size)
    arrays.write_numpy(f"{path}/gt", np.ones(shape, np.uint64), voxel_size)


def test_a_2d_network_runs_on_3d_stacks_but_not_a_3d_network_on_images(tmp_path):
    data = minimal()
    data["datasets"]["a"]["container"] = str(tmp_path / "stack.zarr")
    _volume(tmp_path / "stack.zarr", (20, 100, 100))
    data["runs"]["r"]["task"] = {"neighborhood": [[1, 0], [0, 1]]}
    data["runs"]["r"]["architecture"] = ARCH_2D
    preflight.check(config.parse(data))  # section mode: no error
    data["apply"] = [{"run": "r", "input": "a", "block_shape": [64, 64]}]
    with pytest.raises(config.ConfigError, match=r"apply\[0\].block_shape: needs 3 entries"):
        preflight.check(config.parse(data))
    data["apply"] = [{"run": "r", "input": "a"}]  # default: 128 per axis of the input
    assert config.parse(data).apply[0].blocks(3) == [128, 128, 128]
    data["datasets"]["b"] = {"container": str(tmp_path / "image.zarr"), "raw": "raw", "gt": "gt"}
    _volume(tmp_path / "image.zarr", (100, 100))
    data["runs"]["r"]["datasplit"]["train"] = ["a", "b"]
    with pytest.raises(config.ConfigError, match=r"datasets.b.raw: 2D, but run 'r' also trains"):
        preflight.check(config.parse(data))
    data["runs"]["r"]["datasplit"] = {"train": ["a"], "validate": ["b"]}  # a 2D image: fine
    data["runs"]["3d"] = {"datasplit": {"train": ["a"], "validate": ["b"]}}
    with pytest.raises(config.ConfigError, match=r"datasets.b.raw: 2D, but run '3d' has a 3D"):
        preflight.check(config.parse(data))
