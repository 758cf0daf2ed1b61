"""Mutex watershed (biases) against the agglomeration (thresholds) on one region graph.

    .venv/bin/python bench/mutex_sweep.py [--shape 64 96 96] [--noise 0.15 0.3 0.45]

Synthetic cells with membranes; affinities of the default neighbourhood (offsets 1
and 3) from the labels, smoothed, plus a smooth random field (errors that are
spatially correlated, as a network's are) scaled by ``noise``. Fragments and the
region graph with long-range edges are made blockwise once per noise level, then
``validate.score`` (rule validate_score) scores the default grid and five biases.
Prints, per noise level, the best VOI of each kind (its parameters) and the time of
the graph and of the sweep. Synthetic only: real EM decides whether mutex pays.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # daisy's progress bars, before it is imported

import numpy as np
import zarr
from funlib.geometry import Coordinate
from gunpowder.nodes.add_affinities import seg_to_affgraph
from scipy import ndimage

from dacapo_core import arrays
from dacapo_core.config import AffinitiesTask, WatershedConfig
from dacapo_core.demo import cells, membranes
from dacapo_core.segment.blockwise import fragments_blockwise
from dacapo_core.stages import ScoreStage
from dacapo_core.validate import score

NEIGHBORHOOD = AffinitiesTask().neighborhood


def affinities(labels: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Smoothed affinities of ``labels`` plus correlated noise, clipped to [0, 1]."""
    affs = seg_to_affgraph(labels.astype(np.int32), -np.array(NEIGHBORHOOD)).astype(np.float32)
    affs = np.stack([ndimage.gaussian_filter(a, 1.0) for a in affs])
    field = ndimage.gaussian_filter(rng.normal(size=affs.shape), (0, 2, 2, 2))
    return np.clip(affs + noise * field / field.std(), 0, 1).astype(np.float32)


def best(results: list[dict], mutex: bool) -> tuple[float, dict]:
    """The lowest VOI among the parameter sets of one kind, and its parameters."""
    kind = [r for r in results if ("bias" in r["parameters"]) == mutex]
    top = min(kind, key=lambda r: r["scores"]["voi"])
    return top["scores"]["voi"], top["parameters"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 96, 96])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.15, 0.3, 0.45])
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    labels = cells(tuple(args.shape), diameter=14, rng=rng)
    labels[membranes(labels)] = 0
    post = WatershedConfig(biases=[0.3, 0.4, 0.5, 0.6, 0.75])
    with tempfile.TemporaryDirectory() as tmp:
        arrays.write_numpy(f"{tmp}/gt.zarr/labels", labels.astype(np.uint64), Coordinate(4, 4, 4))
        for i, noise in enumerate(args.noise):
            affs = f"{tmp}/v{i}.zarr/affs"
            arrays.write_numpy(affs, affinities(labels, noise, rng), Coordinate(4, 4, 4))
            zarr.open(affs, mode="r+").attrs["neighborhood"] = NEIGHBORHOOD
            frags, graph = f"{tmp}/v{i}.zarr/frags", f"{tmp}/v{i}.graph"
            t0 = time.perf_counter()
            fragments_blockwise(affs, frags, graph, None, (32, 48, 48), 1, options=post.fragments)
            t1 = time.perf_counter()
            stage = ScoreStage(
                gt=f"{tmp}/gt.zarr/labels", parameter_sets=post.parameter_sets(), criterion="voi"
            )
            result = score(frags, graph, f"{tmp}/v{i}.zarr/best", stage)
            t2 = time.perf_counter()
            voi_a, p_a = best(result["results"], mutex=False)
            voi_m, p_m = best(result["results"], mutex=True)
            print(
                f"noise {noise}: agglomeration VOI {voi_a:.3f} {p_a}; mutex VOI {voi_m:.3f} "
                f"{p_m}; {result['fragments']} fragments, {result['edges']} edges; graph "
                f"{t1 - t0:.1f} s, sweep of {len(post.parameter_sets())} sets {t2 - t1:.1f} s"
            )


if __name__ == "__main__":
    main()
