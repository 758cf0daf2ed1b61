"""Validation of one checkpoint on one dataset: predict once, sweep post-processing.

The prediction uses the same blockwise code as apply. Fragments and the region
graph are computed once per prediction, one merge history per (merge function,
minimal fragment size); each threshold is then a lookup table on a history,
scored against the GT.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from funlib.geometry import Coordinate
from tqdm import tqdm

from . import arrays, blockwise, postprocess
from .config import CRITERIA, WatershedConfig
from .evaluate import evaluate
from .sections import per_section


def sweep(
    prediction: str,
    gt_path: str,
    frags_path: str,
    graph_dir: str | Path,
    segmentation_path: str,
    post_processor: WatershedConfig,
    criterion: str,
    block_shape: Coordinate,
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score every parameter set; keep the segmentation that is best by ``criterion``."""
    t0 = time.perf_counter()
    graph = postprocess.fragments_blockwise(
        prediction,
        arrays.staging(frags_path),
        arrays.staging(graph_dir),
        None,
        block_shape,
        num_workers,
        log_dir,
        post_processor.fragments,
    )
    blockwise.publish(frags_path, graph_dir)
    parameter_sets = post_processor.parameter_sets()
    histories = {
        key: postprocess.merge_history(graph, *key)
        for key in {(p["merge_function"], p["min_size"]) for p in parameter_sets}
    }
    frags_array = arrays.open_array(frags_path)
    frags = frags_array.to_ndarray(frags_array.roi)
    gt = arrays.open_array(gt_path).to_ndarray(frags_array.roi)
    if arrays.affinity_dims(prediction) < frags_array.voxel_size.dims:
        gt = per_section(gt)  # segments are per section: so are the objects scored
    t1 = time.perf_counter()
    results, best, best_seg = [], None, None
    sign = 1 if CRITERIA[criterion] == "lower" else -1
    for params in tqdm(parameter_sets, desc="sweep", unit="set", mininterval=5):
        history = histories[params["merge_function"], params["min_size"]]
        seg = postprocess.relabel(frags, *history.lookup(params["threshold"]))
        scores = evaluate(seg, gt)
        results.append({"parameters": params, "scores": scores})
        if best is None or sign * scores[criterion] < sign * best:
            best, best_seg = scores[criterion], seg
    arrays.write_numpy(
        segmentation_path,
        best_seg,
        frags_array.voxel_size,
        frags_array.roi.offset,
    )
    return {
        "results": results,
        "seconds": {"fragments_and_graph": t1 - t0, "sweep": time.perf_counter() - t1},
        "fragments": int(len(graph.nodes)),
        "edges": int(len(graph.edges)),
    }
