"""Stage 4: fragments -> segments through a lookup table from the merge history."""

from __future__ import annotations

import numpy as np


def relabel(frags: np.ndarray, nodes: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Map fragment ids to segment ids (0 stays 0)."""
    out = np.zeros(frags.shape, np.uint64)
    inside = frags > 0
    out[inside] = segments[np.searchsorted(nodes, frags[inside])]
    return out
