"""Checks of the data a config points at, before any job is planned.

Each failure is one ConfigError naming the key or the file, so a bad config
costs nothing: no job starts and nothing is written.
"""

from __future__ import annotations

import numpy as np
from funlib.persistence import Array

from . import arrays
from .config import ApplyConfig, ConfigError, ExperimentConfig
from .geometry import ShapeError, eval_input_shape, lift, output_shape

#: raw volumes up to this many voxels are scanned whole for NaNs
NAN_SCAN_LIMIT = 2**28


def _open(cfg: ExperimentConfig, name: str, role: str) -> Array:
    dataset = cfg.datasets[name]
    path = getattr(dataset, role)
    try:
        return arrays.open_array(arrays.array_path(dataset.container, path))
    except arrays.DataError as e:
        raise ConfigError(f"datasets.{name}.{role}: {e}") from None


def _check_dataset(cfg: ExperimentConfig, name: str) -> None:
    dataset = cfg.datasets[name]
    raw = _open(cfg, name, "raw")
    for role in ("gt", "mask"):
        if getattr(dataset, role) is None:
            continue
        other = _open(cfg, name, role)
        if other.voxel_size != raw.voxel_size:
            raise ConfigError(
                f"datasets.{name}.{role}: voxel size {tuple(other.voxel_size)} differs from "
                f"raw's {tuple(raw.voxel_size)}"
            )
    scan = np.issubdtype(raw.dtype, np.floating) and np.prod(raw.shape) <= NAN_SCAN_LIMIT
    if scan and np.isnan(raw[raw.roi]).any():
        raise ConfigError(f"datasets.{name}.raw: contains NaN values")


def _check_run(cfg: ExperimentConfig, name: str, demo: set[str]) -> None:
    run = cfg.runs[name]
    arch = run.architecture
    for key, shape in (
        ("input_shape", arch.input_shape),
        ("eval_shape_increase", eval_input_shape(arch)),
    ):
        try:
            output_shape(arch, shape)
        except ShapeError as e:
            raise ConfigError(f"runs.{name}.architecture.{key}: {e}") from None
    applied = [a.input for a in cfg.apply if a.run in _repetitions(cfg, name)]
    used = sorted({*run.datasplit.train, *run.datasplit.validate_, *applied} - demo)
    raws = {ds: _open(cfg, ds, "raw") for ds in used}  # sorted: the same error every time
    _check_dims(name, len(arch.input_shape), raws, [ds for ds in run.datasplit.train if ds in raws])
    for ds in run.datasplit.train:
        if ds in demo:
            continue
        raw = raws[ds]
        gt = _open(cfg, ds, "gt")
        needed = lift(output_shape(arch, arch.input_shape), raw.voxel_size.dims) * raw.voxel_size
        if any(g < n for g, n in zip(gt.roi.shape, needed, strict=True)):
            raise ConfigError(
                f"datasets.{ds}.gt: labelled ROI {tuple(gt.roi.shape)} is smaller than the "
                f"network output {tuple(needed)} of run '{name}'"
            )
        # raw may be thinner than the network's input (it is padded where it ends), but
        # every labelled voxel needs raw under it
        if not raw.roi.contains(gt.roi):
            raise ConfigError(
                f"datasets.{ds}.gt: ROI {arrays.format_roi(gt.roi)} extends beyond raw's "
                f"{arrays.format_roi(raw.roi)}"
            )


def _check_dims(run: str, network: int, raws: dict[str, Array], train: list[str]) -> None:
    """A network runs on data of its dimensions, a 2D one also on 3D stacks (section
    mode); one run's training volumes share their dimensions (one batch pipeline)."""
    for ds, raw in raws.items():
        if raw.voxel_size.dims < network:
            raise ConfigError(
                f"datasets.{ds}.raw: {raw.voxel_size.dims}D, but run '{run}' has a "
                f"{network}D network"
            )
    for ds in train[1:]:
        first, this = raws[train[0]].voxel_size.dims, raws[ds].voxel_size.dims
        if this != first:
            raise ConfigError(
                f"datasets.{ds}.raw: {this}D, but run '{run}' also trains on {first}D "
                f"'{train[0]}' (training volumes of a run share their dimensions)"
            )


def _repetitions(cfg: ExperimentConfig, name: str) -> list[str]:
    """Names of a run's repetitions, as apply entries may name them."""
    return [r for r, resolved in cfg.resolved_runs().items() if resolved.base == name]


def check(cfg: ExperimentConfig) -> None:
    """Open every dataset the config uses; check voxel sizes, shapes, ROIs and NaNs."""
    demo = {
        name for name, d in cfg.datasets.items() if cfg.demo and d.container == cfg.demo.container
    }
    for name in cfg.datasets:
        if name not in demo:
            _check_dataset(cfg, name)
    for name in cfg.runs:
        _check_run(cfg, name, demo)
    for i, entry in enumerate(cfg.apply):
        _check_apply(cfg, i, entry, demo)


def _check_apply(cfg: ExperimentConfig, i: int, entry: ApplyConfig, demo: set[str]) -> None:
    """An apply target's ROI and block shape fit its input."""
    roi = None
    if entry.roi is not None:
        try:
            roi = arrays.parse_roi(entry.roi)
        except arrays.DataError as e:
            raise ConfigError(f"apply[{i}].roi: {e}") from None
    raw = None if entry.input in demo else _open(cfg, entry.input, "raw")
    dims = len(cfg.demo.voxel_size) if raw is None else raw.voxel_size.dims
    given = {"block_shape": entry.block_shape, "roi": None if roi is None else roi.begin}
    for key, value in given.items():
        if value is not None and len(value) != dims:
            raise ConfigError(
                f"apply[{i}].{key}: needs {dims} entries ('{entry.input}' is {dims}D)"
            )
    if roi is not None and raw is not None and not raw.roi.contains(roi):
        raise ConfigError(
            f"apply[{i}].roi: {entry.roi} is outside {arrays.format_roi(raw.roi)} of "
            f"dataset '{entry.input}'"
        )
