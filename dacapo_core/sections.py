"""Section mode: a 2D network on a 3D stack whose labels are per section.

Anisotropic EM is often labelled section by section, and a 2D network is then
the right model. Such a run needs no second code path: on the stack, the
network's geometry is the 2D one with one section along z (``geometry.lift``), so a
training sample is one section, a prediction window any number of sections
(each processed on its own), and the 2D affinity offsets stay within a section.
Post-processing connects only the axes the affinities do, so every segment
lies in one section; scores count a GT label in two sections as two objects
(``per_section``), as the annotators meant.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential


def per_section(labels: np.ndarray) -> np.ndarray:
    """Labels made distinct between sections (axis 0); 0 stays 0.

    With both segmentation and GT per section, VOI on the stack equals the
    voxel-weighted mean of the sections' VOIs.
    """
    out = np.zeros(labels.shape, np.uint64)
    offset = 0
    for z, section in enumerate(labels):
        relabelled = relabel_sequential(section)[0].astype(np.uint64)
        out[z] = np.where(relabelled > 0, relabelled + offset, 0)
        offset += int(relabelled.max())
    return out
