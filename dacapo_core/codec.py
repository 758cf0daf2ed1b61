"""How predictions are stored: affinities in [0, 1] as float32, or as uint8 in
steps of 1/255 (a quarter of the disk).

A prediction's array carries its ``scale`` (affinity per stored unit) in its
attributes, so whoever reads it decodes it without knowing how it was written.
One codec for writing (prediction) and reading (segmentation, figures) keeps
thresholds meaning the same whatever the dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from funlib.geometry import Roi

from . import arrays

if TYPE_CHECKING:
    from funlib.persistence import Array

#: stored dtype -> scale (affinity = stored value * scale)
SCALES = {"float32": 1.0, "uint8": 1 / 255}


def encode(affinities: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Affinities as stored in ``dtype``: uint8 rounds to the nearest 255th of [0, 1]."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        affinities = np.round(np.clip(affinities, 0, 1) / SCALES[dtype.name])
    return affinities.astype(dtype)


def scale_of(path: str | Path) -> float:
    """Affinity per stored unit of a prediction (1 for float32, 1/255 for uint8)."""
    return float(zarr.open(str(path), mode="r").attrs.get("scale", 1.0))


def decode(data: np.ndarray, scale: float) -> np.ndarray:
    """Stored values -> affinities in [0, 1] as float32."""
    return data if data.dtype == np.float32 else data.astype(np.float32) * scale


def read_affinities(array: Array | arrays.ZarrArray, path: str | Path, roi: Roi) -> np.ndarray:
    """Affinities in [0, 1] as float32 of ``roi``, whatever dtype the prediction is stored in."""
    return decode(arrays.read(array, roi), scale_of(path))
