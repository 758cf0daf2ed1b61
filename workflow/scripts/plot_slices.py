"""Rule plot_slices: raw, affinities and segmentation side by side."""

from pathlib import Path

from dacapo_core import arrays, logs
from dacapo_core.report import plot_slices
from dacapo_core.select import validation_prediction

logs.to_file(snakemake.log[0])
run_dir = Path(snakemake.output[0]).parents[1]
iteration = arrays.read_json(snakemake.input.best)[snakemake.params.criterion]["iteration"]
panels = []
for name, raw in snakemake.params.validate.items():
    segmentation = run_dir / f"validation/{iteration}/{name}.zarr/segmentation"
    prediction = validation_prediction(run_dir, name, iteration)
    if prediction is not None:
        title = f"{name} (iteration {iteration})"
        panels.append((title, raw, str(prediction), str(segmentation)))
for target, raw in snakemake.params.apply.items():
    container = run_dir / f"apply/{target}.zarr"
    panels.append((target, raw, f"{container}/prediction", f"{container}/segmentation"))
plot_slices(panels, snakemake.output[0])
