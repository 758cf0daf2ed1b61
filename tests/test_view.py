"""The neuroglancer viewer: layers at the right scale, a real headless browser, follow mode."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
from conftest import BIN
from PIL import Image

from dacapo_core import arrays, view

VS = (8, 8, 8)


def validation(run_dir, iteration, value):
    container = run_dir / f"validation/{iteration}/val.zarr"
    rng = np.random.default_rng(iteration)
    arrays.write_numpy(
        container / "prediction", rng.random((3, 16, 32, 32), np.float32), VS, (32, 32, 32)
    )
    frags = np.arange(16 * 32 * 32, dtype=np.uint64).reshape(16, 32, 32) // 64 + 1
    arrays.write_numpy(container / "fragments", frags, VS, (32, 32, 32))
    arrays.write_numpy(container / "segmentation", frags // 4 + value, VS, (32, 32, 32))


def set_best(run_dir, iteration):
    best = {c: {"iteration": iteration, "parameters": {}, "value": 0.0} for c in ("voi", "arand")}
    arrays.write_json(run_dir / "best.json", best)


@pytest.fixture
def run_dir(tmp_path):
    """A run as the workflow leaves it: run.json, best.json, validation arrays."""
    data = tmp_path / "data.zarr"
    arrays.write_numpy(
        data / "raw", np.random.default_rng(0).integers(0, 255, (32, 64, 64), np.uint8), VS
    )
    labels = np.ones((16, 32, 32), np.uint64)
    arrays.write_numpy(data / "gt", labels, VS, (32, 32, 32))
    run = tmp_path / "results/r"
    datasets = {"val": {"container": str(data), "raw": "raw", "gt": "gt", "mask": None}}
    resolved = {"run": {"criterion": "voi", "datasplit": {"train": ["val"], "validate": ["val"]}}}
    arrays.write_json(run / "run.json", {"run": resolved, "datasets": datasets})
    validation(run, 10, 1)
    set_best(run, 10)
    return run


def test_layers_at_world_scale(run_dir):
    viewer = view.start(run_dir)
    names = [layer.name for layer in viewer.state.layers]
    assert names == ["raw", "gt", "prediction", "fragments", "segmentation"]
    prediction = view._volume(str(run_dir / "validation/10/val.zarr/prediction"))
    assert list(prediction.dimensions.names) == ["c^", "z", "y", "x"]
    assert list(prediction.dimensions.scales[1:]) == pytest.approx([8e-9] * 3)
    assert list(prediction.voxel_offset) == [0, 4, 4, 4]  # 32 nm / 8 nm
    assert "127.0.0.1" in viewer.get_viewer_url()


def test_follow_shows_a_new_best(run_dir):
    viewer = view.start(run_dir)
    assert view.refresh(viewer, run_dir, 10) == 10  # nothing new
    validation(run_dir, 20, 5)
    set_best(run_dir, 20)
    assert view.refresh(viewer, run_dir, 10) == 20
    source = viewer.state.layers["segmentation"].layer.source[0].url
    assert source.startswith("python://")  # served by this process, lazily


@pytest.fixture(scope="module")
def chromium():
    if shutil.which("chromium") is None:
        if os.geteuid() != 0:
            pytest.skip("installing chromium needs root (CI runs as root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
            check=True,
            env=env,
            capture_output=True,
        )
    return shutil.which("chromium")


def start_cli(run_dir):
    """`dacapo-flow view` as a user starts it; returns the process and its URL."""
    proc = subprocess.Popen(
        [str(BIN / "dacapo-flow"), "view", str(run_dir), "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def test_page_renders_in_a_headless_browser(run_dir, chromium, tmp_path):
    """Chromium opens the viewer; neuroglancer renders it once all chunks have loaded."""
    viewer = view.start(run_dir)
    browser = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--use-angle=swiftshader",  # WebGL on the CPU
            "--enable-unsafe-swiftshader",
            "--window-size=1000,700",
            "--remote-debugging-port=0",  # keeps the headless browser open
            viewer.get_viewer_url(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        shot = viewer.screenshot(size=[800, 600])
    finally:
        browser.kill()
        browser.wait()
    image = np.asarray(Image.open(io.BytesIO(shot.screenshot.image)).convert("RGB")).astype(int)
    assert image.std() > 10  # not blank
    colourful = np.abs(image - image.mean(axis=2, keepdims=True)).sum(axis=2) > 60
    assert colourful.mean() > 0.005  # the segmentation's colours are drawn


def test_cli_prints_the_url_and_stops_on_ctrl_c(run_dir):
    proc, url = start_cli(run_dir)
    assert url.startswith("http://127.0.0.1:")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "viewer stopped" in out and "Traceback" not in err
