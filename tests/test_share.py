"""Issue 20: a run's model as a BioImage.IO package (tested by bioimageio.core, offline),
runs started from a model file, and TensorBoard event files equal to the JSON."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, copy_workdir, ran_rules, snakemake, write_config
from funlib.geometry import Coordinate

from dacapo_core import arrays, config, preflight, pretrained
from dacapo_core.config import ConfigError, DatasetConfig, RunConfig
from dacapo_core.export import export
from dacapo_core.predict import predict_blockwise
from dacapo_core.select import load_scores
from dacapo_core.stages import TrainStage
from dacapo_core.tensorboard_events import read_scalars
from dacapo_core.train import init_from, new_model, train


@pytest.fixture(scope="module")
def package(finished, tmp_path_factory) -> Path:
    """The finished tiny run's voi selection, exported with the network unreachable."""
    out = tmp_path_factory.mktemp("package") / "tiny.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        export(finished[0] / "results/tiny", "voi", out, author="tester")
    return out


def _no_network(self, address):
    raise OSError(f"test is offline: connect to {address}")


def _rdf(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def test_export_passes_bioimageio_core_test(package, monkeypatch):
    from bioimageio.core import test_model

    monkeypatch.setattr(socket.socket, "connect", _no_network)
    summary = test_model(package, devices=["cpu"])
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.errors]
    assert summary.status == "passed", failed
    tested = {d.name for d in summary.details}
    assert any("pytorch_state_dict" in n for n in tested)
    assert any("torchscript" in n for n in tested)
    rdf = _rdf(package)
    assert rdf["format_version"].startswith("0.5")
    raw = rdf["inputs"][0]
    assert raw["data"]["type"] == "uint8"  # the demo raw's dtype, scaled as in training
    steps = [p["id"] for p in raw["preprocessing"]]
    assert steps == ["ensure_dtype", "scale_linear", "ensure_dtype"]
    assert raw["preprocessing"][1]["kwargs"]["gain"] == pytest.approx(1 / 255)
    assert [a["scale"] for a in raw["axes"][2:]] == [8.0, 8.0, 8.0]
    out = rdf["outputs"][0]["axes"][2]
    assert out["size"]["offset"] == -16  # the context, already cropped (valid convolutions)
    facts = rdf["config"]["dacapo_flow"]
    assert facts["halo"] == [8, 8, 8] and facts["raw_dtype"] == "uint8"
    assert facts["selection"]["criterion"] == "voi"
    with zipfile.ZipFile(package) as z:
        readme = z.read("README.md").decode()
    assert f"threshold | {facts['selection']['parameters']['threshold']}" in readme
    assert "## Validation" in readme and "val_a" in readme


def test_start_from_package_predicts_its_test_output(package, finished, tmp_path, monkeypatch):
    """Iteration 0 of a run started from the package: every layer loaded, and our own
    blockwise prediction of the package's test input is its test output."""
    workdir = finished[0]
    record = arrays.read_json(workdir / "results/tiny/run.json")
    run = RunConfig.model_validate(
        {**record["run"]["run"], "start": {"path": str(package)}, "train_until": 10}
    )
    datasets = {n: DatasetConfig.model_validate(d) for n, d in record["datasets"].items()}
    resolved = config.ResolvedRun(name="ft", base="ft", seed=2, run=run)
    stage = TrainStage.of(resolved, datasets)
    monkeypatch.chdir(workdir)  # the datasets' paths
    checkpoint = tmp_path / "0.pt"
    summary = train(stage, 0, checkpoint, init_checkpoint=package, name="ft")
    assert summary["initialised_from"]["fresh"] == []

    with zipfile.ZipFile(package) as z:
        test_in = np.load(z.open("test_input.npy"))[0, 0]
        test_out = np.load(z.open("test_output.npy"))[0]
    raw = tmp_path / "in.zarr/raw"
    arrays.write_numpy(raw, test_in, Coordinate(8, 8, 8))
    context = Coordinate(np.array(test_in.shape) - np.array(test_out.shape[1:])) // 2 * 8
    roi = arrays.open_array(raw).roi.grow(-context, -context)
    out = predict_blockwise(checkpoint, str(raw), str(tmp_path / "out.zarr/prediction"), roi, 1)
    np.testing.assert_allclose(out[out.roi], test_out, rtol=0, atol=1e-5)


def test_start_files(package, finished, tmp_path):
    """A plain state dict and a dacapo-flow checkpoint load; shapes that differ are
    listed; a TorchScript-only package or a file with nothing that fits is one line."""
    stage = TrainStage.model_validate_json(
        TrainStage.of(
            config.parse(TINY).resolved_runs()["tiny"], config.parse(TINY).datasets
        ).model_dump_json()
    )
    source = finished[0] / "results/tiny/checkpoints/10.pt"
    plain = tmp_path / "plain.pt"
    torch.save(new_model(stage).state_dict(), plain)
    for path in (source, plain):
        assert init_from(new_model(stage), path) == []
    state = torch.load(plain, weights_only=True)
    head = {k: v for k, v in state.items() if not k.startswith("head.")}
    torch.save({"state_dict": {**head, "head.weight": torch.zeros(2, 4, 1, 1, 1)}}, plain)
    fresh = init_from(new_model(stage), plain)
    assert fresh == ["head.weight (2, 4, 1, 1, 1) -> (6, 4, 1, 1, 1)", "head.bias missing -> (6,)"]

    torchscript_only = tmp_path / "ts.zip"
    rdf = _rdf(package)
    del rdf["weights"]["pytorch_state_dict"]
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(torchscript_only, "w") as dst:
        for item in src.namelist():
            if item != "rdf.yaml":
                dst.writestr(item, src.read(item))
        dst.writestr("rdf.yaml", yaml.safe_dump(rdf))
    with pytest.raises(pretrained.StartError, match="TorchScript-only package") as error:
        init_from(new_model(stage), torchscript_only)
    assert "\n" not in str(error.value)
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, unrelated)
    with pytest.raises(pretrained.StartError, match="no layer fits"):
        init_from(new_model(stage), unrelated)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ({"run": "tiny", "path": "x.pt"}, "runs.ft.start: needs exactly one of run and path"),
        ({}, "runs.ft.start: needs exactly one of run and path"),
        ({"path": "missing.pt"}, "runs.ft.start.path: missing.pt: file not found"),
    ],
)
def test_bad_start_configs(start, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = {**TINY, "runs": {**TINY["runs"], "ft": {**TINY["runs"]["tiny"], "start": start}}}
    with pytest.raises(ConfigError) as error:
        preflight.check(config.parse(data))
    assert str(error.value) == message


def test_workflow_export_tensorboard_and_start(package, finished, tmp_path):
    """The rules on a finished run: an export and event files whose every scalar equals
    the JSON it came from, nothing else rerun; a run starting from a TorchScript-only
    package stops with one line, a run starting from the package plans its first chunk
    with the file as input."""
    workdir = copy_workdir(finished[0], tmp_path / "w")
    cfg = finished[1]
    result = snakemake(
        workdir, "tensorboard_all", "results/tiny/export/voi.bioimageio.zip",
        "--cores", "2", "--configfile", str(cfg),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert ran_rules(result) == {"tensorboard": 1, "export": 1, "tensorboard_all": 1}
    assert _rdf(workdir / "results/tiny/export/voi.bioimageio.zip")["type"] == "model"

    run = workdir / "results/tiny"
    scalars = read_scalars(run / "tensorboard")
    expected: dict[str, dict[int, float]] = {}
    for stats in sorted((run / "training_stats").glob("*.json")):
        for entry in arrays.read_json(stats)["iterations"]:
            for key, tag in (
                ("loss", "loss"),
                ("learning_rate", "learning_rate"),
                ("seconds", "seconds_per_iteration"),
            ):
                expected.setdefault(f"train/{tag}", {})[entry["iteration"]] = entry[key]
    scores = load_scores(sorted(run.glob("validation/*/scores.json")))
    for criterion, direction in config.CRITERIA.items():
        table = scores.sel(criterion=criterion)  # (iteration, parameters, dataset)
        best = table.min if direction == "lower" else table.max
        for it in scores.iteration.values:
            mean = table.sel(iteration=it).mean("dataset")
            expected.setdefault(f"validation/{criterion}", {})[int(it)] = float(
                mean.min() if direction == "lower" else mean.max()
            )
            for ds in scores.dataset.values:
                value = float(best("parameters").sel(iteration=it, dataset=ds))
                expected.setdefault(f"validation/{ds}/{criterion}", {})[int(it)] = value
    assert scalars == expected
    assert len(expected["train/loss"]) == 20 and len(expected["validation/voi"]) == 2

    runs = {"ft": {**TINY["runs"]["tiny"], "start": {"path": str(package)}, "train_until": 10}}
    ft = write_config(workdir, {**TINY, "runs": runs, "apply": []}, "ft.yaml")
    result = snakemake(workdir, "-n", "results/ft/checkpoints/10.pt", "--configfile", str(ft))
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(package) in result.stdout  # the file is the first chunk's input
    rdf = _rdf(package)
    del rdf["weights"]["pytorch_state_dict"]
    broken = workdir / "ts.zip"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("rdf.yaml", yaml.safe_dump(rdf))
    runs["ft"]["start"] = {"path": "ts.zip"}
    bad = write_config(workdir, {**TINY, "runs": runs, "apply": []}, "bad.yaml")
    result = snakemake(workdir, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("config error")]
    assert lines == [
        "config error: runs.ft.start.path: ts.zip: TorchScript-only package (weights: "
        "torchscript): a start needs pytorch_state_dict weights"
    ]
