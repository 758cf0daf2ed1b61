"""Looking at a run in neuroglancer, served on loopback and read lazily from zarr.

Layers are named ``NAME/ARRAY``: NAME is a validation dataset or the apply
target, ARRAY is raw, gt (if the dataset has labels), prediction (affinities as
RGB), fragments or segmentation, each at its voxel size and offset.

A class run's (distances, one_hot) arrays are named after their classes, each class
in its own colour (``palette``, as in the report): ``prediction/CLASS`` is the
class's channel of the prediction (its positive part: a probability, or inside the
class for distances; one_hot's background is left out), and of an apply target
``classes/CLASS`` its thresholded mask, ``instances/CLASS`` its instances and
``argmax`` the one_hot labels, coloured by class.

- ``--target NAME`` shows that apply target, with the GT of its input dataset if
  it has one.
- ``--iteration IT`` shows the validation of that iteration.
- Otherwise the viewer follows the best validation (by the run's criterion): it
  waits, with a message in the viewer, until ``best.json`` exists, and switches
  to a new best once its arrays are written (when validation predictions are
  temporary, the best one is predicted again after the selection), checking
  every few seconds.

Every validation dataset is shown. Datasets usually share world coordinates, so
only the first one's layers start visible; tick the others in the layer list
(a choice that survives a switch to a new best).

The viewer opens centred on where every visible layer has data (a validation
crop inside a larger raw, or a whole apply target), zoomed so that it fits a
panel (``PANEL_PIXELS``); a switch to a new best keeps where the user looked.

Data paths in ``run.json`` and in a prediction's attributes are relative to the
workflow's working directory, the parent of ``results/``; they are resolved
against it, so the viewer may be started from any directory.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import neuroglancer
import numpy as np
import zarr
from funlib.geometry import Roi

from . import arrays, codec, layout
from .geometry import BACKGROUND
from .palette import class_colours
from .select import validation_prediction

log = logging.getLogger(__name__)


def affinity_shader(channels: int) -> str:
    """The nearest-neighbour affinities (the first ``channels``, at most 3) as RGB:
    a 2D network's two as red and green."""
    rgb = [f"toNormalized(getDataValue({c}))" if c < channels else "0.0" for c in range(3)]
    return "void main() {\n  emitRGB(vec3(" + ", ".join(rgb) + "));\n}\n"


def class_shader(colour: str, channel: int | None, scale: float) -> str:
    """A class's channel (``None``: a single-channel mask) in ``colour``, opaque where the
    class is certain: the stored value times ``scale`` clipped to [0, 1], so a
    probability, or tanh of the distance inside the class (outside is negative)."""
    value = "getDataValue()" if channel is None else f"getDataValue({channel})"
    return (
        f'#uicontrol vec3 color color(default="{colour}")\n'
        "void main() {\n"
        f"  float value = clamp(float(toRaw({value})) * {scale!r}, 0.0, 1.0);\n"
        "  emitRGBA(vec4(color, value));\n"
        "}\n"
    )


STATUS = "follow"  # key of the viewer's status message in follow mode
#: screen pixels that the data's largest edge spans in a cross-section panel: the
#: panels of the 4-panel layout are about 400 x 300 in an 800 x 600 page (the browser
#: test's screenshot); a larger window leaves a margin around the data
PANEL_PIXELS = 250


@dataclass(frozen=True)
class Layer:
    name: str
    path: str
    kind: str = "image"  # or "affinities", "segmentation", "class" (class_shader)
    visible: bool = True
    colour: str | None = None  # "class": the class's colour
    channel: int | None = None  # "class": the class's channel of a prediction
    segment_colours: dict[int, str] | None = None  # "segmentation": argmax's classes


def _workdir(run_dir: Path) -> Path:
    """The workflow's working directory (``results/RUN`` lies under it): the data
    paths a run records are relative to it, not to where the viewer starts."""
    return run_dir.resolve().parents[1]


def _dataset_layers(name: str, ds: dict, base: Path) -> list[Layer]:
    """Raw and GT (if labelled) of a dataset: GT is what a segmentation is judged against."""
    layers = [Layer(f"{name}/raw", str(base / arrays.array_path(ds["container"], ds["raw"])))]
    if ds.get("gt"):
        gt = str(base / arrays.array_path(ds["container"], ds["gt"]))
        layers.append(Layer(f"{name}/gt", gt, "segmentation"))
    return layers


def _input_layers(name: str, raw: str | None, run_json: dict, base: Path) -> list[Layer]:
    """Raw of an apply target, and GT if that raw is a dataset's with labels: the
    prediction records only the raw path it was predicted from."""
    if not raw:
        return []
    path = os.path.normpath(base / raw)
    for ds in run_json["datasets"].values():
        if os.path.normpath(base / arrays.array_path(ds["container"], ds["raw"])) == path:
            return _dataset_layers(name, ds, base)
    return [Layer(f"{name}/raw", path)]


def _outputs(name: str, prediction: Path | None, container: Path) -> list[Layer]:
    """The prediction (where written or kept), and what the volume's post-processing
    made of it: fragments and segmentation, or a class run's arrays."""
    channels = prediction and zarr.open(str(prediction), mode="r").attrs.get("channels")
    if channels:
        return _class_outputs(name, prediction, channels, container)
    found = [Layer(f"{name}/prediction", str(prediction), "affinities")] if prediction else []
    for array in ("fragments", "segmentation"):
        if (container / array).is_dir():
            found.append(Layer(f"{name}/{array}", str(container / array), "segmentation"))
    return found


def _class_outputs(
    name: str, prediction: Path, channels: list[str], container: Path
) -> list[Layer]:
    """A class run's volume: each class's prediction channel, then (apply targets) its
    mask and instances, and the argmax labels; all in the classes' colours."""
    colours = class_colours([c for c in channels if c != BACKGROUND])
    source = str(prediction)
    found = [
        Layer(f"{name}/prediction/{cls}", source, "class", colour=c, channel=channels.index(cls))
        for cls, c in colours.items()
    ]
    for cls, colour in colours.items():
        mask, instances = container / "classes" / cls, container / "instances" / cls
        if mask.is_dir():
            found.append(Layer(f"{name}/classes/{cls}", str(mask), "class", colour=colour))
        if instances.is_dir():
            found.append(Layer(f"{name}/instances/{cls}", str(instances), "segmentation"))
    if (container / "argmax").is_dir():  # label k: channel k
        labels = {channels.index(cls): colour for cls, colour in colours.items()}
        argmax = str(container / "argmax")
        found.append(Layer(f"{name}/argmax", argmax, "segmentation", segment_colours=labels))
    return found


def best_iteration(run_dir: Path) -> int | None:
    """The selected iteration by the run's criterion (None before the first selection)."""
    best = layout.of_run(run_dir, layout.BEST)
    if not best.is_file():
        return None
    criterion = arrays.read_json(layout.of_run(run_dir, layout.RUN_JSON))["run"]["run"]["criterion"]
    return int(arrays.read_json(best)[criterion]["iteration"])


def _target(run_dir: Path, run_json: dict, target: str) -> list[Layer]:
    """An apply target with the volume it was predicted from (named in its prediction)."""
    container = layout.of_run(run_dir, layout.apply(layout.VOLUME), target=target)
    if not container.is_dir():
        raise arrays.DataError(f"{container}: no such apply target")
    raw = zarr.open(f"{container}/prediction", mode="r").attrs.get("raw")
    inputs = _input_layers(target, raw, run_json, _workdir(run_dir))
    return inputs + _outputs(target, container / "prediction", container)


def _validation(run_dir: Path, run_json: dict, dataset: str, iteration: int) -> list[Layer]:
    """One dataset's validation; its prediction may be kept elsewhere (or deleted)."""
    container = layout.of_run(
        run_dir, layout.validation(layout.VOLUME), it=iteration, dataset=dataset
    )
    if not container.is_dir():
        raise arrays.DataError(f"{container}: iteration {iteration} was not validated")
    prediction = validation_prediction(run_dir, dataset, iteration)
    inputs = _dataset_layers(dataset, run_json["datasets"][dataset], _workdir(run_dir))
    return inputs + _outputs(dataset, prediction, container)


def layers(run_dir: Path, target: str | None = None, iteration: int | None = None) -> list[Layer]:
    """What to show: an apply target, or every validation dataset of one iteration
    (the first dataset's layers visible)."""
    run_json = arrays.read_json(layout.of_run(run_dir, layout.RUN_JSON))
    if target is not None:
        return _target(run_dir, run_json, target)
    iteration = iteration or best_iteration(run_dir)
    if iteration is None:
        raise arrays.DataError(
            f"{run_dir}: no validation selected yet (best.json); use --iteration"
        )
    shown = []
    for i, dataset in enumerate(run_json["run"]["run"]["datasplit"]["validate"]):
        found = _validation(run_dir, run_json, dataset, iteration)
        shown += [replace(layer, visible=i == 0) for layer in found]
    return shown


def _volume(path: str) -> neuroglancer.LocalVolume:
    """A lazy neuroglancer source for a funlib/zarr array, at its world position."""
    meta = arrays.open_array(path)
    data = zarr.open(path, mode="r")
    vs, offset = list(meta.voxel_size), list(meta.offset / meta.voxel_size)
    names, units, scales = ["z", "y", "x"][-len(vs) :], ["nm"] * len(vs), vs
    if data.ndim > len(vs):
        names, units, scales, offset = ["c^", *names], ["", *units], [1, *scales], [0, *offset]
    space = neuroglancer.CoordinateSpace(names=names, units=units, scales=scales)
    return neuroglancer.LocalVolume(data, dimensions=space, voxel_offset=offset)


def _focus(visible: list[Layer]) -> Roi:
    """Where every visible layer has data (their ROIs' intersection, in world units);
    the first layer's ROI if they do not overlap."""
    rois = [arrays.open_array(layer.path).roi for layer in visible]
    focus = rois[0]
    for roi in rois[1:]:
        focus = focus.intersect(roi)
    return rois[0] if focus.empty else focus


def frame(state: neuroglancer.ViewerState, visible: list[Layer]) -> None:
    """Centre the views on the visible layers' data and zoom to fit it: global
    dimensions at the first layer's voxel size, position in those voxels, and scales in
    canonical voxels (the smallest voxel edge): per screen pixel for cross-sections, per
    viewport height for the 3D view (twice the data's largest edge, room for any
    orientation). The first panel shows a z section, x to the right, as EM is read."""
    voxel_size = np.array(arrays.open_array(visible[0].path).voxel_size, dtype=float)
    names = ["z", "y", "x"][-len(voxel_size) :]
    state.dimensions = neuroglancer.CoordinateSpace(
        names=names, units=["nm"] * len(names), scales=list(voxel_size)
    )
    state.display_dimensions = names[::-1]
    focus = _focus(visible)
    centre = np.array(focus.offset, dtype=float) + np.array(focus.shape, dtype=float) / 2
    state.position = centre / voxel_size
    extent = max(focus.shape) / voxel_size.min()
    state.cross_section_scale = extent / PANEL_PIXELS
    state.projection_scale = 2 * extent


def show(viewer: neuroglancer.Viewer, shown: list[Layer]) -> None:
    """Replace the layers; a layer shown before keeps the visibility the user gave it.
    The first layers shown are framed; later ones keep the user's view."""
    with viewer.txn() as state:
        visible = {layer.name: layer.visible for layer in state.layers}
        if not visible:
            frame(state, [layer for layer in shown if layer.visible] or shown)
        state.layers.clear()
        for layer in shown:
            source = _volume(layer.path)
            if layer.kind == "segmentation":
                state.layers[layer.name] = neuroglancer.SegmentationLayer(
                    source=source, segment_colors=layer.segment_colours or {}
                )
            elif layer.kind == "affinities":
                state.layers[layer.name] = neuroglancer.ImageLayer(
                    source=source, shader=affinity_shader(arrays.affinity_dims(layer.path))
                )
            elif layer.kind == "class":
                shader = class_shader(layer.colour, layer.channel, codec.scale_of(layer.path))
                state.layers[layer.name] = neuroglancer.ImageLayer(source=source, shader=shader)
            else:
                state.layers[layer.name] = neuroglancer.ImageLayer(source=source)
            state.layers[layer.name].visible = visible.get(layer.name, layer.visible)


def serve(bind: str = "127.0.0.1") -> neuroglancer.Viewer:
    """An empty viewer; its URL is ``viewer.get_viewer_url()``. Anything but loopback
    is warned about: neuroglancer has no authentication."""
    if bind != "127.0.0.1":
        log.warning("serving on %s: anyone who can reach it sees the data", bind)
    neuroglancer.set_server_bind_address(bind, bind_port=0)
    return neuroglancer.Viewer()


def start(
    run_dir: str | Path,
    target: str | None = None,
    iteration: int | None = None,
    bind: str = "127.0.0.1",
) -> neuroglancer.Viewer:
    """Serve what ``layers`` selects now; raises if nothing is selected yet."""
    viewer = serve(bind)
    show(viewer, layers(Path(run_dir), target, iteration))
    return viewer


def _status(viewer: neuroglancer.Viewer, text: str) -> None:
    """Say in the viewer (and once on stderr) why nothing new is shown; "" clears it."""
    if viewer.config_state.state.status_messages.get(STATUS, "") == text:
        return
    with viewer.config_state.txn() as state:
        state.status_messages.pop(STATUS, None)
        if text:
            state.status_messages[STATUS] = text
    if text:
        log.info(text)


def _written(shown: list[Layer]) -> bool:
    """Whether every dataset's prediction is shown (``NAME/prediction``, or a class run's
    ``NAME/prediction/CLASS``): a new best's may still be computed when validation
    predictions are temporary, while its scores, and so its segmentation, came before
    the selection."""
    datasets = {layer.name.split("/")[0] for layer in shown}
    predicted = {
        d for d, array, *_ in (layer.name.split("/") for layer in shown) if array == "prediction"
    }
    return datasets <= predicted


def refresh(viewer: neuroglancer.Viewer, run_dir: str | Path, shown: int | None) -> int | None:
    """Show the newest best validation if it differs from ``shown`` and its arrays are
    written; return the iteration shown. Otherwise the next call tries again."""
    run_dir = Path(run_dir)
    newest = best_iteration(run_dir)
    if newest is None or newest == shown:
        if shown is None:
            _status(viewer, f"waiting for the first selection ({run_dir}/best.json)")
        return shown
    new = layers(run_dir, None, newest)
    if not _written(new):
        _status(viewer, f"iteration {newest} selected: waiting for its prediction")
        return shown
    show(viewer, new)
    _status(viewer, "")
    log.info("showing the best validation: iteration %d", newest)
    return newest


def follow(viewer: neuroglancer.Viewer, run_dir: str | Path, poll_seconds: float = 5.0) -> None:
    """Until Ctrl-C: show the best validation, and each new best once it is written."""
    shown = None
    while True:
        shown = refresh(viewer, run_dir, shown)
        time.sleep(poll_seconds)
