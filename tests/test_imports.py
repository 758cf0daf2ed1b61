"""Start-up that users wait on: what a Snakemake parse and a block worker import.

Every ``snakemake`` command (and every cluster job's own Snakemake) parses the
workflow, and every daisy worker process unpickles its worker before its first
block: heavy imports there cost seconds per command and per stage (issue 19).
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

#: what neither imports: the array stack (dask, xarray, pandas), torch
HEAVY = {"funlib.persistence", "xarray", "dask", "pandas", "torch", "gunpowder"}


def imported(*modules: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``modules``."""
    code = f"import sys, {', '.join(modules)}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_workflow_parse_imports_no_array_stack():
    common = (REPO / "workflow/rules/common.smk").read_text()
    ours = set(re.findall(r"^from (dacapo_core\.[\w.]+) import", common, re.MULTILINE))
    for names in re.findall(r"^from dacapo_core import (.+)$", common, re.MULTILINE):
        ours |= {f"dacapo_core.{name.split()[0]}" for name in names.split(",")}
    assert "dacapo_core.preflight" in ours and "dacapo_core.select" in ours
    assert not HEAVY & imported(*sorted(ours))


def test_block_workers_import_no_config_and_no_kernels():
    """The edge and relabel workers never load the seeded watershed's scipy and
    scikit-image; no worker builds the config schema."""
    modules = imported("daisy._subprocess_worker", "dacapo_core.segment.workers")
    assert not HEAVY & modules
    assert not {"dacapo_core.config", "dacapo_core.stages", "yaml", "scipy", "skimage"} & modules
