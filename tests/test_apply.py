"""Apply at scale: resumable blocks, uint8 predictions, borders, OME-NGFF metadata."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import BIN, TINY
from funlib.geometry import Coordinate, Roi

from dacapo_core import arrays, checkpoint, codec, config, train
from dacapo_core.blockwise import BlockwiseError
from dacapo_core.predict import Predictor, predict_blockwise, worker_device
from dacapo_core.segment import segment_blockwise
from dacapo_core.stages import TrainStage

VS = Coordinate(8, 8, 8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An (untrained) tiny network's checkpoint and a raw volume to predict."""
    root = tmp_path_factory.mktemp("apply")
    experiment = config.parse(TINY)
    stage = TrainStage.of(experiment.resolved_runs()["tiny"], experiment.datasets)
    ckpt = root / "model.pt"
    state = {"model": train.new_model(stage).state_dict()}
    checkpoint.save_checkpoint(ckpt, {**state, "model_config": checkpoint.model_config(stage)})
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (48, 80, 80), dtype=np.uint8)
    arrays.write_numpy(f"{root}/in.zarr/raw", raw, VS, Coordinate(80, 0, 160))
    return root, ckpt


def chunk_files(array_dir: Path) -> dict[Path, int]:
    """Chunk file -> modification time (metadata, block tracking and the temporary
    files zarr writes a chunk to, then renames, left out)."""
    found = {}
    for p in array_dir.rglob("*"):
        if p.name.startswith(".") or p.name.endswith(".partial") or ".daisy" in p.parts:
            continue
        with contextlib.suppress(FileNotFoundError):  # renamed while we looked
            if p.is_file():
                found[p] = p.stat().st_mtime_ns
    return found


def test_killed_predict_reruns_only_unfinished_blocks(model):
    root, ckpt = model
    out = root / "out.zarr/prediction"
    staged = Path(arrays.staging(out))
    predictor = Predictor.load(ckpt, 3)
    block = [str(s) for s in predictor.output_shape]
    command = [str(BIN / "dacapo-flow"), "predict", "--checkpoint", str(ckpt)]
    command += ["--input", f"{root}/in.zarr/raw", "--out", str(out), "--workers", "1"]
    command += ["--block-shape", *block]
    job = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(chunk_files(staged)) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # the job and its daisy workers, mid-task
    job.wait()
    assert not out.exists()  # nothing unfinished carries the final name
    before = chunk_files(staged)
    voxels = np.array(arrays.open_array(staged).roi.shape / VS)
    total = int(np.prod(np.ceil(voxels / np.array(predictor.output_shape))))
    assert 3 <= len(before) < total

    assert subprocess.run(command, capture_output=True).returncode == 0
    assert out.is_dir() and not staged.exists() and not (out / ".daisy").exists()
    after = {p.relative_to(out): t for p, t in chunk_files(out).items()}
    kept = [p for p, t in before.items() if after.get(p.relative_to(staged)) == t]
    assert len(kept) >= len(before) - 1  # at most the block in flight was redone
    assert len(after) == total

    uninterrupted = root / "whole.zarr/prediction"
    command[command.index(str(out))] = str(uninterrupted)
    assert subprocess.run(command, capture_output=True).returncode == 0
    whole, resumed = arrays.open_array(uninterrupted), arrays.open_array(out)
    assert np.array_equal(resumed.to_ndarray(resumed.roi), whole.to_ndarray(whole.roi))


def test_uint8_predictions_store_255ths_and_say_so(model):
    root, ckpt = model
    raw = f"{root}/in.zarr/raw"
    exact = predict_blockwise(ckpt, raw, f"{root}/p.zarr/float", num_workers=1)
    small = predict_blockwise(ckpt, raw, f"{root}/p.zarr/uint8", num_workers=1, dtype="uint8")
    assert small.dtype == np.uint8 and codec.scale_of(f"{root}/p.zarr/uint8") == 1 / 255
    values = codec.read_affinities(small, f"{root}/p.zarr/uint8", small.roi)
    assert np.abs(values - exact.to_ndarray(exact.roi)).max() <= 0.5 / 255 + 1e-6


def test_roi_at_the_volume_border_matches_the_whole_prediction(model):
    root, ckpt = model
    raw_path = f"{root}/in.zarr/raw"
    raw = arrays.open_array(raw_path)
    corner = Roi(raw.roi.end - Coordinate(16, 24, 24) * VS, Coordinate(16, 24, 24) * VS)
    part = predict_blockwise(ckpt, raw_path, f"{root}/b.zarr/corner", corner, num_workers=1)
    whole = predict_blockwise(ckpt, raw_path, f"{root}/b.zarr/whole", num_workers=1)
    assert part.roi == corner
    assert np.allclose(part.to_ndarray(corner), whole.to_ndarray(corner), atol=1e-5)
    outside = corner.shift(Coordinate(8, 0, 0))
    with pytest.raises(arrays.DataError, match="not inside"):
        predict_blockwise(ckpt, raw_path, f"{root}/b.zarr/outside", outside)


def test_outputs_carry_ome_ngff_multiscales(model):
    root, ckpt = model
    predict_blockwise(ckpt, f"{root}/in.zarr/raw", f"{root}/ome.zarr/prediction", num_workers=1)
    entries = {m["name"]: m for m in zarr.open_group(f"{root}/ome.zarr").attrs["multiscales"]}
    meta = entries["prediction"]
    assert meta["version"] == "0.4"
    assert [a["name"] for a in meta["axes"]] == ["c", "z", "y", "x"]
    scale, translation = meta["datasets"][0]["coordinateTransformations"]
    assert scale["scale"] == [1, 8, 8, 8]
    assert translation["translation"] == [
        0,
        *arrays.open_array(f"{root}/ome.zarr/prediction").offset,
    ]


def test_failed_segment_resumes_the_unfinished_blocks(tmp_path):
    """A block fails; once its input is repaired, a rerun finishes only what is left
    and equals an uninterrupted run."""
    rng = np.random.default_rng(1)
    affs = rng.uniform(0, 1, (3, 16, 16, 16)).astype(np.float32)
    path = f"{tmp_path}/c.zarr/affs"
    array = arrays.prepare_array(
        path, Roi((0, 0, 0), (64, 64, 64)), (4, 4, 4), np.float32, 3, (8, 8, 8)
    )
    array[array.roi] = affs
    chunk = tmp_path / "c.zarr/affs/0/1/0/0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not a compressed chunk")
    options = config.FragmentOptions(context=0)
    seg = f"{tmp_path}/c.zarr/seg"
    with pytest.raises(BlockwiseError):
        segment_blockwise(path, seg, 0.5, block_shape=(8, 8, 8), options=options)
    assert not Path(seg).exists()
    staged_frags = Path(arrays.staging(f"{tmp_path}/c.zarr/seg_fragments"))
    before = chunk_files(staged_frags)
    assert len(before) == 7  # every block but the failed one

    chunk.write_bytes(good)
    segment_blockwise(path, seg, 0.5, block_shape=(8, 8, 8), options=options)
    frags = Path(f"{tmp_path}/c.zarr/seg_fragments")
    after = {p.relative_to(frags): t for p, t in chunk_files(frags).items()}
    assert all(after[p.relative_to(staged_frags)] == t for p, t in before.items())
    fresh = f"{tmp_path}/fresh.zarr/seg"
    segment_blockwise(path, fresh, 0.5, block_shape=(8, 8, 8), options=options)
    a, b = arrays.open_array(seg), arrays.open_array(fresh)
    assert np.array_equal(a.to_ndarray(a.roi), b.to_ndarray(b.roi))


def test_killed_segment_reruns_only_unfinished_blocks(tmp_path):
    """SIGKILL while fragments are being written; the rerun keeps the finished
    blocks' fragments and its segmentation equals an uninterrupted run's."""
    rng = np.random.default_rng(2)
    affs = rng.uniform(0, 1, (3, 48, 48, 48)).astype(np.float32)
    affs_path = f"{tmp_path}/a.zarr/affs"
    arrays.write_numpy(affs_path, affs, VS)
    out = tmp_path / "s.zarr/seg"
    command = [str(BIN / "dacapo-flow"), "segment", "--affinities", affs_path, "--out", str(out)]
    command += ["--threshold", "0.5", "--workers", "1", "--block-shape", "8", "8", "8"]
    staged = Path(arrays.staging(tmp_path / "s.zarr/seg_fragments"))
    job = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(chunk_files(staged)) < 20 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not out.exists()
    before = chunk_files(staged)
    assert 20 <= len(before) < 6**3

    assert subprocess.run(command, capture_output=True).returncode == 0
    frags = tmp_path / "s.zarr/seg_fragments"
    after = {p.relative_to(frags): t for p, t in chunk_files(frags).items()}
    kept = [p for p, t in before.items() if after.get(p.relative_to(staged)) == t]
    assert len(kept) >= len(before) - 1 and len(after) == 6**3

    fresh = tmp_path / "fresh.zarr/seg"
    command[command.index(str(out))] = str(fresh)
    assert subprocess.run(command, capture_output=True).returncode == 0
    a, b = arrays.open_array(out), arrays.open_array(fresh)
    assert np.array_equal(a.to_ndarray(a.roi), b.to_ndarray(b.roi))


def test_workers_get_their_own_gpu_when_several_are_visible():
    assert [worker_device("auto", w, 2) for w in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_device("auto", 3, 1) == "auto"  # one GPU (or none): as configured
    assert worker_device("cpu", 1, 4) == "cpu"
