"""Looking at a run in neuroglancer, served on loopback and read lazily from zarr.

Layers: raw, GT (if any), the prediction (affinities as RGB), fragments and the
segmentation, at their voxel size and offset. Without ``--target`` the viewer
shows the best validation (by the run's criterion, or ``--iteration``) and, while
the run is still training, follows a new best as it appears.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import neuroglancer
import zarr

from . import arrays
from .select import validation_prediction

AFFINITY_SHADER = """
void main() {
  emitRGB(vec3(toNormalized(getDataValue(0)),
               toNormalized(getDataValue(1)),
               toNormalized(getDataValue(2))));
}
"""


@dataclass(frozen=True)
class Layer:
    name: str
    path: str
    segmentation: bool = False


def _dataset_arrays(run_json: dict, name: str) -> list[Layer]:
    ds = run_json["datasets"][name]
    layers = [Layer("raw", arrays.array_path(ds["container"], ds["raw"]))]
    if ds.get("gt"):
        layers.append(Layer("gt", arrays.array_path(ds["container"], ds["gt"]), True))
    return layers


def _outputs(container: Path) -> list[Layer]:
    names = (("prediction", False), ("fragments", True), ("segmentation", True))
    return [Layer(n, f"{container}/{n}", seg) for n, seg in names if (container / n).is_dir()]


def best_iteration(run_dir: Path) -> int | None:
    """The selected iteration by the run's criterion (None before the first selection)."""
    best = run_dir / "best.json"
    if not best.is_file():
        return None
    criterion = arrays.read_json(run_dir / "run.json")["run"]["run"]["criterion"]
    return int(arrays.read_json(best)[criterion]["iteration"])


def layers(run_dir: Path, target: str | None = None, iteration: int | None = None) -> list[Layer]:
    """What to show: an apply target, or the validation of one iteration."""
    run_json = arrays.read_json(run_dir / "run.json")
    if target is not None:
        container = run_dir / "apply" / f"{target}.zarr"
        if not container.is_dir():
            raise arrays.DataError(f"{container}: no such apply target")
        raw = zarr.open(f"{container}/prediction", mode="r").attrs.get("raw")
        return ([Layer("raw", raw)] if raw else []) + _outputs(container)
    iteration = iteration or best_iteration(run_dir)
    if iteration is None:
        raise arrays.DataError(
            f"{run_dir}: no validation selected yet (best.json); use --iteration"
        )
    dataset = run_json["run"]["run"]["datasplit"]["validate"][0]
    container = run_dir / "validation" / str(iteration) / f"{dataset}.zarr"
    if not container.is_dir():
        raise arrays.DataError(f"{container}: iteration {iteration} was not validated")
    prediction = validation_prediction(run_dir, dataset, iteration)
    kept = [Layer("prediction", str(prediction))] if prediction else []
    outputs = [layer for layer in _outputs(container) if layer.name != "prediction"]
    return _dataset_arrays(run_json, dataset) + kept + outputs


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


def show(viewer: neuroglancer.Viewer, shown: list[Layer]) -> None:
    with viewer.txn() as state:
        state.layers.clear()
        for layer in shown:
            source = _volume(layer.path)
            if layer.segmentation:
                state.layers[layer.name] = neuroglancer.SegmentationLayer(source=source)
            elif layer.name == "prediction":
                state.layers[layer.name] = neuroglancer.ImageLayer(
                    source=source, shader=AFFINITY_SHADER
                )
            else:
                state.layers[layer.name] = neuroglancer.ImageLayer(source=source)


def start(
    run_dir: str | Path,
    target: str | None = None,
    iteration: int | None = None,
    bind: str = "127.0.0.1",
) -> neuroglancer.Viewer:
    """Serve the layers of a run; the returned viewer's URL is ``viewer.get_viewer_url()``."""
    neuroglancer.set_server_bind_address(bind, bind_port=0)
    viewer = neuroglancer.Viewer()
    show(viewer, layers(Path(run_dir), target, iteration))
    return viewer


def refresh(viewer: neuroglancer.Viewer, run_dir: str | Path, shown: int | None) -> int | None:
    """Show the newest best validation if it differs from ``shown``; return what is shown."""
    newest = best_iteration(Path(run_dir))
    if newest is not None and newest != shown:
        show(viewer, layers(Path(run_dir), None, newest))
        print(f"showing the best validation: iteration {newest}", flush=True)
        return newest
    return shown


def follow(viewer: neuroglancer.Viewer, run_dir: str | Path, poll_seconds: float = 5.0) -> None:
    """Until Ctrl-C: when a new best iteration is selected, show its validation."""
    shown = best_iteration(Path(run_dir))
    while True:
        time.sleep(poll_seconds)
        shown = refresh(viewer, run_dir, shown)
