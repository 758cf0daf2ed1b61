"""Scoring one validation prediction: every post-processing parameter set on its
region graph.

Fragments and the region graph are computed once per prediction (rule
fragments); here there is one merge history per (merge function, minimal
fragment size), and each threshold is a lookup table on a history, scored
against the GT from the fragments' overlap with it (counted once): a threshold
costs its lookup table, not a pass over the voxels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import arrays
from .config import CRITERIA
from .evaluate import Overlap
from .sections import per_section
from .segment import fragment_dims, load_graph, merge_history, relabel
from .stages import ScoreStage


def score(
    frags_path: str, graph_dir: str | Path, segmentation_path: str, stage: ScoreStage
) -> dict[str, Any]:
    """Score every parameter set; keep the segmentation that is best by the criterion."""
    t0 = time.perf_counter()
    graph = load_graph(graph_dir)
    parameter_sets = stage.parameter_sets
    histories = {
        key: merge_history(graph, *key)
        for key in {(p["merge_function"], p["min_size"]) for p in parameter_sets}
    }
    frags_array = arrays.open_array(frags_path)
    frags = arrays.read(frags_array, frags_array.roi)
    gt = arrays.read(arrays.open_array(stage.gt), frags_array.roi)
    if fragment_dims(frags_path) < frags_array.voxel_size.dims:
        gt = per_section(gt)  # segments are per section: so are the objects scored
    overlap = Overlap.of(frags, gt)
    results, best, best_params = [], None, None
    sign = 1 if CRITERIA[stage.criterion] == "lower" else -1
    for params in tqdm(parameter_sets, desc="sweep", unit="set", mininterval=5):
        history = histories[params["merge_function"], params["min_size"]]
        scores = overlap.relabelled(*history.lookup(params["threshold"])).scores()
        results.append({"parameters": params, "scores": scores})
        if best is None or sign * scores[stage.criterion] < sign * best:
            best, best_params = scores[stage.criterion], params
    history = histories[best_params["merge_function"], best_params["min_size"]]
    best_seg = relabel(frags, *history.lookup(best_params["threshold"]))
    arrays.write_numpy(segmentation_path, best_seg, frags_array.voxel_size, frags_array.roi.offset)
    return {
        "results": results,
        "seconds": {"sweep": time.perf_counter() - t0},
        "fragments": int(len(graph.nodes)),
        "edges": int(len(graph.edges)),
    }
