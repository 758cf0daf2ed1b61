"""Import boundaries: each entry point loads only the heavy libraries it needs.

``dacapo-flow check`` and the segmentation workers must not pay for torch (seconds
of import, and memory in every daisy worker); prediction must not pull in the
training pipeline (gunpowder). Each check runs in a fresh interpreter, since
this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def loaded_after(code: str, cwd: Path | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_prediction_does_not_load_the_training_pipeline():
    loaded = loaded_after("import dacapo_core.predict")
    assert "torch" in loaded  # the check sees what is loaded
    assert loaded & {"gunpowder", "dacapo_core.train", "dacapo_core.batches"} == set()


@pytest.mark.parametrize("module", ["dacapo_core.segment", "dacapo_core.segment.blockwise"])
def test_segmentation_does_not_load_torch(module):
    assert loaded_after(f"import {module}") & {"torch"} == set()


def test_check_does_not_load_torch(tmp_path):
    """The demo config's data need not exist: preflight skips demo datasets."""
    config = REPO / "config/config.yaml"
    code = f"from dacapo_core.cli import main\nassert main(['check', {str(config)!r}]) == 0"
    assert loaded_after(code, cwd=tmp_path) & {"torch"} == set()
