"""Network and array geometry that needs no torch: shapes, channels, lifting.

Valid convolutions make a UNet's output a function of a fixed input window
only, so its output shape (and the context a block needs) is computed from the
input shape, never guessed. This is plain arithmetic on the config: checking a
config and planning blocks import it without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from funlib.geometry import Coordinate

from .config import AffinitiesTask, ClassTask, ConfigError, OneHotTask, Task, UNetConfig


class ShapeError(ConfigError):
    """An input shape the UNet cannot process without cropping misalignment."""


def lift(values: Sequence[int], dims: int, fill: int = 1) -> Coordinate:
    """A network's shape (or, with ``fill=0``, an offset) on ``dims``-D data: a 2D
    network on a 3D stack is one section thick (see ``sections``)."""
    return Coordinate((fill,) * (dims - len(values)) + tuple(values))


def output_shape(config: UNetConfig, input_shape: Sequence[int]) -> Coordinate:
    """Output voxels for ``input_shape``; ShapeError naming the level that fails."""
    shrink = 2 * (config.kernel_size - 1)
    shape = list(input_shape)
    for level, factor in enumerate(config.downsample_factors):
        shape = [s - shrink for s in shape]
        if any(s <= 0 or s % f for s, f in zip(shape, factor, strict=True)):
            raise ShapeError(
                f"input shape {list(input_shape)}: size {shape} before downsampling level "
                f"{level} is not a positive multiple of {factor}"
            )
        shape = [s // f for s, f in zip(shape, factor, strict=True)]
    shape = [s - shrink for s in shape]
    for factor in reversed(config.downsample_factors):
        shape = [s * f - shrink for s, f in zip(shape, factor, strict=True)]
    if any(s <= 0 for s in shape):
        raise ShapeError(f"input shape {list(input_shape)} is too small for this UNet")
    if any((i - o) % 2 for i, o in zip(input_shape, shape, strict=True)):
        raise ShapeError(f"input shape {list(input_shape)}: context is not symmetric")
    return Coordinate(shape)


def eval_input_shape(config: UNetConfig) -> Coordinate:
    """The larger window used for prediction (more output per forward pass)."""
    return Coordinate(config.input_shape) + Coordinate(config.eval_shape_increase)


#: channels of the raw a network takes: grey-scale intensities
INPUT_CHANNELS = 1


def num_channels(task: Task) -> int:
    """Predicted channels of the network: one affinity per offset, or one per class
    (and one for background, one_hot)."""
    if isinstance(task, AffinitiesTask):
        return len(task.neighborhood)
    return len(task.classes) + isinstance(task, OneHotTask)


#: LSD channels per network dimensionality: mean offset (dims), variances (dims),
#: Pearson coefficients of each pair of axes, size (``lsd``'s order)
LSD_CHANNELS = {2: 6, 3: 10}


def auxiliary_channels(task: Task) -> int:
    """Head channels trained beside the predicted ones and never stored: the LSDs of
    an affinities task with ``lsds`` (their number follows the network's dimensions,
    which are its offsets')."""
    if isinstance(task, AffinitiesTask) and task.lsds:
        return LSD_CHANNELS[len(task.neighborhood[0])]
    return 0


def head_channels(task: Task) -> int:
    """Channels of the network's head: the predicted ones, then the auxiliary ones."""
    return num_channels(task) + auxiliary_channels(task)


#: a one_hot network's first channel: the voxels in none of the classes
BACKGROUND = "background"


def channel_names(task: ClassTask) -> list[str]:
    """What each output channel of a class task's network is: its classes, after
    ``background`` for one_hot (so channel ``k`` of an argmax is label ``k``)."""
    return [BACKGROUND] * isinstance(task, OneHotTask) + list(task.classes)
