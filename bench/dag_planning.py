"""Planning a large DAG: `snakemake -n` on the workflow against Snakemake's own floor.

    .venv/bin/python bench/dag_planning.py [--checkpoints 10 30 100]

Ours: the demo config with 4 runs x 3 repetitions and K checkpoints each, dry-run
in a work directory where the demo data exist (made once by the workflow), so that
config validation, preflight (which opens the arrays) and every input function run
as they do for a user. Floor: a generated Snakefile of the same shape (per
repetition a chain of training chunks; per checkpoint a prediction, fragments, a
score and its collection; per run a selection) with trivial input functions and no
config, dry-run the same way. Printed per K: jobs, seconds of each, their ratio,
and milliseconds per job (flat when planning is linear in jobs).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
RUNS, REPETITIONS = 4, 3

#: the floor's workflow: {runs}, {reps}, {its} filled in
FLOOR = """
RUNS = [f"r{{i}}" for i in range({runs})]
REPS = range({reps})
ITS = list(range(1, {its} + 1))

rule all:
    input: expand("select/{{run}}.json", run=RUNS)

rule train:
    input: lambda w: [] if int(w.it) == 1 else f"ckpt/{{w.run}}_{{w.rep}}/{{int(w.it) - 1}}.pt"
    output: "ckpt/{{run}}_{{rep}}/{{it}}.pt"
    shell: "touch {{output}}"

rule predict:
    input: "ckpt/{{run}}_{{rep}}/{{it}}.pt"
    output: "pred/{{run}}_{{rep}}/{{it}}"
    shell: "touch {{output}}"

rule fragments:
    input: "pred/{{run}}_{{rep}}/{{it}}"
    output: "frag/{{run}}_{{rep}}/{{it}}"
    shell: "touch {{output}}"

rule score:
    input: "frag/{{run}}_{{rep}}/{{it}}"
    output: "score/{{run}}_{{rep}}/{{it}}.json"
    shell: "touch {{output}}"

rule scores:
    input: "score/{{run}}_{{rep}}/{{it}}.json"
    output: "scores/{{run}}_{{rep}}/{{it}}.json"
    shell: "touch {{output}}"

rule select:
    input: lambda w: [f"scores/{{w.run}}_{{r}}/{{i}}.json" for r in REPS for i in ITS]
    output: "select/{{run}}.json"
    shell: "touch {{output}}"
"""


def dry_run(workdir: Path, *args: str) -> tuple[float, int]:
    """Seconds of ``snakemake -n`` and the number of jobs it plans."""
    t0 = time.perf_counter()
    result = subprocess.run(
        [SNAKEMAKE, "-n", "--quiet", "rules", "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - t0
    total = re.search(r"^total\s+(\d+)$", result.stdout, re.MULTILINE)
    return seconds, int(total.group(1)) if total else 0


def our_config(base: dict, checkpoints: int) -> dict:
    """The demo config with RUNS runs of REPETITIONS repetitions and ``checkpoints``
    validated checkpoints each."""
    run = base["runs"]["affs_unet"]
    interval = run["validation_interval"]
    runs = {
        f"affs_{i}": {
            **run,
            "repetitions": REPETITIONS,
            "train_until": interval * (checkpoints + 1),
        }
        for i in range(RUNS)
    }
    return {**base, "runs": runs, "apply": [{**base["apply"][0], "run": "affs_0__0"}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 30, 100])
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        ours, floor = Path(tmp, "ours"), Path(tmp, "floor")
        ours.mkdir()
        made = [SNAKEMAKE, "data/demo.zarr", "-s", str(REPO / "Snakefile"), "--cores", "1"]
        made += ["--directory", str(ours), "--configfile", str(REPO / "config/config.yaml")]
        subprocess.run(made, capture_output=True, check=True)
        print(f"{RUNS} runs x {REPETITIONS} repetitions x K checkpoints; snakemake -n seconds")
        print(" K | jobs ours | ours s | jobs floor | floor s | ratio | ms/job ours | ms/job floor")
        for k in args.checkpoints:
            config = ours / f"k{k}.yaml"
            config.write_text(yaml.safe_dump(our_config(base, k), sort_keys=False))
            ours_s, ours_jobs = dry_run(
                ours, "-s", str(REPO / "Snakefile"), "--configfile", str(config)
            )
            floor.mkdir(exist_ok=True)
            snakefile = floor / f"k{k}.smk"
            snakefile.write_text(FLOOR.format(runs=RUNS, reps=REPETITIONS, its=k))
            floor_s, floor_jobs = dry_run(floor, "-s", str(snakefile))
            print(
                f"{k:3d} | {ours_jobs:9,d} | {ours_s:6.1f} | {floor_jobs:10,d} | {floor_s:7.1f} | "
                f"{ours_s / floor_s:5.2f} | {1000 * ours_s / ours_jobs:11.1f} | "
                f"{1000 * floor_s / floor_jobs:12.1f}"
            )


if __name__ == "__main__":
    main()
