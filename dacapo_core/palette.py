"""Colours of a class run's classes, shared by the report and the viewer, so that a
class looks the same in a figure and in neuroglancer."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

#: hue step between consecutive classes: the golden ratio's conjugate spreads any
#: number of classes around the colour wheel without two hues meeting
HUE_STEP = 0.618033988749895


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """Class -> ``#rrggbb``, by the class's place in the task (its channel order), so a
    class keeps its colour whichever arrays or scores show it."""
    colours = {}
    for i, name in enumerate(classes):
        rgb = colorsys.hsv_to_rgb(i * HUE_STEP % 1, 0.85, 0.95)
        colours[name] = "#" + "".join(f"{round(255 * c):02x}" for c in rgb)
    return colours
