"""Every output says where it came from; `dacapo-flow provenance` prints the chain."""

from __future__ import annotations

import pytest
import torch
from conftest import copy_workdir

from dacapo_core import arrays, cli, provenance

pytestmark = pytest.mark.slow

SEGMENTATION = "results/tiny/apply/test_a.zarr/segmentation"


def test_the_segmentation_names_its_iteration_checkpoint_and_config(finished, monkeypatch, capsys):
    monkeypatch.chdir(finished[0])
    record = provenance.read(SEGMENTATION)
    checkpoint = record["checkpoint"]
    choice = arrays.read_json("results/tiny/apply/test_a.choice.json")
    assert checkpoint["iteration"] == choice["iteration"]
    assert checkpoint["sha256"] == provenance.sha256(checkpoint["path"])
    run_json = arrays.read_json("results/tiny/run.json")
    assert record["run"]["config_hash"] == provenance.config_hash(run_json)
    assert set(record["libraries"]) == set(provenance.LIBRARIES)
    assert cli.main(["provenance", SEGMENTATION]) == 0
    printed = capsys.readouterr().out
    print(printed)  # the closing note quotes it
    assert printed.startswith(f"{SEGMENTATION}\n")
    assert f"iteration {choice['iteration']}, sha256 {checkpoint['sha256']} (matches" in printed
    assert "(matches run.json)" in printed and "input raw: data/demo.zarr/test/raw" in printed
    assert f"results/tiny/run.json: config sha256 {record['run']['config_hash']}" in printed
    state = torch.load(checkpoint["path"], weights_only=True)
    assert state["provenance"]["iteration"] == state["iteration"]
    for output in ("best.json", "validation/10/scores.json", "run.json"):
        assert arrays.read_json(f"results/tiny/{output}")["provenance"]["run"]["name"] == "tiny"


def test_verify_fails_once_the_checkpoint_changed(finished, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(copy_workdir(finished[0], tmp_path / "wd"))
    assert cli.main(["provenance", "--verify", SEGMENTATION]) == 0
    checkpoint = provenance.read(SEGMENTATION)["checkpoint"]["path"]
    state = torch.load(checkpoint, weights_only=True)
    state["iteration"] += 1
    torch.save(state, checkpoint)
    capsys.readouterr()
    assert cli.main(["provenance", "--verify", SEGMENTATION]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"dacapo-flow provenance: error: {checkpoint}: sha256 ")
