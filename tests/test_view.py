"""Looking at results: the neuroglancer viewer (layers at the right scale, a real headless
browser, follow mode, the CLI) and the report's example sections."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import BIN
from PIL import Image

from dacapo_core import arrays, report, view

VS = (8, 8, 8)


DATASETS = ("val", "val2")


def segmentations(container, value):
    frags = np.arange(16 * 32 * 32, dtype=np.uint64).reshape(16, 32, 32) // 64 + 1
    arrays.write_numpy(container / "fragments", frags, VS, (32, 32, 32))
    arrays.write_numpy(container / "segmentation", frags // 4 + value, VS, (32, 32, 32))


def affinities(path, seed):
    affs = np.random.default_rng(seed).random((3, 16, 32, 32), np.float32)
    arrays.write_numpy(path, affs, VS, (32, 32, 32))


def validation(run_dir, iteration, value, kept=True):
    """Scored validations; ``kept=False``: predictions deleted once scored."""
    for dataset in DATASETS:
        container = run_dir / f"validation/{iteration}/{dataset}.zarr"
        if kept:
            affinities(container / "prediction", iteration)
        segmentations(container, value)


def set_best(run_dir, iteration):
    best = {c: {"iteration": iteration, "parameters": {}, "value": 0.0} for c in ("voi", "arand")}
    arrays.write_json(run_dir / "best.json", best)


@pytest.fixture
def run_dir(tmp_path):
    """A run as the workflow leaves it in its workdir (``tmp_path``): run.json with data
    paths relative to the workdir, best.json, validation arrays, an apply target."""
    data = tmp_path / "data.zarr"
    arrays.write_numpy(
        data / "raw", np.random.default_rng(0).integers(0, 255, (32, 64, 64), np.uint8), VS
    )
    labels = np.ones((16, 32, 32), np.uint64)
    arrays.write_numpy(data / "gt", labels, VS, (32, 32, 32))
    run = tmp_path / "results/r"
    dataset = {"container": "data.zarr", "raw": "raw", "gt": "gt", "mask": None}
    datasets = {name: dataset for name in DATASETS}
    split = {"train": ["val"], "validate": list(DATASETS)}
    resolved = {"run": {"criterion": "voi", "datasplit": split}}
    arrays.write_json(run / "run.json", {"run": resolved, "datasets": datasets})
    validation(run, 10, 1)
    set_best(run, 10)
    target = run / "apply/t.zarr"
    affinities(target / "prediction", 0)
    zarr.open(str(target / "prediction"), mode="r+").attrs["raw"] = "data.zarr/raw"  # relative
    segmentations(target, 1)
    return run


def names(viewer):
    return [layer.name for layer in viewer.state.layers]


def test_layers_at_world_scale(run_dir):
    viewer = view.start(run_dir)
    arrays_ = ["raw", "gt", "prediction", "fragments", "segmentation"]
    assert names(viewer) == [f"{d}/{a}" for d in DATASETS for a in arrays_]
    visible = {layer.name.split("/")[0] for layer in viewer.state.layers if layer.visible}
    assert visible == {"val"}  # the datasets overlap: the others are ticked on demand
    prediction = view._volume(str(run_dir / "validation/10/val.zarr/prediction"))
    assert list(prediction.dimensions.names) == ["c^", "z", "y", "x"]
    assert list(prediction.dimensions.scales[1:]) == pytest.approx([8e-9] * 3)
    assert list(prediction.voxel_offset) == [0, 4, 4, 4]  # 32 nm / 8 nm
    assert "127.0.0.1" in viewer.get_viewer_url()


def test_apply_target_from_another_directory(run_dir, tmp_path, monkeypatch):
    """Relative data paths resolve against the run's workdir, not the current directory."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    viewer = view.start(Path("../results/r"), target="t")
    assert names(viewer) == [
        f"t/{a}" for a in ("raw", "gt", "prediction", "fragments", "segmentation")
    ]
    raw = view.layers(Path("../results/r"), target="t")[0]
    assert raw.path == str(tmp_path / "data.zarr/raw")


def test_follow_shows_a_new_best(run_dir):
    viewer = view.start(run_dir)
    assert view.refresh(viewer, run_dir, 10) == 10  # nothing new
    validation(run_dir, 20, 5)
    set_best(run_dir, 20)
    assert view.refresh(viewer, run_dir, 10) == 20
    source = viewer.state.layers["val/segmentation"].layer.source[0].url
    assert source.startswith("python://")  # served by this process, lazily


def test_follow_waits_for_the_first_selection(run_dir):
    (run_dir / "best.json").unlink()
    viewer = view.serve()
    assert view.refresh(viewer, run_dir, None) is None
    assert names(viewer) == []
    assert "waiting" in viewer.config_state.state.status_messages[view.STATUS]
    set_best(run_dir, 10)
    assert view.refresh(viewer, run_dir, None) == 10
    assert "val2/segmentation" in names(viewer)
    assert view.STATUS not in viewer.config_state.state.status_messages


def test_follow_switches_once_the_best_prediction_is_written(run_dir):
    """Temporary validation predictions: a new best is predicted again after best.json."""
    viewer = view.start(run_dir)
    validation(run_dir, 20, 5, kept=False)
    set_best(run_dir, 20)
    assert view.refresh(viewer, run_dir, 10) == 10  # not yet: no prediction to show
    assert "iteration 20" in viewer.config_state.state.status_messages[view.STATUS]
    for dataset in DATASETS:
        affinities(run_dir / f"validation/best/{dataset}/20.zarr/prediction", 20)
    assert view.refresh(viewer, run_dir, 10) == 20
    prediction = view.layers(run_dir, iteration=20)[2]
    assert prediction.path.endswith("validation/best/val/20.zarr/prediction")


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


def start_cli(run_dir, *options):
    """`dacapo-flow view` as a user starts it; returns the process and its URL."""
    proc = subprocess.Popen(
        [str(BIN / "dacapo-flow"), "view", str(run_dir), "--no-browser", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def stop(proc):
    """Ctrl-C; returns what the viewer wrote after its URL."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "viewer stopped" in err and "Traceback" not in err
    return out, err


#: chromium with nothing beyond loopback: no background services, no QUIC, and a
#: proxy that does not exist for every host but the viewer's 127.0.0.1
#: (``<-loopback>`` would send loopback to that proxy too: the page would not load)
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
]


def screenshot(viewer, seconds=300):
    """The viewer's screenshot; fails, rather than waits forever, if no browser renders it."""
    shots = []
    thread = threading.Thread(
        target=lambda: shots.append(viewer.screenshot(size=[800, 600])), daemon=True
    )
    thread.start()
    thread.join(seconds)
    assert shots, "the browser did not render the viewer"
    return shots[0]


def test_page_renders_in_a_headless_browser(run_dir, chromium, tmp_path):
    """Chromium opens the viewer; neuroglancer renders it once all chunks have loaded."""
    viewer = view.start(run_dir)
    browser = subprocess.Popen(
        [
            chromium,
            *OFFLINE,
            f"--user-data-dir={tmp_path / 'profile'}",  # empty: no user's settings
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
        shot = screenshot(viewer)
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
    out, _ = stop(proc)
    assert out == ""  # the URL alone on stdout


def test_cli_bind_warns_on_stderr(run_dir):
    proc, url = start_cli(run_dir, "--bind", "127.0.0.2", "--iteration", "10")
    assert url.startswith("http://127.0.0.2:")
    out, err = stop(proc)
    assert out == "" and "anyone who can reach it" in err


def test_cli_follows_a_run_without_a_selection_yet(run_dir):
    (run_dir / "best.json").unlink()
    proc, url = start_cli(run_dir)
    assert url.startswith("http://127.0.0.1:")  # serving, not an error
    assert "waiting for the first selection" in proc.stderr.readline()
    assert proc.poll() is None
    stop(proc)


def test_slices_figure_shows_three_sections_of_each_volume(run_dir):
    raw = str(run_dir.parents[1] / "data.zarr/raw")
    containers = {"val": run_dir / "validation/10/val.zarr", "t": run_dir / "apply/t.zarr"}
    panels = [(n, raw, f"{c}/prediction", f"{c}/segmentation") for n, c in containers.items()]
    fig = report.slices_figure(panels)
    titles = [ax.get_title() for ax in fig.axes]
    rows = [f"{n}, z={z}" for n in containers for z in (64, 96, 128)]  # ROI z: 32 to 160
    assert titles == [f"{r}: {c}" for r in rows for c in report.SLICE_COLUMNS]
    sections = [ax.images[0].get_array() for ax in fig.axes[:9:3]]
    assert all(s.shape == (32, 32) for s in sections)  # the segmentation's ROI, not all raw
    assert not np.array_equal(sections[0], sections[1])
