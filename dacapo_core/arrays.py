"""Zarr arrays in world units: open, create, read with padding, and ROI strings.

Geometry follows funlib: an array has a voxel size, an offset and a ROI in world
units (nm); channel axes are named with a trailing ``^``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi

from .chunk_cache import ChunkCache
from .errors import UserError

if TYPE_CHECKING:  # imported where used: it pulls in dask, xarray and pandas (over a second)
    from funlib.persistence import Array

SPATIAL_AXES = ("z", "y", "x")
#: suffix of a result that is still being written (see staging / publish)
STAGING_SUFFIX = ".partial"


class DataError(UserError):
    """Input data, or a path or ROI naming it, that cannot be used as asked: one line
    naming the file."""


def parse_roi(text: str) -> Roi:
    """``"[z0:z1,y0:y1,x0:x1]"`` (world units, end exclusive) -> Roi."""
    match = re.fullmatch(r"\s*\[([^\]]*)\]\s*", text)
    if not match:
        raise DataError(f"ROI {text!r} is not of the form '[z0:z1,y0:y1,x0:x1]'")
    begins, ends = [], []
    for part in match.group(1).split(","):
        bounds = re.fullmatch(r"\s*(-?\d+)\s*:\s*(-?\d+)\s*", part)
        if not bounds:
            raise DataError(f"ROI {text!r}: '{part}' is not 'begin:end'")
        begins.append(int(bounds.group(1)))
        ends.append(int(bounds.group(2)))
    if any(e <= b for b, e in zip(begins, ends, strict=True)):
        raise DataError(f"ROI {text!r} is empty")
    return Roi(begins, [e - b for b, e in zip(begins, ends, strict=True)])


def format_roi(roi: Roi) -> str:
    """Roi -> ``"[z0:z1,y0:y1,x0:x1]"``, the inverse of parse_roi."""
    return "[" + ",".join(f"{b}:{e}" for b, e in zip(roi.begin, roi.end, strict=True)) + "]"


def array_path(container: str | Path, dataset: str) -> str:
    return f"{Path(container)}/{dataset.strip('/')}"


def split_path(path: str) -> tuple[str, str]:
    """``"a/b.zarr/c/d"`` -> (``"a/b.zarr"``, ``"c/d"``)."""
    match = re.fullmatch(r"(.+?\.(?:zarr|n5))/(.+)", str(path).rstrip("/"))
    if not match:
        raise DataError(f"{path!r}: expected CONTAINER.zarr/DATASET")
    return match.group(1), match.group(2)


def open_array(path: str | Path, mode: str = "r") -> Array:
    """Open a zarr array with its funlib metadata; DataError if it is missing."""
    from funlib.persistence import open_ds

    container, dataset = split_path(str(path))
    if not Path(container).exists():
        raise DataError(f"{container}: container not found")
    try:
        return open_ds(array_path(container, dataset), mode=mode)
    except Exception as e:  # zarr raises several types for a missing array
        raise DataError(f"{path}: cannot open array ({type(e).__name__})") from None


@dataclass(frozen=True)
class ZarrArray:
    """A zarr array in world units, read and written with zarr alone.

    What a block worker needs of an array (geometry, reading with padding, writing
    a ROI) without funlib.persistence, whose imports (dask, xarray, pandas) took
    most of a worker's start-up. Channel axes lead, as in funlib."""

    data: zarr.Array
    voxel_size: Coordinate
    offset: Coordinate
    #: where reads come from decoded chunks kept between them (see ``cached``)
    cache: ChunkCache | None = None

    @classmethod
    def of(cls, array: Array) -> ZarrArray | None:
        """The zarr array behind a funlib Array, or None if there is none to read
        directly (lazy operations, or not backed by zarr)."""
        source = array._source_data
        if array.lazy_ops or not isinstance(source, zarr.Array):
            return None
        return cls(source, array.voxel_size, array.offset)

    @property
    def roi(self) -> Roi:
        return Roi(self.offset, self.voxel_size * Coordinate(self.data.shape[self.channel_dims :]))

    @property
    def channel_dims(self) -> int:
        return self.data.ndim - self.voxel_size.dims

    def read(self, roi: Roi, fill_value: Any = 0) -> np.ndarray:
        """The data of ``roi``, ``fill_value`` where it lies outside the array."""
        channels = self.data.shape[: self.channel_dims]
        out = np.full(channels + tuple(roi.shape / self.voxel_size), fill_value, self.data.dtype)
        shared = self.roi.intersect(roi)
        if not shared.empty:
            into = ((shared - roi.offset) / self.voxel_size).to_slices()
            inside = self._slices(shared)
            if self.cache is None:
                out[(Ellipsis, *into)] = self.data[(Ellipsis, *inside)]
            else:
                whole = tuple(slice(0, n) for n in channels)
                out[(Ellipsis, *into)] = self.cache.read((*whole, *inside))
        return out

    def cached(self, window: Coordinate) -> ZarrArray:
        """This array read through a ``ChunkCache`` sized for reads of ``window`` (world
        units): overlapping reads share the chunks it keeps. Read-only."""
        return replace(self, cache=ChunkCache(self.data, window / self.voxel_size))

    def __setitem__(self, roi: Roi, value: np.ndarray) -> None:
        if not self.roi.contains(roi):
            raise IndexError(f"{roi} is not inside the array's {self.roi}")
        self.data[(Ellipsis, *self._slices(roi))] = value

    def _slices(self, roi: Roi) -> tuple[slice, ...]:
        return ((roi - self.offset) / self.voxel_size).to_slices()


def open_zarr(path: str | Path, mode: str = "r") -> ZarrArray:
    """Open an array for a block worker: with zarr and the geometry funlib wrote in
    its attributes (``voxel_size``, ``offset``), else (other metadata, other stores)
    through funlib. DataError if it is missing."""
    try:
        data = zarr.open_array(str(path), mode=mode)
        geometry = Coordinate(data.attrs["voxel_size"]), Coordinate(data.attrs["offset"])
    except Exception:  # zarr raises several types; funlib reads what it can, or says why
        return ZarrArray.of(open_array(path, mode))
    return ZarrArray(data, *geometry)


def read(array: Array | ZarrArray, roi: Roi, fill_value: Any = 0) -> np.ndarray:
    """``array.to_ndarray(roi, fill_value)`` read from zarr directly: funlib builds a dask
    graph per read, which costs more than reading a block's chunks. Arrays with lazy
    operations, or not backed by zarr, are read by funlib."""
    direct = array if isinstance(array, ZarrArray) else ZarrArray.of(array)
    if direct is None:
        return array.to_ndarray(roi, fill_value=fill_value)
    return direct.read(roi, fill_value)


def prepare_array(
    path: str | Path,
    roi: Roi,
    voxel_size: Coordinate,
    dtype: Any,
    num_channels: int | None = None,
    chunk_shape: Coordinate | None = None,
    attrs: dict[str, Any] | None = None,
    reuse: bool = False,
) -> Array:
    """Create (or overwrite) an array covering ``roi``; optional leading channel axis.

    With ``reuse``, an existing array whose attributes equal ``attrs`` is kept as
    it is (its finished blocks are resumed); any other is replaced.
    """
    from funlib.persistence import prepare_ds

    container, dataset = split_path(str(path))
    if reuse and same_attrs(path, attrs or {}):
        return open_array(path, mode="r+")
    zarr.open_group(container, mode="a")  # funlib writes no root group marker
    voxel_size = Coordinate(voxel_size)
    shape = roi.shape / voxel_size
    axes = list(SPATIAL_AXES[-voxel_size.dims :])
    chunks = chunk_shape if chunk_shape is not None else Coordinate((64,) * voxel_size.dims)
    if num_channels is not None:
        shape = (num_channels, *shape)
        axes = ["c^", *axes]
        chunks = (num_channels, *chunks)
    array = prepare_ds(
        array_path(container, dataset),
        shape=tuple(shape),
        offset=roi.offset,
        voxel_size=voxel_size,
        axis_names=axes,
        units=["nm"] * voxel_size.dims,
        chunk_shape=tuple(chunks),
        dtype=dtype,
        mode="w",
    )
    if attrs:
        zarr.open(array_path(container, dataset), mode="a").attrs.update(attrs)
    describe_container(container)
    return array


def same_attrs(path: str | Path, attrs: dict[str, Any]) -> bool:
    """Whether an array exists at ``path`` with these attribute values."""
    try:
        existing = dict(zarr.open(str(path), mode="r").attrs)
    except (FileNotFoundError, ValueError, KeyError, zarr.errors.PathNotFoundError):
        return False
    return all(existing.get(k) == json.loads(json.dumps(v)) for k, v in attrs.items())


def describe_container(container: str | Path) -> None:
    """OME-NGFF 0.4 ``multiscales`` on the container, one entry per finished array.

    funlib's attributes stay on each array; this adds the standard description
    (axes, units, voxel size and offset as scale and translation) so that
    OME-NGFF readers (napari, Fiji, neuroglancer) place every array right.
    Staged (unfinished) arrays are left out.
    """
    names = _array_names(Path(container))
    zarr.open_group(str(container), mode="a").attrs["multiscales"] = [
        _multiscale(name, open_array(array_path(container, name)))
        for name in names
        if STAGING_SUFFIX not in name
    ]


def _array_names(container: Path) -> list[str]:
    """Datasets of a container, without walking into arrays (their chunks)."""
    names = []
    for folder, subfolders, files in os.walk(container):
        if ".zarray" in files:
            names.append(str(Path(folder).relative_to(container)))
            subfolders.clear()
    return sorted(names)


def _multiscale(name: str, array: Array) -> dict[str, Any]:
    spatial = array.voxel_size.dims
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in SPATIAL_AXES[-spatial:]]
    scale, translation = list(array.voxel_size), list(array.offset)
    if len(array.shape) > spatial:
        axes = [{"name": "c", "type": "channel"}, *axes]
        scale, translation = [1, *scale], [0, *translation]
    transforms = [
        {"type": "scale", "scale": scale},
        {"type": "translation", "translation": translation},
    ]
    dataset = {"path": name, "coordinateTransformations": transforms}
    return {"version": "0.4", "name": name, "axes": axes, "datasets": [dataset]}


def staging(path: str | Path) -> str:
    """Where a result is written until it is complete."""
    return f"{path}{STAGING_SUFFIX}"


def publish(path: str | Path) -> None:
    """Give a finished staged result its final name (replacing an older one)."""
    final = Path(path)
    if final.exists():
        shutil.rmtree(final)
    os.rename(staging(path), final)
    if re.search(r"\.(zarr|n5)/", str(final)):
        describe_container(split_path(str(final))[0])


def affinity_dims(path: str | Path) -> int:
    """How many trailing axes a prediction's affinities connect: all of them, but
    for a 2D network's prediction of a 3D stack (within sections only)."""
    array = zarr.open(str(path), mode="r")
    neighborhood = array.attrs.get("neighborhood")
    return len(neighborhood[0]) if neighborhood else array.ndim - 1


def long_range_offsets(path: str | Path) -> list[list[int]]:
    """The offsets (voxels, one entry per spatial axis) of a prediction's channels
    after the nearest-neighbour ones; none where it records no neighbourhood."""
    array = zarr.open(str(path), mode="r")
    neighborhood = array.attrs.get("neighborhood") or []
    spatial = array.ndim - 1
    long = neighborhood[affinity_dims(path) :]
    return [[0] * (spatial - len(offset)) + list(offset) for offset in long]


def fingerprint(path: str | Path) -> str:
    """Size and modification time of a file, or of an array's metadata: an input
    that was rewritten since a partial result was started changes it."""
    path = Path(path)
    meta = path / ".zarray" if path.is_dir() else path
    stat = meta.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def write_numpy(
    path: str | Path, data: np.ndarray, voxel_size: Coordinate, offset: Coordinate | None = None
) -> Array:
    """Write a whole in-memory volume (spatial axes last) as a zarr array."""
    voxel_size = Coordinate(voxel_size)
    spatial = Coordinate(data.shape[-voxel_size.dims :])
    offset = Coordinate(offset) if offset is not None else Coordinate((0,) * voxel_size.dims)
    channels = data.shape[0] if data.ndim > voxel_size.dims else None
    array = prepare_array(path, Roi(offset, spatial * voxel_size), voxel_size, data.dtype, channels)
    array[array.roi] = data
    return array


def write_json(path: str | Path, data: Any) -> None:
    """Write sorted, indented JSON atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, path)


def write_npz(path: str | Path, **columns: np.ndarray) -> None:
    """Write ``np.savez`` columns atomically: the temporary name ends in ``.tmp``, so a
    killed write never passes for a file of a ``*.npz`` listing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        np.savez(f, **columns)
    os.replace(f.name, path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
