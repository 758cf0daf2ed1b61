"""Data checks before any job: one line naming the dataset and array, bounded reads."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import TINY, snakemake, write_config

from dacapo_core import arrays, cli, config, preflight

VOXEL = (8, 8, 8)


def experiment(tmp_path: Path) -> dict:
    """TINY on a small volume of our own (not the demo's): raw, labelled gt, mask."""
    data = copy.deepcopy(TINY)
    data.pop("demo")
    container = str(tmp_path / "d.zarr")
    data["datasets"] = {"d": {"container": container, "raw": "raw", "gt": "gt", "mask": "mask"}}
    data["runs"]["tiny"]["datasplit"] = {"train": ["d"], "validate": ["d"]}
    data["apply"] = []
    write(tmp_path, "raw", np.zeros((48, 48, 48), np.uint8))
    write(tmp_path, "gt", np.arange(48**3, dtype=np.uint64).reshape((48,) * 3) % 5)
    write(tmp_path, "mask", np.ones((48, 48, 48), np.uint8))
    return data


def write(tmp_path: Path, name: str, data: np.ndarray, **kwargs) -> None:
    arrays.write_numpy(tmp_path / f"d.zarr/{name}", data, kwargs.pop("voxel_size", VOXEL), **kwargs)


def no_voxel_size(tmp_path: Path) -> None:
    del zarr.open(str(tmp_path / "d.zarr/gt"), mode="r+").attrs["voxel_size"]


def shifted(tmp_path: Path) -> None:
    zarr.open(str(tmp_path / "d.zarr/gt"), mode="r+").attrs["offset"] = [4, 0, 0]


#: (data edit, the one line's start): each a mistake a new user makes
MISTAKES = {
    "fractional labels": (
        lambda p: write(p, "gt", np.full((48, 48, 48), 1.5, np.float32)),
        "datasets.d.gt (",
        "instance labels must be integers, found 1.5 (float32)",
    ),
    "nothing labelled": (
        lambda p: write(p, "gt", np.zeros((48, 48, 48), np.uint64)),
        "datasets.d.gt (",
        "nothing is labelled inside its mask (all 0)",
    ),
    "mask smaller than gt": (
        lambda p: write(p, "mask", np.ones((40, 48, 48), np.uint8), offset=(64, 0, 0)),
        "datasets.d.mask (",
        "ROI [64:384,0:384,0:384] does not contain gt's [0:384,0:384,0:384]",
    ),
    "offset off the grid": (shifted, "datasets.d.gt (", "is not a multiple of the voxel size"),
    "no voxel size": (no_voxel_size, "datasets.d.gt (", "no voxel_size attribute"),
    "channels": (
        lambda p: write(p, "raw", np.zeros((3, 48, 48, 48), np.uint8)),
        "datasets.d.raw (",
        "3 channels (shape (3, 48, 48, 48)), but the network of run 'tiny' takes 1",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_data_mistake_is_one_error_naming_the_array(tmp_path, mistake):
    data = experiment(tmp_path)
    edit, start, text = MISTAKES[mistake]
    preflight.check(config.parse(data))  # the valid volume passes
    edit(tmp_path)
    with pytest.raises(config.ConfigError) as error:
        preflight.check(config.parse(data))
    message = str(error.value)
    assert message.startswith(start) and text in message and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_data_mistake_stops_the_dry_run_and_check_alike(tmp_path, capsys, mistake):
    edit, start, text = MISTAKES[mistake]
    cfg = write_config(tmp_path, experiment(tmp_path))
    edit(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 1 and text in errors[0], result.stderr[-2000:]
    message = errors[0].removeprefix("config error: ")
    assert message.startswith(start)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == before
    assert cli.main(["check", str(cfg)]) == 2
    assert capsys.readouterr().err == f"dacapo-flow check: error: {message}\n"


def test_labels_count_only_inside_the_mask(tmp_path):
    data = experiment(tmp_path)
    mask = np.zeros((48, 48, 48), np.uint8)
    mask[:8] = 1
    write(tmp_path, "mask", mask)
    write(tmp_path, "gt", np.pad(np.ones((40, 48, 48), np.uint64), ((8, 0), (0, 0), (0, 0))))
    with pytest.raises(config.ConfigError, match=r"datasets.d.gt .* nothing is labelled inside"):
        preflight.check(config.parse(data))


def test_whole_number_floats_and_a_single_label_pass(tmp_path):
    data = experiment(tmp_path)
    gt = np.zeros((48, 48, 48), np.float64)
    gt[47, 47, 47] = 7.0  # sparse: one labelled voxel, in the last chunk
    write(tmp_path, "gt", gt)
    preflight.check(config.parse(data))


class CountingStore(zarr.storage.DirectoryStore):
    """Counts the chunks asked for (written or not: zarr asks for them in one batch)."""

    reads: list[str] = []

    def getitems(self, keys, **kwargs):
        CountingStore.reads += keys
        return super().getitems(keys, **kwargs)


@pytest.mark.parametrize("dtype", [np.uint64, np.float32])
def test_a_large_sparse_crop_passes_reading_a_bounded_sample(tmp_path, monkeypatch, dtype):
    """A 2048^3 GT (32768 chunks) with one label the sample misses: not refused (it
    may be labelled elsewhere), and at most SCAN_CHUNKS chunks are read."""
    data = experiment(tmp_path)
    shape, chunks = (2048, 2048, 2048), (64, 64, 64)
    gt = zarr.open(str(tmp_path / "d.zarr/gt"), mode="w", shape=shape, chunks=chunks, dtype=dtype)
    gt.attrs.update(voxel_size=list(VOXEL), offset=[0, 0, 0], axis_names=["z", "y", "x"])
    gt[100, 100, 100] = 3
    monkeypatch.setattr(zarr.storage, "DirectoryStore", CountingStore)
    CountingStore.reads = []
    rois, complete = preflight.sample_chunks(arrays.open_array(tmp_path / "d.zarr/gt"))
    assert len(rois) == preflight.SCAN_CHUNKS and not complete
    gt = arrays.open_array(tmp_path / "d.zarr/gt")
    preflight._check_labels(config.parse(data), "d", gt, None, labelled=True)
    assert 0 < len(CountingStore.reads) <= preflight.SCAN_CHUNKS
