"""Segmentation quality on real EM: a recipe against a tuned no-learning watershed.

    .venv/bin/python bench/defaults_learn.py [--iterations 1500] [--interval 250]
        [--recipe '{"task": {"lsds": true}}'] [--tta mirror] [--seed 1]
        [--keep DIR]

The honest protocol (issue 18), on tests/data/fibsem_gala_example (real
FIB-SEM, 10 nm assumed): train on ``train``; the ``test`` volume's labels are
split along z into a validation half (z < 25) and a test half (z >= 25), both
over the whole test raw (the network reads real context across the split).

- learned: the workflow (``snakemake --cores 2``) trains the recipe (a minimal
  config, datasets + datasplit, plus ``--recipe``'s run keys), validates every
  checkpoint on the validation half, selects iteration and post-processing
  there, and applies that choice to the test half. Also printed: the test
  half's own best parameters at the selected iteration (the oracle), to show
  how far the validation choice transfers.
- baseline: the same fragments + agglomeration on smoothed raw (membranes are
  dark), smoothing and parameters tuned on the validation half, scored on the
  test half; its test-half oracle beside it.
- one segment: the floor.

The budget is training wall time on this machine: printed as minutes of the
training jobs (sum of their iteration times) and iterations/s, so a recipe's
iteration count is chosen for a budget from a short first run.
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
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import yaml
import zarr
from funlib.geometry import Coordinate, Roi
from scipy import ndimage

from dacapo_core import arrays, layout
from dacapo_core.config import CRITERIA, FragmentOptions, RunConfig, WatershedConfig
from dacapo_core.evaluate import evaluate
from dacapo_core.predict import predict
from dacapo_core.segment import fragment_prediction
from dacapo_core.select import stable_values
from dacapo_core.stages import PredictStage, ScoreStage
from dacapo_core.validate import score

REPO = Path(__file__).resolve().parents[1]
GALA = REPO / "tests/data/fibsem_gala_example"
VOXEL = Coordinate(10, 10, 10)
SPLIT_Z = 25  # sections: validation half below, test half from here
SHOWN = ("voi", "voi_split", "voi_merge", "arand")
DEFAULT_FRAGMENTS = FragmentOptions()  # what a minimal config's runs use


def half_roi(shape: tuple[int, ...], test: bool) -> Roi:
    """World ROI of the validation (``test=False``) or test half of the test volume."""
    begin = (SPLIT_Z if test else 0, 0, 0)
    end = (shape[0] if test else SPLIT_Z, *shape[1:])
    return Roi(Coordinate(begin) * VOXEL, (Coordinate(end) - Coordinate(begin)) * VOXEL)


def import_gala(workdir: Path) -> dict[str, Roi]:
    """Train raw/labels, the whole test raw, and the test labels as two halves (each
    with its own offset), unless a kept work directory has them; the halves' world
    ROIs by name."""
    container = f"{workdir}/gala.zarr"
    test = np.load(GALA / "test.npz")
    rois = {name: half_roi(test["labels"].shape, test=name == "test") for name in ("val", "test")}
    if Path(container).exists():  # a kept work directory: rewriting would retrain
        return rois
    train = np.load(GALA / "train.npz")
    for key in ("raw", "labels"):
        arrays.write_numpy(f"{container}/train/{key}", train[key], VOXEL)
    arrays.write_numpy(f"{container}/test/raw", test["raw"], VOXEL)
    for name, roi in rois.items():
        labels = test["labels"][(roi / VOXEL).to_slices()]
        arrays.write_numpy(f"{container}/test/labels_{name}", labels, VOXEL, roi.offset)
    return rois


def experiment(recipe: dict, iterations: int, interval: int, seed: int, test: Roi) -> dict:
    """A minimal config (datasets, datasplit, length) plus the recipe's run keys."""

    def dataset(raw: str, gt: str) -> dict:
        return {"container": "gala.zarr", "raw": raw, "gt": gt}

    run = {
        "datasplit": {"train": ["train"], "validate": ["val"]},
        "train_until": iterations,
        "validation_interval": interval,
        **recipe,
    }
    roi = "[" + ",".join(f"{b}:{e}" for b, e in zip(test.begin, test.end, strict=True)) + "]"
    return {
        "seed": seed,
        "datasets": {
            "train": dataset("train/raw", "train/labels"),
            "val": dataset("test/raw", "test/labels_val"),
            "test": dataset("test/raw", "test/labels_test"),
        },
        "runs": {"r": run},
        "apply": [{"run": "r", "input": "test", "roi": roi, "num_workers": 2}],
    }


def training_time(workdir: Path, until: int) -> tuple[float, int]:
    """Seconds the training jobs up to iteration ``until`` spent iterating (a kept work
    directory may hold more), and the iterations they made."""
    seconds, iterations = 0.0, 0
    for stats in (workdir / "results/r/training_stats").glob("*.json"):
        if int(stats.stem) > until:
            continue
        its = arrays.read_json(stats)["iterations"]
        seconds += sum(i["seconds"] for i in its)
        iterations += len(its)
    return seconds, iterations


def sweep(
    affs: str,
    gt: str,
    work: Path,
    parameter_sets: list[dict],
    fragments: FragmentOptions = DEFAULT_FRAGMENTS,
) -> list[dict]:
    """Fragments and graph of ``affs`` (in ``work``; a run's own fragment options where
    they differ, e.g. long-range edges for its biases), every parameter set scored on
    ``gt``."""
    frags, graph = f"{work}.zarr/fragments", f"{work}.graph"
    fragment_prediction(affs, frags, graph, fragments, num_workers=1)
    stage = ScoreStage(gt=gt, parameter_sets=parameter_sets, criterion="voi")
    return score(frags, graph, f"{work}.zarr/segmentation", stage)["results"]


def best_of(results: list[dict], criterion: str = "voi") -> dict:
    sign = 1 if CRITERIA[criterion] == "lower" else -1
    return min(results, key=lambda r: sign * r["scores"][criterion])


def stable_of(results: list[dict]) -> dict:
    """The result ``selection: stable`` chooses among one sweep's (by VOI)."""
    table = np.array([[r["scores"]["voi"] for r in results]])
    robust = stable_values(table, [r["parameters"] for r in results], "lower")[0]
    return {**results[int(np.argmin(robust))], "stable_value": float(robust.min())}


def scores_at(results: list[dict], parameters: dict) -> dict:
    return next(r["scores"] for r in results if r["parameters"] == parameters)


def learned(workdir: Path, cfg: dict, run: RunConfig) -> dict[str, Any]:
    """Run the workflow (``cfg``, whose run ``r`` is ``run``); the validation choice, its
    test-half scores and the oracle."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile")]
    t0 = time.perf_counter()
    result = subprocess.run(
        [
            *snakemake,
            "--directory",
            str(workdir),
            "--cores",
            "2",
            "--configfile",
            str(workdir / "config.yaml"),
            "--rerun-triggers",  # a kept work directory is reused as it is, but a
            "mtime",  # shorter or longer run selects again among its own checkpoints
            "input",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the workflow failed:\n{result.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    choice = arrays.read_json(workdir / layout.path(layout.BEST, run="r"))["voi"]
    val = scores_doc(workdir, choice["iteration"])
    val_scores = scores_at(val["datasets"]["val"]["results"], choice["parameters"])
    seg = arrays.open_array(
        str(workdir / layout.path(layout.apply(layout.SEGMENTATION), run="r", target="test"))
    )
    gt_test = f"{workdir}/gala.zarr/test/labels_test"
    gt = arrays.open_array(gt_test)
    test_scores = evaluate(arrays.read(seg, gt.roi), arrays.read(gt, gt.roi))
    affs = str(workdir / layout.path(layout.apply(layout.PREDICTION), run="r", target="test"))
    fragments = run.post_processor.fragments
    results = sweep(affs, gt_test, workdir / "oracle", val_params(val), fragments)
    seconds, iterations = training_time(workdir, run.train_until)
    stable = stable_of(val["datasets"]["val"]["results"])
    return {
        "curve": validation_curve(workdir, run),
        "stable": {**stable, "test": scores_at(results, stable["parameters"])},
        "iteration": choice["iteration"],
        "parameters": choice["parameters"],
        "validation": val_scores,
        "test": test_scores,
        "oracle": best_of(results),
        "training_minutes": seconds / 60,
        "iterations_per_second": iterations / seconds if seconds else 0.0,
        "workflow_minutes": wall / 60,
    }


def scores_doc(workdir: Path, iteration: int) -> dict:
    """The validation scores the workflow wrote for checkpoint ``iteration``."""
    return arrays.read_json(workdir / layout.path(layout.SCORES, run="r", it=iteration))


def validation_curve(workdir: Path, run: RunConfig) -> dict[int, float]:
    """The validation half's best VOI at each checkpoint of the run, by iteration."""
    return {
        it: best_of(scores_doc(workdir, it)["datasets"]["val"]["results"])["scores"]["voi"]
        for it in run.iterations()
    }


def val_params(scores_doc: dict) -> list[dict]:
    return [r["parameters"] for r in scores_doc["datasets"]["val"]["results"]]


def baseline(workdir: Path, rois: dict[str, Roi], sigmas: tuple[float, ...]) -> dict[str, Any]:
    """Smoothed raw as affinities: (sigma, parameters) chosen on the validation half,
    scored on the test half, with the test half's oracle."""
    raw = np.load(GALA / "test.npz")["raw"].astype(np.float32) / 255
    parameter_sets = WatershedConfig().parameter_sets()
    chosen, best_stable, runs = None, None, {}
    for sigma in sigmas:
        smooth = ndimage.gaussian_filter(raw, sigma)
        smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
        for half, roi in rois.items():
            base = workdir / f"baseline_{sigma}_{half}"
            affs = f"{base}.zarr/prediction"
            data = np.stack([smooth[(roi / VOXEL).to_slices()]] * 3)
            arrays.write_numpy(affs, data, VOXEL, roi.offset)
            zarr.open(affs, mode="a").attrs["neighborhood"] = np.eye(3, dtype=int).tolist()
            gt = f"{workdir}/gala.zarr/test/labels_{half}"
            runs[sigma, half] = sweep(affs, gt, base, parameter_sets)
        stable = stable_of(runs[sigma, "val"])
        if best_stable is None or stable["stable_value"] < best_stable["stable_value"]:
            best_stable = {**stable, "sigma": sigma}
        val_best = best_of(runs[sigma, "val"])
        if chosen is None or val_best["scores"]["voi"] < chosen["validation"]["voi"]:
            chosen = {
                "sigma": sigma,
                "parameters": val_best["parameters"],
                "validation": val_best["scores"],
            }
    test = runs[chosen["sigma"], "test"]
    oracle = min(
        (best_of(runs[s, "test"]) | {"sigma": s} for s in sigmas), key=lambda r: r["scores"]["voi"]
    )
    stable_test = scores_at(runs[best_stable["sigma"], "test"], best_stable["parameters"])
    return {
        **chosen,
        "test": scores_at(test, chosen["parameters"]),
        "oracle": oracle,
        "stable": {**best_stable, "test": stable_test},
    }


def with_augmentation(workdir: Path, trained: dict, mode: str, run: RunConfig) -> dict[str, Any]:
    """The selected checkpoint's prediction averaged over ``mode``'s views, on both
    halves; the run's own post-processing (its fragments, the parameter sets its
    validation swept, mutex biases included) chosen on the validation half, scored on
    the test half."""
    iteration = trained["iteration"]
    checkpoint = workdir / layout.path(layout.CHECKPOINT, run="r", it=iteration)
    swept = val_params(scores_doc(workdir, iteration))
    fragments = run.post_processor.fragments
    results = {}
    for half in ("val", "test"):
        gt = f"{workdir}/gala.zarr/test/labels_{half}"
        work = workdir / f"tta_{mode}_{half}"
        stage = PredictStage(
            raw=f"{workdir}/gala.zarr/test/raw", roi_of=gt, test_time_augmentation=mode
        )
        t0 = time.perf_counter()
        predict(checkpoint, f"{work}.zarr/prediction", stage, num_workers=1)
        seconds = time.perf_counter() - t0
        results[half] = sweep(f"{work}.zarr/prediction", gt, work, swept, fragments)
    chosen = best_of(results["val"])
    return {
        "parameters": chosen["parameters"],
        "validation": chosen["scores"],
        "test": scores_at(results["test"], chosen["parameters"]),
        "oracle": best_of(results["test"]),
        "predict_seconds_test_half": seconds,
    }


def line(name: str, scores: dict) -> str:
    values = "  ".join(f"{c} {scores[c]:6.3f}" for c in SHOWN)
    return f"{name:<44} {values}  segments {scores.get('n_segments', '-')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--interval", type=int, default=250)
    parser.add_argument("--recipe", default="{}", help="run keys (JSON) over the minimal config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="keep the work directory here (reused as it is)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--tta",
        choices=("mirror", "mirror_transpose"),
        help="also: the selected checkpoint with TTA",
    )
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="defaults_learn_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rois = import_gala(workdir)
    recipe = json.loads(args.recipe)
    cfg = experiment(recipe, args.iterations, args.interval, args.seed, rois["test"])
    run = RunConfig.model_validate(cfg["runs"]["r"])
    trained = learned(workdir, cfg, run)
    print(f"recipe {json.dumps(recipe)}, seed {args.seed}, {args.iterations} iterations:")
    print(
        f"  training {trained['training_minutes']:.1f} min "
        f"({trained['iterations_per_second']:.2f} it/s), "
        f"workflow {trained['workflow_minutes']:.1f} min"
    )
    curve = ", ".join(f"{it}: {voi:.3f}" for it, voi in trained["curve"].items())
    print(f"  validation half's best VOI by checkpoint: {curve}")
    chosen = f"it {trained['iteration']}, {trained['parameters']}"
    print(line(f"learned, validation half ({chosen})", trained["validation"]))
    print(line("learned, test half", trained["test"]))
    stable = trained["stable"]
    print(line(f"learned, test half, stable choice ({stable['parameters']})", stable["test"]))
    print(
        line(
            f"learned, test oracle ({trained['oracle']['parameters']})", trained["oracle"]["scores"]
        )
    )
    result = {
        "recipe": recipe,
        "seed": args.seed,
        "iterations": args.iterations,
        "learned": trained,
    }
    if args.tta:
        augmented = with_augmentation(workdir, trained, args.tta, run)
        name = f"learned + {args.tta}, validation ({augmented['parameters']})"
        print(line(name, augmented["validation"]))
        print(line(f"learned + {args.tta}, test half", augmented["test"]))
        print(line(f"learned + {args.tta}, test oracle", augmented["oracle"]["scores"]))
        result["tta"] = augmented
    if not args.no_baseline:
        classic = baseline(workdir, rois, (0.5, 1.0, 2.0))
        print(line(f"raw watershed, validation (sigma {classic['sigma']})", classic["validation"]))
        print(line("raw watershed, test half", classic["test"]))
        stable = classic["stable"]
        name = f"raw watershed, test half, stable (sigma {stable['sigma']}, {stable['parameters']})"
        print(line(name, stable["test"]))
        print(
            line(
                f"raw watershed, test oracle (sigma {classic['oracle']['sigma']})",
                classic["oracle"]["scores"],
            )
        )
        result["baseline"] = classic
    gt = np.load(GALA / "test.npz")["labels"][SPLIT_Z:]
    print(line("one segment, test half", evaluate(np.ones_like(gt), gt)))
    print(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
