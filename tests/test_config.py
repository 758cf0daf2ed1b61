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


CROPS = """name,container,raw,gt,mask,classes
crop_1,c1.zarr,raw,labels,,mito; er
crop_2,c2.zarr,raw,labels,mask,

crop_3 , c3.zarr , raw , labels , ,
"""


def with_table(tmp_path, monkeypatch, text: str = CROPS) -> dict:
    """A config whose datasets include the CSV table ``many`` (in the working directory)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crops.csv").write_text(text)
    data = minimal()
    data["datasets"]["many"] = {"csv": "crops.csv"}
    data["runs"]["r"] = {
        "datasplit": {"train": ["many"], "validate": ["a"]},
        "task": {"type": "distances", "classes": {"mito": {"labels": [1]}, "er": {"labels": [2]}}},
    }
    return data


def test_a_csv_table_is_one_dataset_per_row_and_its_name_stands_for_them(tmp_path, monkeypatch):
    data = with_table(tmp_path, monkeypatch)
    data["runs"]["r"]["datasplit"] = {
        "train": ["many", "a"],
        "train_weights": [2, 1],
        "validate": ["crop_2"],
    }
    data["apply"] = [{"run": "r", "input": "crop_3"}]
    cfg = config.parse(data)
    assert list(cfg.datasets) == ["a", "crop_1", "crop_2", "crop_3"]
    assert cfg.datasets["crop_1"] == config.DatasetConfig(
        container="c1.zarr", raw="raw", gt="labels", classes=["mito", "er"]
    )
    assert cfg.datasets["crop_2"].mask == "mask" and cfg.datasets["crop_2"].classes is None
    assert cfg.datasets["crop_1"].mask is None  # an empty cell: the key left out
    assert cfg.datasets["crop_3"].container == "c3.zarr"  # spaces around a cell dropped
    split = cfg.runs["r"].datasplit
    assert split.train == ["crop_1", "crop_2", "crop_3", "a"]
    assert split.train_weights == [2, 2, 2, 1]  # the table's weight, for each of its rows
    assert cfg.tables == {"many": ["crop_1", "crop_2", "crop_3"]}
    assert cfg.key("crop_2", "gt") == "datasets.many: crops.csv row 3: column 'gt'"
    assert cfg.key("a", "classes", 1) == "datasets.a.classes[1]"


def keep(data: dict) -> None:
    """No change to the config."""


@pytest.mark.parametrize(
    ("text", "mutate", "expected"),
    [
        (
            CROPS.replace("c2.zarr", ""),
            keep,
            "datasets.many: crops.csv row 3: column 'container' is empty",
        ),
        (
            CROPS,
            lambda d: d["datasets"].update(many={"csv": "nope.csv"}),
            "datasets.many: nope.csv: file not found",
        ),
        (
            CROPS,
            lambda d: d["datasets"]["many"].update(sep=";"),
            "datasets.many.sep: unknown key",
        ),
        (
            CROPS.replace("crop_2", "a"),
            keep,
            "crops.csv row 3: column 'name': dataset 'a' is already defined (datasets.a)",
        ),
        (
            CROPS.replace("crop_3", "crop_1"),
            keep,
            "crops.csv row 5: column 'name': dataset 'crop_1' is already defined "
            "(datasets.many: crops.csv row 2)",
        ),
        (
            CROPS.replace("crop_1", "many"),
            keep,
            "row 2: column 'name': dataset 'many' is already defined (datasets.many)",
        ),
        (CROPS.replace("crop_1", "crop 1"), keep, "row 2: column 'name': 'crop 1' is not a name"),
        (
            CROPS.replace("mask,\n", "mask,,x\n"),
            keep,
            "row 3: more cells than the header has columns",
        ),
        (CROPS.replace("mask,classes", "mask,roi"), keep, "row 1: column 'roi' is not a dataset"),
        (CROPS.replace(",raw,", ","), keep, "crops.csv row 1: no column 'raw' (required: name,"),
        (CROPS.replace("mito; er", "mi to"), keep, "row 2: column 'classes': String should"),
        ("name,container,raw\n", keep, "datasets.many: crops.csv: no rows after the header"),
        ("", keep, "datasets.many: crops.csv: empty (expected a header row: name, container,"),
        (
            CROPS.replace("mito; er", "golgi"),
            keep,
            "crops.csv row 2: column 'classes': unknown class 'golgi' (classes of the runs using "
            "it: er, mito)",
        ),
        (
            CROPS.replace(" labels ", ""),
            lambda d: d["runs"]["r"]["datasplit"].update(train=["many"]),
            "datasets.many: crops.csv row 5: column 'gt': needed to train run 'r'",
        ),
        (
            CROPS,
            lambda d: d["runs"]["r"]["datasplit"].update(train=["many"], train_weights=[1, 1]),
            "runs.r.datasplit.train_weights: one weight per entry of train",
        ),
        (
            CROPS,
            lambda d: d["runs"]["r"]["datasplit"].update(validate=["many", "crop_1"]),
            "runs.r.datasplit.validate[3]: dataset 'crop_1' twice",
        ),
        (
            CROPS,
            lambda d: d.update(apply=[{"run": "r", "input": "many"}]),
            "apply[0].input: 'many' is a CSV table; apply one of its datasets",
        ),
    ],
)
def test_a_bad_csv_table_is_one_line_naming_its_row_and_column(
    tmp_path, monkeypatch, text, mutate, expected
):
    data = with_table(tmp_path, monkeypatch, text)
    mutate(data)
    with pytest.raises(config.ConfigError) as e:
        config.parse(data)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_a_data_mistake_of_a_csv_row_names_its_row_and_column(tmp_path, monkeypatch):
    data = with_table(tmp_path, monkeypatch, "name,container,raw,gt\ncrop_1,c.zarr,rwa,gt\n")
    data["datasets"]["a"]["container"] = "c.zarr"
    _volume(tmp_path / "c.zarr", (20, 100, 100))
    with pytest.raises(config.ConfigError) as e:
        preflight.check(config.parse(data))
    assert str(e.value).startswith("datasets.many: crops.csv row 2: column 'raw': ")
    assert "\n" not in str(e.value)


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
    raw = np.zeros((50, 100, 100), np.uint8)  # thinner in z than the 68^3 input
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
