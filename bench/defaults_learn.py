"""Do the defaults learn? A minimal config on real EM against a no-learning watershed.

    .venv/bin/python bench/defaults_learn.py [--train-until 1000] [--interval 250]

The config holds only what every user must write (datasets and datasplit) plus a
training length, so every other choice is a default: network, loss, learning
rate, augmentations, neighbourhood, post-processing grid and criterion. It trains
on the train volume of tests/data/fibsem_gala_example (real FIB-SEM, 10 nm
assumed) and validates on the test volume, through the real workflow
(``snakemake --cores 2``). The baseline is the same fragments + agglomeration
run on the smoothed raw intensity instead of predicted affinities (membranes
are dark), with its best smoothing and threshold picked on the test volume's GT
itself, which favours the baseline. Printed: VOI (split, merge), adapted Rand
and segment counts of both, and of the trivial "one segment" answer.

``--sections`` does the same in section mode: the config adds only a 2D
neighbourhood, so a default 2D network trains on single sections of the stack;
the baseline smooths within sections; everything is scored per section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import yaml
import zarr
from funlib.geometry import Coordinate
from scipy import ndimage

from dacapo_core import arrays
from dacapo_core.config import DEFAULTS_2D, WatershedConfig
from dacapo_core.evaluate import evaluate
from dacapo_core.sections import per_section
from dacapo_core.validate import sweep

REPO = Path(__file__).resolve().parents[1]
GALA = REPO / "tests/data/fibsem_gala_example"
VOXEL = Coordinate(10, 10, 10)
CRITERIA = ("voi", "voi_split", "voi_merge", "arand")


def import_gala(workdir: Path) -> None:
    for name in ("train", "test"):
        data = np.load(GALA / f"{name}.npz")
        for key in ("raw", "labels"):
            arrays.write_numpy(f"{workdir}/gala.zarr/{name}/{key}", data[key], VOXEL)


def minimal_config(train_until: int, interval: int, sections: bool) -> dict:
    def dataset(name: str) -> dict:
        return {"container": "gala.zarr", "raw": f"{name}/raw", "gt": f"{name}/labels"}

    split = {"train": ["train"], "validate": ["test"]}
    run = {"datasplit": split, "train_until": train_until, "validation_interval": interval}
    if sections:
        run["task"] = DEFAULTS_2D["task"]
    return {"datasets": {"train": dataset("train"), "test": dataset("test")}, "runs": {"r": run}}


def learned(workdir: Path, train_until: int, interval: int, sections: bool) -> dict:
    """Run the workflow; the selected scores (by the default criterion) and wall time."""
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(minimal_config(train_until, interval, sections)))
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile")]
    t0 = time.perf_counter()
    result = subprocess.run(
        [*snakemake, "--directory", str(workdir), "--cores", "2", "--configfile", str(config)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the workflow failed:\n{result.stderr[-3000:]}")
    best = arrays.read_json(workdir / "results/r/best.json")
    criterion = arrays.read_json(workdir / "results/r/run.json")["run"]["run"]["criterion"]
    choice = best[criterion]
    scores = arrays.read_json(workdir / f"results/r/validation/{choice['iteration']}/scores.json")
    results = scores["datasets"]["test"]["results"]
    chosen = next(r for r in results if r["parameters"] == choice["parameters"])
    return {**choice, "scores": chosen["scores"], "minutes": (time.perf_counter() - t0) / 60}


def baseline(workdir: Path, sigmas: tuple[float, ...], sections: bool) -> dict:
    """Raw intensity as affinities, same post-processing; best (sigma, threshold) by VOI.
    In section mode, smoothed and connected within sections only."""
    raw = np.load(GALA / "test.npz")["raw"].astype(np.float32) / 255
    gt_path = f"{workdir}/gala.zarr/test/labels"
    dims = 2 if sections else 3
    best = None
    for sigma in sigmas:
        smooth = ndimage.gaussian_filter(raw, (0 if sections else sigma, sigma, sigma))
        smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
        base = f"{workdir}/baseline_{sigma}.zarr"
        arrays.write_numpy(f"{base}/prediction", np.stack([smooth] * dims), VOXEL)
        units = np.eye(dims, dtype=int).tolist()
        zarr.open(f"{base}/prediction", mode="a").attrs["neighborhood"] = units
        result = sweep(
            f"{base}/prediction",
            gt_path,
            f"{base}/fragments",
            f"{base}/graph",
            f"{base}/segmentation",
            WatershedConfig(),
            "voi",
            Coordinate(50, 100, 200),
            num_workers=1,
        )
        for r in result["results"]:
            if best is None or r["scores"]["voi"] < best["scores"]["voi"]:
                best = {"sigma": sigma, **r}
    return best


def line(name: str, scores: dict) -> str:
    values = "  ".join(f"{c} {scores[c]:6.3f}" for c in CRITERIA)
    return f"{name:<34} {values}  segments {scores.get('n_segments', '-')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-until", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=250)
    parser.add_argument("--keep", help="keep the work directory here")
    parser.add_argument("--sections", action="store_true", help="a 2D network per section")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="defaults_learn_"))
    workdir.mkdir(parents=True, exist_ok=True)
    import_gala(workdir)
    gt = np.load(GALA / "test.npz")["labels"]
    trained = learned(workdir, args.train_until, args.interval, args.sections)
    classic = baseline(workdir, (0.5, 1.0, 2.0), args.sections)
    print(f"minimal config, {args.train_until} iterations: {trained['minutes']:.1f} min wall")
    learned_name = f"learned (it {trained['iteration']}, {trained['parameters']})"
    print(line(learned_name, trained["scores"]))
    classic_name = f"raw watershed (sigma {classic['sigma']}, {classic['parameters']})"
    print(line(classic_name, classic["scores"]))
    labels = [np.ones_like(gt), gt]
    if args.sections:
        labels = [per_section(x) for x in labels]
    print(line("one segment (per section)" if args.sections else "one segment", evaluate(*labels)))
    print(json.dumps({"learned": trained, "baseline": classic}, sort_keys=True))


if __name__ == "__main__":
    main()
