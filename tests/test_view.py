"""Looking at results: the neuroglancer viewer (layers at the right scale, a real headless
browser, follow mode, the CLI) and the report's example sections."""

from __future__ import annotations

import contextlib
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


def test_viewer_opens_centred_on_the_data_and_zoomed_to_fit(run_dir):
    """The visible layers overlap in the GT crop (world 32 to 160 / 288 nm, inside a
    larger raw): the views centre on it and one panel spans its largest edge."""
    state = view.start(run_dir).state
    assert list(state.dimensions.names) == ["z", "y", "x"]
    assert list(state.display_dimensions) == ["x", "y", "z"]  # the first panel: a z section
    assert list(state.dimensions.scales) == pytest.approx([8e-9] * 3)
    assert list(state.position) == pytest.approx([96 / 8, 160 / 8, 160 / 8])
    assert state.cross_section_scale * view.PANEL_PIXELS == pytest.approx(256 / 8)
    assert state.projection_scale >= 256 / 8


def test_a_new_best_keeps_the_users_view(run_dir):
    viewer = view.start(run_dir)
    with viewer.txn() as state:
        state.position = [1, 2, 3]
        state.cross_section_scale = 5.0
    validation(run_dir, 20, 5)
    set_best(run_dir, 20)
    assert view.refresh(viewer, run_dir, 10) == 20
    assert list(viewer.state.position) == [1, 2, 3]
    assert viewer.state.cross_section_scale == 5.0


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


def as_background_job():
    """What a shell does to a job it starts in the background (`cmd &` in a script,
    nohup on some systems): SIGINT ignored, inherited by the viewer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def cli_viewer(run_dir, *options):
    """`dacapo-flow view` as a script starts it (SIGINT ignored); yields the process and
    its URL, and kills it however the test ends: no viewer outlives a failed test."""
    proc = subprocess.Popen(
        [str(BIN / "dacapo-flow"), "view", str(run_dir), "--no-browser", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_background_job,
    )
    try:
        yield proc, proc.stdout.readline().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def stop(proc, signum=signal.SIGINT):
    """Ctrl-C (or SIGTERM); returns what the viewer wrote after its URL."""
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=10)
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
    """Chromium opens the viewer; neuroglancer renders it, centred on the data and zoomed
    to fit, once all chunks have loaded."""
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
    # the segmentation's colours fill the panels: the view is framed on the data (in a
    # corner of each panel, unframed, they covered 4% of the page)
    assert colourful.mean() > 0.15


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_prints_the_url_and_stops_on_ctrl_c_or_sigterm(run_dir, signum):
    """Even from a background job, whose SIGINT is ignored: Ctrl-C and kill both stop it."""
    with cli_viewer(run_dir) as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        out, _ = stop(proc, signum)
        assert out == ""  # the URL alone on stdout


def test_cli_bind_warns_on_stderr(run_dir):
    with cli_viewer(run_dir, "--bind", "127.0.0.2", "--iteration", "10") as (proc, url):
        assert url.startswith("http://127.0.0.2:")
        out, err = stop(proc)
        assert out == "" and "anyone who can reach it" in err


def test_cli_follows_a_run_without_a_selection_yet(run_dir):
    (run_dir / "best.json").unlink()
    with cli_viewer(run_dir) as (proc, url):
        assert url.startswith("http://127.0.0.1:")  # serving, not an error
        assert "waiting for the first selection" in proc.stderr.readline()
        assert proc.poll() is None
        stop(proc, signal.SIGTERM)


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


CLASSES = ("mito", "er", "vesicle")


def class_prediction(path, channels, task, seed):
    """A class prediction as predict writes it: a named channel per class, the raw
    it was predicted from (relative to the workdir)."""
    values = np.random.default_rng(seed).uniform(-1, 1, (len(channels), 16, 32, 32))
    arrays.write_numpy(path, values.astype(np.float32), VS, (32, 32, 32))
    attrs = {"task": task, "channels": list(channels), "raw": "data.zarr/raw"}
    zarr.open(str(path), mode="r+").attrs.update(attrs)
    return values


@pytest.fixture
def class_run(run_dir):
    """A class run on ``run_dir``'s data, validated at iteration 10 (selected), with a
    distances target (a mask per class, mito's instances) and a one_hot one (argmax)."""
    run = run_dir.parent / "c"
    arrays.write_json(run / "run.json", arrays.read_json(run_dir / "run.json"))
    set_best(run, 10)
    for dataset in DATASETS:
        class_prediction(run / f"validation/10/{dataset}.zarr/prediction", CLASSES, "distances", 0)
    dist = run / "apply/dist.zarr"
    values = class_prediction(dist / "prediction", CLASSES, "distances", 1)
    for name, channel in zip(CLASSES, values, strict=True):
        arrays.write_numpy(dist / f"classes/{name}", (channel > 0).astype(np.uint8), VS, (32,) * 3)
    arrays.write_numpy(dist / "instances/mito", (values[0] > 0).astype(np.uint64), VS, (32,) * 3)
    hot = run / "apply/hot.zarr"
    values = class_prediction(hot / "prediction", ("background", "mito", "er"), "one_hot", 2)
    arrays.write_numpy(hot / "argmax", values.argmax(axis=0).astype(np.uint8), VS, (32,) * 3)
    return run


def test_a_class_target_shows_each_class_by_name_in_its_own_colour(class_run):
    shown = view.layers(class_run, target="dist")
    assert [layer.name for layer in shown] == [
        "dist/raw",
        "dist/gt",
        *(f"dist/prediction/{c}" for c in CLASSES),
        "dist/classes/mito",
        "dist/instances/mito",
        "dist/classes/er",
        "dist/classes/vesicle",
    ]
    by_name = {layer.name: layer for layer in shown}
    predictions = [by_name[f"dist/prediction/{c}"] for c in CLASSES]
    assert [layer.channel for layer in predictions] == [0, 1, 2]
    colours = [layer.colour for layer in predictions]
    assert len(set(colours)) == len(CLASSES)
    assert [by_name[f"dist/classes/{c}"].colour for c in CLASSES] == colours
    assert by_name["dist/instances/mito"].kind == "segmentation"

    state = view.start(class_run, target="dist").state
    er = state.layers["dist/prediction/er"]
    assert f'default="{colours[1]}"' in er.shader and "getDataValue(1)" in er.shader
    assert "getDataValue()" in state.layers["dist/classes/er"].shader  # one channel: a mask
    assert state.layers["dist/instances/mito"].type == "segmentation"


def test_one_hot_argmax_is_a_segmentation_in_the_classes_colours(class_run):
    shown = {layer.name: layer for layer in view.layers(class_run, target="hot")}
    mito, er = shown["hot/prediction/mito"], shown["hot/prediction/er"]
    assert "hot/prediction/background" not in shown  # the classes' complement
    assert (mito.channel, er.channel) == (1, 2)
    assert shown["hot/argmax"].segment_colours == {1: mito.colour, 2: er.colour}
    state = view.start(class_run, target="hot").state
    assert dict(state.layers["hot/argmax"].segment_colors) == {1: mito.colour, 2: er.colour}


def test_follow_waits_for_a_class_runs_best_prediction(class_run):
    """Temporary validation predictions: the viewer shows a class run's best once every
    dataset's prediction is predicted again."""
    shutil.rmtree(class_run / "validation/10/val2.zarr/prediction")
    viewer = view.serve()
    assert view.refresh(viewer, class_run, None) is None
    class_prediction(class_run / "validation/best/val2/10.zarr/prediction", CLASSES, "distances", 3)
    assert view.refresh(viewer, class_run, None) == 10
    assert names(viewer)[:5] == ["val/raw", "val/gt", *(f"val/prediction/{c}" for c in CLASSES)]
