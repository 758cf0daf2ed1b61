"""Test-time augmentation: a prediction averaged over mirrored and transposed views of
the input, each view undone on the network's output.

A view mirrors any subset of the network's axes and, with ``mirror_transpose``,
permutes axes of equal voxel size (a 2D network on a 3D stack: only the in-plane
axes; anisotropic data: only the axes sampled alike). Class outputs (distances,
one_hot) are undone by mirroring and transposing them back. Affinities need more:
channel ``c`` at ``p`` compares ``p`` with ``p - o_c``. Seen through a view, the
pair ``(p, p - o)`` of the view is the pair ``(q, q - G o)`` of the data (``G``
the inverse view's linear part). Where ``G o_c = o_k``, channel ``c`` undone is
channel ``k``; where ``G o_c = -o_k`` it compares ``q`` with ``q + o_k``, which
channel ``k`` holds at ``q + o_k``: channel ``k`` at ``q`` is channel ``c`` undone
at ``q - o_k``. So mirroring axis ``d`` shifts a channel by its offset's
``d``-component, and a view is usable only if it maps the neighbourhood onto itself
up to sign (always so for mirrors of axis-aligned offsets; transposes need the
same offsets along the axes they swap). Views that do not are left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from funlib.geometry import Coordinate, Roi

#: which views a prediction averages: the input as it is, every mirror of the
#: network's axes, or every mirror of every allowed transpose
Mode = Literal["none", "mirror", "mirror_transpose"]


@dataclass(frozen=True)
class View:
    """A signed permutation of the spatial axes: axis ``i`` of the view is axis
    ``axes[i]`` of the data, reversed where ``flips[i]``. Coordinates map linearly
    (a reversed axis negates its world coordinate), so a ROI's view is a ROI."""

    axes: tuple[int, ...]
    flips: tuple[bool, ...]

    @property
    def inverse(self) -> View:
        axes = tuple(int(a) for a in np.argsort(self.axes))
        return View(axes, tuple(self.flips[a] for a in axes))

    def sizes(self, values: Coordinate) -> Coordinate:
        """Shapes and voxel sizes seen through the view: permuted, never negated."""
        return Coordinate(values[a] for a in self.axes)

    def vector(self, offset: Coordinate) -> Coordinate:
        """An offset seen through the view."""
        return Coordinate(
            -offset[a] if f else offset[a] for a, f in zip(self.axes, self.flips, strict=True)
        )

    def roi(self, roi: Roi) -> Roi:
        begin, end = self.sizes(roi.begin), self.sizes(roi.end)
        start = Coordinate(-e if f else b for b, e, f in zip(begin, end, self.flips, strict=True))
        return Roi(start, self.sizes(roi.shape))

    def array(self, data: np.ndarray) -> np.ndarray:
        """``data``'s trailing (spatial) axes seen through the view; leading ones kept."""
        lead = data.ndim - len(self.axes)
        data = data.transpose(*range(lead), *(lead + a for a in self.axes))
        return np.flip(data, [lead + i for i, f in enumerate(self.flips) if f])


@dataclass(frozen=True)
class Augmentation:
    """A view and how its prediction becomes the data's: output channel ``k`` is the
    view's channel ``sources[k]``, undone, at ``q - shifts[k]`` (voxels)."""

    view: View
    sources: tuple[int, ...]
    shifts: tuple[Coordinate, ...]

    def undo(self, seen: np.ndarray, roi: Roi, target: Roi, voxel_size: Coordinate) -> np.ndarray:
        """The data's channels on ``target`` from the view's prediction ``seen`` of
        ``roi``'s view; ``roi`` holds ``target`` grown by the shifts."""
        undone = self.view.inverse.array(seen)
        return np.stack(
            [
                undone[(c, *((target - shift * voxel_size - roi.begin) / voxel_size).to_slices())]
                for c, shift in zip(self.sources, self.shifts, strict=True)
            ]
        )


def views(mode: Mode, voxel_size: Coordinate, network_dims: int) -> list[View]:
    """The views ``mode`` names on data of ``voxel_size``, the identity first; a
    ``network_dims``-D network on thicker data sees only the trailing axes."""
    dims = voxel_size.dims
    kept = tuple(range(dims - network_dims))
    axes = range(dims - network_dims, dims)
    orders = [tuple(axes)]
    if mode == "mirror_transpose":
        orders = [
            order
            for order in itertools.permutations(axes)
            if all(voxel_size[a] == voxel_size[i] for i, a in zip(axes, order, strict=True))
        ]
    flips = [(False,) * network_dims]
    if mode != "none":
        flips = list(itertools.product((False, True), repeat=network_dims))
    return [View(kept + o, (False,) * len(kept) + f) for o in orders for f in flips]


def channel_map(view: View, offsets: Sequence[Coordinate]) -> Augmentation | None:
    """How ``view``'s affinities for ``offsets`` map back (module docstring), or None
    where the view does not map the neighbourhood onto itself."""
    back = view.inverse
    zero = offsets[0] * 0
    sources, shifts = [], []
    for target in offsets:
        for c, offset in enumerate(offsets):
            seen = back.vector(offset)
            if seen in (target, -target):
                sources.append(c)
                shifts.append(zero if seen == target else target)
                break
        else:
            return None
    return Augmentation(view, tuple(sources), tuple(shifts))


def plan(
    mode: Mode,
    voxel_size: Coordinate,
    network_dims: int,
    channels: int,
    offsets: Sequence[Coordinate] | None = None,
) -> list[Augmentation]:
    """The augmentations a prediction averages: every view of ``mode``; with
    affinities ``offsets``, those that map the neighbourhood onto itself."""
    found = []
    zero = Coordinate((0,) * voxel_size.dims)
    for view in views(mode, voxel_size, network_dims):
        if offsets is None:
            found.append(Augmentation(view, tuple(range(channels)), (zero,) * channels))
        elif (augmentation := channel_map(view, offsets)) is not None:
            found.append(augmentation)
    return found


def margins(augmentations: Sequence[Augmentation]) -> tuple[Coordinate, Coordinate]:
    """Voxels an undone prediction needs before and after its target, per axis."""
    shifts = [s for a in augmentations for s in a.shifts]
    low = Coordinate(max(0, *(s[d] for s in shifts)) for d in range(shifts[0].dims))
    high = Coordinate(max(0, *(-s[d] for s in shifts)) for d in range(shifts[0].dims))
    return low, high


def transposable(neighborhood: Sequence[Sequence[int]]) -> bool:
    """Whether some transpose of axes maps the neighbourhood onto itself (on data of
    equal voxel sizes, where every transpose is allowed)."""
    offsets = [Coordinate(o) for o in neighborhood]
    dims = offsets[0].dims
    found = plan("mirror_transpose", Coordinate((1,) * dims), dims, len(offsets), offsets)
    return any(a.view.axes != tuple(range(dims)) for a in found)
