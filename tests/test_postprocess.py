"""Post-processing of class predictions: blockwise results equal whole-volume numpy /
scipy results exactly, and a failed job, rerun, resumes its finished blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from dacapo_core import arrays
from dacapo_core.blockwise import BlockwiseError
from dacapo_core.postprocess import (
    argmax_blockwise,
    components_blockwise,
    join,
    threshold_blockwise,
)

VS = Coordinate(8, 4, 4)
OFFSET = Coordinate(16, -8, 40)
SHAPE = (11, 19, 15)
BLOCK = Coordinate(6, 10, 8)  # 2 x 2 x 2 blocks, the last ones shrunk at the volume's end


def write(path: str, data: np.ndarray, attrs: dict | None = None) -> str:
    """``data`` as an array chunked in blocks (so one block's chunk can be spoiled)."""
    roi = Roi(OFFSET, Coordinate(data.shape[-3:]) * VS)
    channels = data.shape[0] if data.ndim == 4 else None
    array = arrays.prepare_array(path, roi, VS, data.dtype, channels, chunk_shape=BLOCK)
    array[roi] = data
    zarr.open(path, mode="a").attrs.update(attrs or {})
    return path


def same_place(array, path: str) -> bool:
    source = arrays.open_array(path)
    return array.voxel_size == source.voxel_size and array.roi == source.roi


def test_threshold_and_argmax_blockwise_equal_numpy_on_the_whole_volume(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, *SHAPE)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    attrs = {"task": "one_hot", "channels": ["background", "mito", "er"]}
    prediction = write(f"{tmp_path}/p.zarr/one_hot", probabilities, attrs)
    out = f"{tmp_path}/out.zarr"

    labels = argmax_blockwise(prediction, f"{out}/argmax", BLOCK, num_workers=2)
    assert labels.dtype == np.uint8 and same_place(labels, prediction)
    assert np.array_equal(labels.to_ndarray(labels.roi), np.argmax(probabilities, axis=0))
    assert zarr.open(f"{out}/argmax", mode="r").attrs["classes"] == attrs["channels"]

    er = threshold_blockwise(prediction, f"{out}/er", "er", 0.4, BLOCK, num_workers=2)
    assert er.dtype == np.uint8 and same_place(er, prediction)
    assert np.array_equal(er.to_ndarray(er.roi), (probabilities[2] > 0.4).astype(np.uint8))
    with pytest.raises(arrays.DataError, match="no class 'nucleus'"):
        threshold_blockwise(prediction, f"{out}/x", "nucleus", 0.5)

    distances = write(f"{tmp_path}/p.zarr/distances", np.tanh(logits[:2]), {"channels": ["a", "b"]})
    with pytest.raises(arrays.DataError, match="argmax needs a one_hot prediction"):
        argmax_blockwise(distances, f"{out}/y")


def blobs(seed: int) -> np.ndarray:
    """Smoothed noise above a level: many objects, most crossing block faces and
    corners, some only joined through a neighbouring block."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=SHAPE), 1.2) > 0.08


def reference(mask: np.ndarray, min_size: int) -> np.ndarray:
    """scipy's whole-volume labels, small ones removed, renumbered in their order."""
    labels, _ = ndimage.label(mask)
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    labels[small[labels]] = 0
    return relabel_sequential(labels)[0]


def test_components_blockwise_equal_scipy_labels_across_faces_and_corners(tmp_path):
    mask = blobs(1)
    # two cubes touching only along an edge through the corner of all blocks: not
    # face-connected, so two instances
    mask[3:9, 7:13, 5:11] = False
    mask[4:6, 8:10, 6:8] = mask[6:8, 10:12, 6:8] = True
    path = write(f"{tmp_path}/m.zarr/mask", mask.astype(np.uint8))
    out = f"{tmp_path}/c.zarr/instances"
    instances = components_blockwise(path, out, 6, BLOCK, num_workers=2)
    result = instances.to_ndarray(instances.roi)
    expected = reference(mask, 6)
    assert same_place(instances, path) and instances.dtype == np.uint64
    assert np.array_equal(result, expected)  # the same partition, even the same ids
    assert expected.max() > 4 and reference(mask, 0).max() > expected.max()  # some were small
    assert result[5, 9, 7] and result[6, 10, 7] and result[5, 9, 7] != result[6, 10, 7]
    assert not Path(arrays.staging(f"{out}.blocks")).exists()
    assert not Path(arrays.staging(out)).exists()


def test_join_numbers_instances_by_first_voxel_and_copes_with_empty_blocks(tmp_path):
    empty = np.zeros(0, np.uint64)
    np.savez(tmp_path / "0.npz", nodes=empty, sizes=empty, pairs=empty.reshape(0, 2))
    assert all(len(a) == 0 for a in join(tmp_path, min_size=3))
    nodes = np.array([40, 7, 90], np.uint64)  # 90 touches 40 across a face
    pairs = np.array([[40, 90]], np.uint64)
    np.savez(tmp_path / "1.npz", nodes=nodes, sizes=np.array([2, 1, 2]), pairs=pairs)
    found, instances = join(tmp_path, min_size=2)
    assert found.tolist() == [7, 40, 90] and instances.tolist() == [0, 1, 1]
    assert join(tmp_path, min_size=0)[1].tolist() == [1, 2, 2]


def test_a_failed_components_job_rerun_does_only_its_unfinished_blocks(tmp_path):
    mask = blobs(2)
    path = write(f"{tmp_path}/m.zarr/mask", mask.astype(np.uint8))

    last, first = Path(path) / "1/1/1", Path(path) / "0/0/0"
    good = last.read_bytes()
    last.write_bytes(b"not a chunk")  # the last block's input, unreadable for a while
    out = f"{tmp_path}/c.zarr/instances"
    with pytest.raises(BlockwiseError, match="label: 1 of 8 blocks failed"):
        components_blockwise(path, out, 5, BLOCK, num_workers=2)
    scratch = Path(arrays.staging(f"{out}.blocks"))
    chunks = [p for p in scratch.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len([p for p in chunks if ".daisy" not in p.parts]) == 7
    assert not Path(out).exists()

    last.write_bytes(good)
    first.write_bytes(b"not a chunk")  # a finished block's input: the rerun must not read it
    resumed = components_blockwise(path, out, 5, BLOCK, num_workers=2)
    assert np.array_equal(resumed.to_ndarray(resumed.roi), reference(mask, 5))
    assert not scratch.exists()
