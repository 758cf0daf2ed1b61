"""Checks of the data a config points at, before any job is planned.

Each failure is one ConfigError naming the key or the file, so a bad config
costs nothing: no job starts and nothing is written.

Metadata and ROI checks cost nothing and always run. Checks that read voxels
read a bounded sample, so a check of a terabyte takes as long as one of a
gigabyte: at most ``SCAN_CHUNKS`` chunks of a GT, and at most ``SCAN_BYTES`` of
them, spread over the array. GT labels must be whole numbers in every chunk
read. A training or validation crop is refused as unlabelled only when it was
read whole (it fits the sample) and has no nonzero label inside its mask: a
sparsely labelled large crop whose sample misses its labels passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi

from . import arrays, pretrained
from .config import ApplyConfig, ClassTask, ConfigError, ExperimentConfig
from .geometry import INPUT_CHANNELS, ShapeError, eval_input_shape, lift, output_shape

if TYPE_CHECKING:
    from funlib.persistence import Array

#: raw volumes up to this many voxels are scanned whole for NaNs
NAN_SCAN_LIMIT = 2**28
#: at most this many chunks of a GT are read (labels are whole numbers, some are nonzero)
SCAN_CHUNKS = 64
#: ... and at most this many bytes of them (at least one chunk)
SCAN_BYTES = 2**28


def _path(cfg: ExperimentConfig, name: str, role: str) -> str:
    dataset = cfg.datasets[name]
    return arrays.array_path(dataset.container, getattr(dataset, role))


def _where(cfg: ExperimentConfig, name: str, role: str) -> str:
    """The key and the array, as every data error starts."""
    return f"{cfg.key(name, role)} ({_path(cfg, name, role)})"


def _open(cfg: ExperimentConfig, name: str, role: str) -> Array:
    """Open an array whose metadata says where its voxels lie: funlib would assume a
    voxel size of 1 where the attribute is missing, and silently train on nonsense."""
    path = _path(cfg, name, role)
    try:
        array = arrays.open_array(path)
    except arrays.DataError as e:
        raise ConfigError(f"{cfg.key(name, role)}: {e}") from None
    if "voxel_size" not in zarr.open(path, mode="r").attrs:
        raise ConfigError(
            f"{_where(cfg, name, role)}: no voxel_size attribute; set it (attrs['voxel_size'] "
            "= [z, y, x] in world units) or import with `dacapo-flow import --voxel-size`"
        )
    if array.offset % array.voxel_size != array.voxel_size * 0:
        raise ConfigError(
            f"{_where(cfg, name, role)}: offset {tuple(array.offset)} is not a multiple of "
            f"the voxel size {tuple(array.voxel_size)}"
        )
    return array


def _check_dataset(cfg: ExperimentConfig, name: str, labelled: bool) -> None:
    """One dataset's arrays; ``labelled``: it trains or validates a run, so its crop
    needs some labels."""
    dataset = cfg.datasets[name]
    raw = _open(cfg, name, "raw")
    opened = {}
    for role in ("gt", "mask"):
        if getattr(dataset, role) is None:
            continue
        opened[role] = other = _open(cfg, name, role)
        if other.voxel_size != raw.voxel_size:
            raise ConfigError(
                f"{cfg.key(name, role)}: voxel size {tuple(other.voxel_size)} differs from "
                f"raw's {tuple(raw.voxel_size)}"
            )
    scan = np.issubdtype(raw.dtype, np.floating) and np.prod(raw.shape) <= NAN_SCAN_LIMIT
    if scan and np.isnan(raw[raw.roi]).any():
        raise ConfigError(f"{cfg.key(name, 'raw')}: contains NaN values")
    if "gt" not in opened:
        return
    gt, mask = opened["gt"], opened.get("mask")
    if mask is not None and not mask.roi.contains(gt.roi):
        raise ConfigError(
            f"{_where(cfg, name, 'mask')}: ROI {arrays.format_roi(mask.roi)} does not contain "
            f"gt's {arrays.format_roi(gt.roi)}"
        )
    _check_labels(cfg, name, gt, mask, labelled)


def _check_labels(
    cfg: ExperimentConfig, name: str, gt: Array, mask: Array | None, labelled: bool
) -> None:
    """Instance labels are whole numbers, and (if ``labelled``) some voxel inside the
    mask has one; reads a bounded sample of chunks (see the module's docstring)."""
    if not np.issubdtype(gt.dtype, np.integer) and not np.issubdtype(gt.dtype, np.floating):
        raise ConfigError(f"{_where(cfg, name, 'gt')}: labels of type {gt.dtype} are not integers")
    whole = np.issubdtype(gt.dtype, np.integer)
    found = not labelled
    rois, complete = sample_chunks(gt)
    for roi in rois:
        labels = arrays.read(gt, roi)
        if not whole and not np.array_equal(labels, np.round(labels)):
            raise ConfigError(
                f"{_where(cfg, name, 'gt')}: instance labels must be integers, found "
                f"{_fraction(labels)} ({gt.dtype})"
            )
        if not found:
            inside = labels != 0 if mask is None else (labels != 0) & (arrays.read(mask, roi) != 0)
            found = bool(inside.any())
        if found and whole:
            return
    if not found and complete:
        where = "" if mask is None else " inside its mask"
        raise ConfigError(f"{_where(cfg, name, 'gt')}: nothing is labelled{where} (all 0)")


def _fraction(labels: np.ndarray) -> float:
    """One label that is not a whole number (NaN included)."""
    return labels[labels != np.round(labels)].flat[0].item()


def sample_chunks(array: Array) -> tuple[list[Roi], bool]:
    """ROIs of at most ``SCAN_CHUNKS`` chunks (and ``SCAN_BYTES``) of ``array``, spread
    evenly over it, and whether they are all of its chunks."""
    chunk = Coordinate(array.data.chunksize[-array.voxel_size.dims :])
    grid = [-(-s // c) for s, c in zip(array.roi.shape / array.voxel_size, chunk, strict=True)]
    total = int(np.prod(grid))
    chunk_bytes = int(np.prod(array.data.chunksize)) * array.dtype.itemsize
    cap = max(1, min(SCAN_CHUNKS, SCAN_BYTES // chunk_bytes))
    picked = np.unique(np.linspace(0, total - 1, min(cap, total)).round().astype(int))
    size = chunk * array.voxel_size
    rois = [
        Roi(array.roi.offset + Coordinate(index) * size, size).intersect(array.roi)
        for index in np.array(np.unravel_index(picked, grid)).T
    ]
    return rois, len(rois) == total


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
    applied = [a.input for a in cfg.apply if set(cfg.members(a)) & set(cfg.repetitions(name))]
    used = sorted({*run.datasplit.train, *run.datasplit.validate_, *applied} - demo)
    raws = {ds: _open(cfg, ds, "raw") for ds in used}  # sorted: the same error every time
    _check_channels(cfg, name, raws)
    _check_dims(
        cfg, name, len(arch.input_shape), raws, [ds for ds in run.datasplit.train if ds in raws]
    )
    for ds in run.datasplit.train:
        if ds in demo:
            continue
        raw = raws[ds]
        gt = _open(cfg, ds, "gt")
        needed = lift(output_shape(arch, arch.input_shape), raw.voxel_size.dims) * raw.voxel_size
        if any(g < n for g, n in zip(gt.roi.shape, needed, strict=True)):
            raise ConfigError(
                f"{cfg.key(ds, 'gt')}: labelled ROI {tuple(gt.roi.shape)} is smaller than the "
                f"network output {tuple(needed)} of run '{name}'"
            )
        # raw may be thinner than the network's input (it is padded where it ends), but
        # every labelled voxel needs raw under it
        if not raw.roi.contains(gt.roi):
            raise ConfigError(
                f"{cfg.key(ds, 'gt')}: ROI {arrays.format_roi(gt.roi)} extends beyond raw's "
                f"{arrays.format_roi(raw.roi)}"
            )
    if isinstance(run.task, ClassTask):
        for ds in [*run.datasplit.train, *run.datasplit.validate_]:
            if ds not in demo:
                _check_class_arrays(cfg, name, ds, run.task)


def _check_class_arrays(cfg: ExperimentConfig, run: str, ds: str, task: ClassTask) -> None:
    """A class defined by its own array has it in each crop that annotates the class,
    on the voxels of the crop's gt."""
    dataset = cfg.datasets[ds]
    gt = _open(cfg, ds, "gt")
    for name, definition in task.classes.items():
        annotated = dataset.classes is None or name in dataset.classes
        if definition.array is None or not annotated:
            continue
        path = arrays.array_path(dataset.container, definition.array)
        where = f"runs.{run}.task.classes.{name}.array"
        try:
            array = arrays.open_array(path)
        except arrays.DataError as e:
            raise ConfigError(f"{where}: dataset '{ds}' lacks it ({e})") from None
        if array.roi != gt.roi or array.voxel_size != gt.voxel_size:
            raise ConfigError(
                f"{where}: {path} covers {arrays.format_roi(array.roi)} at voxel size "
                f"{tuple(array.voxel_size)}, not gt's {arrays.format_roi(gt.roi)} at "
                f"{tuple(gt.voxel_size)} (dataset '{ds}')"
            )


def _check_channels(cfg: ExperimentConfig, run: str, raws: dict[str, Array]) -> None:
    """Raw has the channels the network takes (a leading axis beyond the spatial ones)."""
    for ds, raw in raws.items():
        channels = raw.shape[0] if len(raw.shape) > raw.voxel_size.dims else 1
        if channels != INPUT_CHANNELS:
            raise ConfigError(
                f"{_where(cfg, ds, 'raw')}: {channels} channels (shape {tuple(raw.shape)}), "
                f"but the network of run '{run}' takes {INPUT_CHANNELS}"
            )


def _check_dims(
    cfg: ExperimentConfig, run: str, network: int, raws: dict[str, Array], train: list[str]
) -> None:
    """A network runs on data of its dimensions, a 2D one also on 3D stacks (section
    mode); one run's training volumes share their dimensions (one batch pipeline)."""
    for ds, raw in raws.items():
        if raw.voxel_size.dims < network:
            raise ConfigError(
                f"{cfg.key(ds, 'raw')}: {raw.voxel_size.dims}D, but run '{run}' has a "
                f"{network}D network"
            )
    for ds in train[1:]:
        first, this = raws[train[0]].voxel_size.dims, raws[ds].voxel_size.dims
        if this != first:
            raise ConfigError(
                f"{cfg.key(ds, 'raw')}: {this}D, but run '{run}' also trains on {first}D "
                f"'{train[0]}' (training volumes of a run share their dimensions)"
            )


def check(cfg: ExperimentConfig) -> None:
    """Open every dataset the config uses; check metadata, voxel sizes, shapes, ROIs,
    channels, NaNs and labels."""
    demo = {name for name, d in cfg.datasets.items() if cfg.demo and cfg.demo.holds(d.container)}
    splits = [run.datasplit for run in cfg.runs.values()]
    labelled = {ds for split in splits for ds in (*split.train, *split.validate_)}
    for name in cfg.datasets:
        if name not in demo:
            _check_dataset(cfg, name, name in labelled)
    for name in cfg.runs:
        _check_run(cfg, name, demo)
        start = cfg.runs[name].start
        if start is not None and start.path is not None:
            try:
                pretrained.check(start.path)
            except pretrained.StartError as e:
                raise ConfigError(f"runs.{name}.start.path: {e}") from None
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
