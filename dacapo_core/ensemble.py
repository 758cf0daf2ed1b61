"""Ensembles: the mean of several runs' predictions of one volume, block by block.

Members predict the same ROI on the same voxel grid (a validation crop, or an apply
target), each with its own selected checkpoint. Their mean is taken in float32 of
the decoded predictions and stored in the runs' prediction dtype, so that the
ensemble's prediction is post-processed, validated and selected as a run's is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daisy
import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from . import arrays, blockwise, codec

#: attributes of a prediction that its members must share and the mean keeps: what
#: was predicted (raw, ROI) and what its channels are (``predict.task_attrs``)
SHARED_ATTRS = ("raw", "roi", "neighborhood", "task", "channels", "distance_scale")


@dataclass
class AverageWorker(blockwise.BlockWorker):
    """Reads a block of every member, writes their mean."""

    members: list[str]
    out: str

    def setup(self) -> None:
        self.inputs = [(arrays.open_array(p), codec.scale_of(p)) for p in self.members]
        self.out_array = arrays.open_array(self.out, mode="r+")

    def process(self, block: daisy.Block) -> None:
        roi = block.write_roi
        total = sum(codec.decode(arrays.read(array, roi), scale) for array, scale in self.inputs)
        self.out_array[roi] = codec.encode(total / len(self.inputs), self.out_array.dtype)


def mean_attrs(members: Sequence[str], dtype: str) -> dict[str, Any]:
    """The attributes of the members' mean: what they share (``DataError`` naming the
    member that differs), the scale of ``dtype`` and each member's prediction (with its
    fingerprint, so a member predicted again restarts a killed average) and checkpoint."""
    member_attrs = [dict(zarr.open(m, mode="r").attrs) for m in members]
    first, geometry = member_attrs[0], arrays.open_array(members[0])
    for member, attrs in zip(members[1:], member_attrs[1:], strict=True):
        array = arrays.open_array(member)
        differs = [k for k in SHARED_ATTRS if attrs.get(k) != first.get(k)]
        if array.roi != geometry.roi or array.voxel_size != geometry.voxel_size:
            differs.insert(0, "ROI or voxel size")
        if array.shape[0] != geometry.shape[0]:
            differs.insert(0, "channels")
        if differs:
            raise arrays.DataError(
                f"{member}: differs from {members[0]} in {differs[0]}; an ensemble averages "
                "predictions of the same volume and task"
            )
    shared = {k: first[k] for k in SHARED_ATTRS if k in first}
    described = [
        {"prediction": m, "version": arrays.fingerprint(m), "checkpoint": a.get("checkpoint")}
        for m, a in zip(members, member_attrs, strict=True)
    ]
    return {**shared, "scale": codec.SCALES[dtype], "members": described}


def average(
    members: Sequence[str],
    out_path: str,
    dtype: str = "float32",
    num_workers: int = 2,
    log_dir: str | Path | None = None,
) -> Array:
    """The mean of the predictions ``members`` into ``out_path``, stored as ``dtype``
    (float32, or uint8 in steps of 1/255), in the first member's chunks (the blocks of
    the fragments that follow). Staged and renamed when every block is done; rerun
    after a kill, only the unfinished blocks are averaged."""
    members = [str(m) for m in members]
    attrs = mean_attrs(members, dtype)
    first = arrays.open_array(members[0])
    vs = first.voxel_size
    chunks = Coordinate(first.data.chunksize[1:])
    staged = arrays.staging(out_path)
    arrays.prepare_array(
        staged,
        first.roi,
        vs,
        np.dtype(dtype),
        num_channels=first.shape[0],
        chunk_shape=chunks,
        attrs=attrs,
        reuse=True,
    )
    block = Roi((0,) * vs.dims, chunks * vs)
    worker = AverageWorker(members, staged)
    blockwise.run("average", staged, first.roi, block, block, worker, num_workers, log_dir)
    blockwise.publish(out_path)
    return arrays.open_array(out_path)
