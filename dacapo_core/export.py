"""A run's selected network as a BioImage.IO model package (``dacapo-flow export``).

The package holds the checkpoint ``best.json`` picks for a criterion, as PyTorch
state-dict weights with their architecture source (``model.py`` itself: it needs
nothing but torch) and as TorchScript weights; the input's axes with the voxel
size, the sizes the network accepts (its training window plus whole grid steps)
and the intensity scaling used in training (it follows the training raw's dtype);
the output's axes, smaller than the input by the network's context (valid
convolutions: the halo is already cropped, so it is the output size's offset, as
the spec asks, and ``config.dacapo_flow.halo`` per side); a test input (a crop of
validation raw) with the network's output on it; and, in the description, the
README and ``config.dacapo_flow``, the post-processing chosen on validation and
the run's scores. Nothing is fetched from the network.
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi
from pydantic import TypeAdapter

from . import arrays, bioimageio_compat, layout
from .checkpoint import intensity_scale, load_checkpoint, predicting_weights
from .config import CRITERIA, AffinitiesTask, DatasetConfig, RunConfig, Task
from .errors import UserError
from .geometry import INPUT_CHANNELS, channel_names, eval_input_shape, num_channels, output_shape
from .model import UNetNetwork, network_kwargs

#: axis ids of a network's spatial dimensions (the last ``dims`` of these)
AXES = ("z", "y", "x")
UNITS = {"nm": "nanometer", "um": "micrometer", "µm": "micrometer", "pm": "picometer"}
#: the U-Net and affinity-based segmentation papers
CITATIONS = (
    ("Ronneberger et al. 2015, U-Net", "10.1007/978-3-319-24574-4_28"),
    ("Funke et al. 2019, segmentation with affinities", "10.1109/TPAMI.2018.2835450"),
)


class ExportError(UserError):
    """A run that cannot be exported (not selected yet, unknown criterion)."""


def _workdir(run_dir: Path) -> Path:
    """The workflow directory of ``results/RUN``: data paths in run.json resolve there."""
    return run_dir.resolve().parents[1]


def _channel_names(task: Task) -> list[str]:
    if isinstance(task, AffinitiesTask):
        return [
            "aff_" + "_".join(str(o).replace("-", "m") for o in offset)
            for offset in task.neighborhood
        ]
    return [re.sub(r"\W", "_", name).lower() or "channel" for name in channel_names(task)]


def _test_input(raw: arrays.Array, shape: Coordinate) -> np.ndarray:
    """A crop of ``raw`` of ``shape`` (the network's dims) at its centre; a 2D network's
    from the middle section."""
    vs = raw.voxel_size
    lifted = Coordinate((1,) * (vs.dims - len(shape)) + tuple(shape))
    size = lifted * vs
    begin = (raw.roi.center - size / 2) // vs * vs
    data = arrays.read(raw, Roi(begin, size))
    return data.reshape(tuple(shape))


def _scores_table(run_dir: Path, iteration: int, parameters: dict[str, Any]) -> dict[str, Any]:
    """Every criterion per validation dataset at the chosen iteration and parameters."""
    doc = arrays.read_json(layout.of_run(run_dir, layout.SCORES, it=iteration))
    table = {}
    for dataset, entry in doc["datasets"].items():
        for result in entry["results"]:
            if result["parameters"] == parameters:
                table[dataset] = result["scores"]
    return table


def _readme(name: str, facts: dict[str, Any]) -> str:
    sel = facts["selection"]
    lines = [
        f"# {name}",
        "",
        f"A {facts['dims']}D UNet trained with dacapo-flow (run `{facts['run']}`), predicting "
        f"{facts['task']['type']} ({', '.join(facts['channels'])}).",
        "",
        "## Input",
        "",
        f"- raw intensities, trained on `{facts['raw_dtype']}` raw: the preprocessing casts to "
        f"float32 and multiplies by {facts['intensity_scale']!r} (raw / dtype maximum).",
        f"- voxel size {facts['voxel_size']} {facts['units']} (axes {', '.join(facts['axes'])}).",
        f"- window: at least {facts['input_shape']} voxels, larger in steps of {facts['step']}.",
        f"- valid convolutions: the output is smaller by {facts['context']} voxels "
        f"(a halo of {facts['halo']} per side, already cropped).",
        "",
        "## Post-processing chosen on validation",
        "",
        f"Criterion `{sel['criterion']}` ({sel['direction']} is better): iteration "
        f"{sel['iteration']}, value {sel['value']:.6g}.",
        "",
        "| parameter | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in sorted(sel["parameters"].items())),
        *(f"| fragments.{k} | {v} |" for k, v in sorted(facts["fragments"].items())),
        "",
        "## Validation",
        "",
        "Scores of the chosen iteration and parameters, per validation dataset "
        "(VOI and adapted Rand error: lower is better).",
        "",
        "| dataset | " + " | ".join(sorted(CRITERIA)) + " |",
        "| --- |" + " --- |" * len(CRITERIA),
        *(
            f"| {ds} | " + " | ".join(f"{scores[c]:.4f}" for c in sorted(CRITERIA)) + " |"
            for ds, scores in sorted(facts["scores"].items())
        ),
        "",
        "## Use in dacapo-flow",
        "",
        "Start a run from this package with `start: {path: THIS.zip}` in its config.",
        "",
    ]
    return "\n".join(lines)


def export(
    run_dir: str | Path,
    criterion: str,
    out: str | Path,
    checkpoints: list[str] | None = None,
    author: str | None = None,
    license: str = "CC-BY-4.0",
) -> Path:
    """Write ``out`` (a .zip): the package of ``run_dir``'s checkpoint selected by
    ``criterion`` (from ``best.json``)."""
    bioimageio_compat.apply()
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    run_dir = Path(run_dir)
    out = Path(out)
    if criterion not in CRITERIA:
        raise ExportError(f"unknown criterion '{criterion}' (one of {', '.join(CRITERIA)})")
    best_path = layout.of_run(run_dir, layout.BEST)
    if not best_path.is_file():
        raise ExportError(f"{best_path}: no selection yet (run the workflow up to select)")
    sel = arrays.read_json(best_path)[criterion]
    iteration = int(sel["iteration"])
    record = arrays.read_json(layout.of_run(run_dir, layout.RUN_JSON))
    run_name = record["run"]["name"]
    run = RunConfig.model_validate(record["run"]["run"])
    datasets = {n: DatasetConfig.model_validate(d) for n, d in record["datasets"].items()}
    checkpoint = layout.of_run(run_dir, layout.CHECKPOINT, it=iteration)
    if checkpoints is not None:  # the rule's inputs
        checkpoint = Path(next(c for c in checkpoints if Path(c).name == f"{iteration}.pt"))
    state = load_checkpoint(checkpoint)
    arch = run.architecture
    task = TypeAdapter(Task).validate_python(state["model_config"]["task"])
    kwargs = network_kwargs(arch, INPUT_CHANNELS, num_channels(task), task.activation)
    network = UNetNetwork(**kwargs)
    network.load_state_dict(predicting_weights(state["model"], num_channels(task)))
    network.eval()

    workdir = _workdir(run_dir)

    def raw_of(name: str) -> arrays.Array:
        ds = datasets[name]
        return arrays.open_array(workdir / arrays.array_path(ds.container, ds.raw))

    dtypes = {name: raw_of(name).dtype for name in run.datasplit.train}
    scales = {intensity_scale(d) for d in dtypes.values()}
    if len(scales) != 1:
        raise ExportError(
            f"training raw dtypes differ ({dtypes}): one input scaling cannot describe them"
        )
    raw_dtype = np.dtype(next(iter(dtypes.values())))
    scale = scales.pop()
    test_raw = raw_of((run.datasplit.validate_ or run.datasplit.train)[0])
    dims = len(arch.input_shape)
    axes = AXES[-dims:]
    vs = test_raw.voxel_size[-dims:]
    units = (getattr(test_raw, "units", None) or ["nm"])[-1]
    step = np.prod(arch.downsample_factors, axis=0).astype(int).tolist() if dims else []
    minimum = Coordinate(arch.input_shape)
    window = eval_input_shape(arch)
    window = Coordinate(m + (w - m) // s * s for m, w, s in zip(minimum, window, step, strict=True))
    context = minimum - output_shape(arch, minimum)
    test_in = _test_input(test_raw, window).astype(raw_dtype)[None, None]
    with torch.no_grad():
        x = torch.from_numpy(test_in.astype(np.float32) * np.float32(scale))
        test_out = network(x).numpy()
    scores = _scores_table(run_dir, iteration, sel["parameters"])
    name = f"dacapo-flow {run_name} {criterion}"
    channels = _channel_names(task)
    facts = {
        "run": run_name,
        "iteration": iteration,
        "dims": dims,
        "task": task.model_dump(mode="json"),
        "channels": channels,
        "raw_dtype": str(raw_dtype),
        "intensity_scale": scale,
        "voxel_size": list(vs),
        "units": units,
        "axes": list(axes),
        "input_shape": list(minimum),
        "step": step,
        "context": list(context),
        "halo": [c // 2 for c in context],
        "architecture": arch.model_dump(mode="json"),
        "network_kwargs": kwargs,
        "selection": {"criterion": criterion, **sel},
        "fragments": run.post_processor.fragments.model_dump(mode="json"),
        "scores": scores,
    }
    unit = UNITS.get(units)
    value_range = (-1.0, 1.0) if task.activation == "tanh" else (0.0, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "test_input.npy", test_in)
        np.save(tmp / "test_output.npy", test_out)
        weights = tmp / "weights.pt"
        torch.save(network.state_dict(), weights)
        scripted = tmp / "weights_torchscript.pt"
        torch.jit.save(torch.jit.script(UNetNetwork(**kwargs).eval()), scripted)
        module = torch.jit.load(scripted)
        module.load_state_dict(network.state_dict())
        torch.jit.save(module, scripted)
        source = tmp / "dacapo_unet.py"
        source.write_text(Path(__file__).with_name("model.py").read_text())
        (tmp / "README.md").write_text(_readme(name, facts))
        preprocessing: list[Any] = [
            bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32"))
        ]
        if scale != 1.0:
            preprocessing.append(
                bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=scale, offset=0.0))
            )
        # last: else the spec appends a cast back to the raw's dtype
        preprocessing.append(bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32")))
        raw_id = bio.TensorId("raw")
        inputs = bio.InputTensorDescr(
            id=raw_id,
            description=f"raw intensities ({raw_dtype}), voxel size {list(vs)} {units}",
            axes=[
                bio.BatchAxis(),
                bio.ChannelAxis(channel_names=[bio.Identifier("raw")]),
                *(
                    bio.SpaceInputAxis(
                        id=bio.AxisId(a),
                        size=bio.ParameterizedSize(min=m, step=s),
                        scale=float(v),
                        unit=unit,
                    )
                    for a, m, s, v in zip(axes, minimum, step, vs, strict=True)
                ),
            ],
            test_tensor=bio.FileDescr(source=tmp / "test_input.npy"),
            data=bio.IntervalOrRatioDataDescr(type=str(raw_dtype)),
            preprocessing=preprocessing,
        )
        outputs = bio.OutputTensorDescr(
            id=bio.TensorId("prediction"),
            description=f"{task.type}, {task.activation}; smaller than raw by {list(context)}",
            axes=[
                bio.BatchAxis(),
                bio.ChannelAxis(channel_names=[bio.Identifier(c) for c in channels]),
                *(
                    bio.SpaceOutputAxis(
                        id=bio.AxisId(a),
                        size=bio.SizeReference(tensor_id=raw_id, axis_id=bio.AxisId(a), offset=-c),
                        scale=float(v),
                        unit=unit,
                    )
                    for a, c, v in zip(axes, context, vs, strict=True)
                ),
            ],
            test_tensor=bio.FileDescr(source=tmp / "test_output.npy"),
            data=bio.IntervalOrRatioDataDescr(type="float32", range=value_range),
        )
        pytorch_version = bio.Version(torch.__version__.split("+")[0])
        description = (
            f"{dims}D UNet ({task.type}) of dacapo-flow run {run_name}, iteration {iteration}, "
            f"selected by {criterion} = {sel['value']:.4g}; post-processing "
            + ", ".join(f"{k}={v}" for k, v in sorted(sel["parameters"].items()))
        )
        model = bio.ModelDescr(
            name=name,
            description=description,
            authors=[bio.Author(name=author or getpass.getuser())],
            cite=[bio.CiteEntry(text=t, doi=bio.Doi(d)) for t, d in CITATIONS],
            license=bio.LicenseId(license),
            tags=[f"{dims}d", "electron-microscopy", "segmentation", task.type, "dacapo-flow"],
            documentation=bio.FileDescr(source=tmp / "README.md"),
            inputs=[inputs],
            outputs=[outputs],
            weights=bio.WeightsDescr(
                pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                    source=weights,
                    architecture=bio.ArchitectureFromFileDescr(
                        source=source, callable=bio.Identifier("UNetNetwork"), kwargs=kwargs
                    ),
                    pytorch_version=pytorch_version,
                ),
                torchscript=bio.TorchscriptWeightsDescr(
                    source=scripted,
                    pytorch_version=pytorch_version,
                    parent="pytorch_state_dict",
                ),
            ),
            config=bio.Config(dacapo_flow=facts),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.{os.getpid()}.zip")
        save_bioimageio_package(model, output_path=partial)
        os.replace(partial, out)
    return out
