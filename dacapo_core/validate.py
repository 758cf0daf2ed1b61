"""Scoring one validation prediction: every post-processing parameter set on its
region graph.

Fragments and the region graph are computed once per prediction (rule
fragments); here there is one merge history per (merge function, minimal
fragment size), and each threshold is a lookup table on a history; each mutex
watershed bias is a lookup table of its own. Each table is scored against the GT
from the fragments' overlap with it (counted once): a parameter set costs its
lookup table, not a pass over the voxels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import arrays
from .config import CRITERIA
from .evaluate import Overlap
from .sections import per_section
from .segment import Graph, MergeHistory, fragment_dims, load_graph, merge_history
from .segment.mutex import mutex_lookup
from .segment.relabel import relabel
from .stages import ScoreStage

#: a merge history per (merge function, minimal fragment size)
Histories = dict[tuple[str, int], MergeHistory]


def lookup(
    graph: Graph, histories: Histories, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(fragment ids, segment ids) of one parameter set: mutex watershed's (``bias``),
    or a threshold of its merge history."""
    if "bias" in params:
        return mutex_lookup(graph, params["bias"])
    history = histories[params["merge_function"], params["min_size"]]
    return history.lookup(params["threshold"])


def score(
    frags_path: str, graph_dir: str | Path, segmentation_path: str, stage: ScoreStage
) -> dict[str, Any]:
    """Score every parameter set; keep the segmentation that is best by the criterion."""
    t0 = time.perf_counter()
    graph = load_graph(graph_dir)
    parameter_sets = stage.parameter_sets
    keys = {(p["merge_function"], p["min_size"]) for p in parameter_sets if "bias" not in p}
    histories = {key: merge_history(graph, *key) for key in keys}
    frags_array = arrays.open_array(frags_path)
    frags = arrays.read(frags_array, frags_array.roi)
    gt = arrays.read(arrays.open_array(stage.gt), frags_array.roi)
    if fragment_dims(frags_path) < frags_array.voxel_size.dims:
        gt = per_section(gt)  # segments are per section: so are the objects scored
    overlap = Overlap.of(frags, gt)
    results, best, best_params = [], None, None
    sign = 1 if CRITERIA[stage.criterion] == "lower" else -1
    for params in tqdm(parameter_sets, desc="sweep", unit="set", mininterval=5):
        scores = overlap.relabelled(*lookup(graph, histories, params)).scores()
        results.append({"parameters": params, "scores": scores})
        if best is None or sign * scores[stage.criterion] < sign * best:
            best, best_params = scores[stage.criterion], params
    best_seg = relabel(frags, *lookup(graph, histories, best_params))
    arrays.write_numpy(segmentation_path, best_seg, frags_array.voxel_size, frags_array.roi.offset)
    return {
        "results": results,
        "seconds": {"sweep": time.perf_counter() - t0},
        "fragments": int(len(graph.nodes)),
        "edges": int(len(graph.edges)),
    }
