"""Turning a volume file (.npz, .tif/.tiff, .h5/.hdf5) into a zarr array with voxel size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from . import arrays


def read_volume(path: str | Path, key: str | None = None) -> np.ndarray:
    """The array ``key`` of ``path`` (default: the only or the first one)."""
    path = Path(path)
    if not path.is_file():
        raise arrays.DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as f:
            name = key or f.files[0]
            if name not in f.files:
                raise arrays.DataError(f"{path}: no array '{name}' (has {f.files})")
            return f[name]
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            name = key or names[0]
            if name not in names:
                raise arrays.DataError(f"{path}: no dataset '{name}' (has {names})")
            return f[name][()]
    raise arrays.DataError(f"{path}: unsupported format '{suffix}' (npz, tif, h5)")


def import_volume(
    src: str | Path,
    out: str,
    voxel_size: Sequence[int],
    key: str | None = None,
    offset: Sequence[int] | None = None,
) -> Array:
    """Write ``src`` (its array ``key``) to the zarr array ``out`` with world geometry."""
    data = read_volume(src, key)
    voxel_size = Coordinate(voxel_size)
    if data.ndim != voxel_size.dims:
        raise arrays.DataError(f"{src}: {data.ndim}D array for a {voxel_size.dims}D voxel size")
    if np.issubdtype(data.dtype, np.floating) and np.isnan(data).any():
        raise arrays.DataError(f"{src}: contains NaN values")
    return arrays.write_numpy(out, data, voxel_size, offset)
