"""A segmentation worker's start-up: the imports of a daisy worker process against
an interpreter that imports nothing.

    .venv/bin/python bench/worker_startup.py [--repeats 5]

daisy runs each worker as ``python -m daisy._subprocess_worker``, which unpickles
the worker (importing its module) before the first block. Printed per case: the
median wall seconds and CPU seconds (user + sys) of a fresh interpreter, all cases
interleaved in the same run. The fragment worker's case adds the kernels the seeded
watershed imports on its first block (edt, cc3d, the compiled flood; its affinities
have a boundary, as every real block's: without one the distances are scipy's), which
the edge and relabel workers never load; funlib.persistence alone is the reference
for what the workers no longer import.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = "import daisy._subprocess_worker, dacapo_core.segment.workers"
CASES = {
    "python -c pass": "pass",
    "daisy's worker entry point": "import daisy._subprocess_worker",
    "a segmentation worker (edges, relabel)": WORKER,
    "a fragment worker, with its kernels": WORKER
    + "; import numpy as np; from dacapo_core.segment.fragments import fragments"
    + "; affs = np.ones((3, 4, 4, 4), np.float32); affs[:, 0] = 0; fragments(affs)",
    "funlib.persistence alone": "import funlib.persistence",
}


def run(code: str) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)  # this checkout's code
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    run(WORKER)  # bytecode compiled and files cached before anything is timed
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    for _ in range(repeats):
        for name, code in CASES.items():
            times[name].append(run(code))
    floor = statistics.median(wall for wall, _ in times["python -c pass"])
    print(f"{'case':42s} {'wall s':>7s} {'cpu s':>7s} {'wall - pass':>11s}")
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:42s} {wall:7.2f} {cpu:7.2f} {wall - floor:11.2f}")


if __name__ == "__main__":
    main()
