"""Superblocks: a volume cut into equal parts of whole blocks, one job each.

A block is the unit of daisy's work inside a job (and a chunk of the arrays);
a superblock is the unit of a cluster job: its prediction, its fragments and
edges, its leaf of the agglomeration octree, its relabelling. The partition
is static (from the volume's ROI and the two shapes), so Snakemake knows every
job when it builds the DAG.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funlib.geometry import Coordinate, Roi

from . import arrays
from .errors import UserError

if TYPE_CHECKING:
    from .config import ApplyConfig

Index = tuple[int, ...]


class SuperblockError(UserError):
    """A superblock shape that does not cut the volume into whole blocks."""


@dataclass(frozen=True)
class Superblocks:
    """The superblocks of ``roi`` (world units), ``shape`` each (world units; the
    last ones along an axis are cut by the ROI's end)."""

    roi: Roi
    shape: Coordinate

    @classmethod
    def plan(
        cls,
        roi: Roi,
        voxel_size: Coordinate,
        block_shape: Sequence[int],
        superblock_shape: Sequence[int] | None,
    ) -> Superblocks:
        """Superblocks of ``superblock_shape`` voxels (None: the whole ROI is one), a
        whole number of blocks of ``block_shape`` voxels each."""
        if superblock_shape is None:
            return cls(roi, roi.shape)
        if len(superblock_shape) != voxel_size.dims or any(
            s <= 0 or s % b for s, b in zip(superblock_shape, block_shape, strict=True)
        ):
            raise SuperblockError(
                f"superblock_shape {list(superblock_shape)} must be a multiple of the "
                f"block shape {list(block_shape)} along each axis (voxels)"
            )
        return cls(roi, Coordinate(superblock_shape) * voxel_size)

    @classmethod
    def of_target(cls, entry: ApplyConfig, raw_path: str) -> Superblocks:
        """An apply target's superblocks, from its raw array's ROI and voxel size (read
        when the workflow's DAG is built) or the entry's ROI in it."""
        raw = arrays.open_array(raw_path)
        vs = raw.voxel_size
        roi = raw.roi if entry.roi is None else arrays.parse_roi(entry.roi)
        roi = roi.snap_to_grid(vs, mode="grow")
        return cls.plan(roi, vs, entry.blocks(vs.dims), entry.superblock_shape)

    @property
    def grid(self) -> Index:
        """Superblocks per axis."""
        return tuple(-(-r // s) for r, s in zip(self.roi.shape, self.shape, strict=True))

    def __len__(self) -> int:
        return math.prod(self.grid)

    def indices(self) -> list[Index]:
        return list(itertools.product(*(range(g) for g in self.grid)))

    def roi_of(self, index: Index) -> Roi:
        begin = self.roi.begin + Coordinate(index) * self.shape
        return Roi(begin, self.shape).intersect(self.roi)

    def index_of(self, point: Coordinate) -> Index:
        """The superblock holding world position ``point``."""
        return tuple((Coordinate(point) - self.roi.begin) / self.shape)

    def within(self, part: Roi) -> list[Index]:
        """The superblocks that lie in ``part`` (a union of whole superblocks)."""
        return [i for i in self.indices() if part.contains(self.roi_of(i))]

    def inside(self, index: Index) -> bool:
        return all(0 <= i < g for i, g in zip(index, self.grid, strict=True))

    def around(self, index: Index, behind: bool = False) -> list[Index]:
        """The superblocks touching ``index`` (faces, edges, corners); with ``behind``
        only those before it along every axis they differ in (whose voxels its
        blocks read as the negative-side context of edges)."""
        steps = (-1, 0) if behind else (-1, 0, 1)
        near = (
            tuple(i + o for i, o in zip(index, step, strict=True))
            for step in itertools.product(steps, repeat=len(index))
            if any(step)
        )
        return [n for n in near if self.inside(n)]

    @staticmethod
    def name(index: Index) -> str:
        return "_".join(map(str, index))

    @staticmethod
    def parse(name: str) -> Index:
        return tuple(int(i) for i in name.split("_"))


def write_done(path: str | Path, step: str, **info: Any) -> None:
    """A superblock job's done-file: a small JSON naming what finished, written whole
    (a killed job leaves none, so Snakemake reruns it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"step": step, **info}) + "\n")
    os.replace(tmp, path)
