"""Rule plot_slices: raw, affinities and segmentation side by side."""

from dacapo_core import arrays, layout, logs
from dacapo_core.report import plot_slices
from dacapo_core.select import validation_prediction

logs.to_file(snakemake.log[0])
run = snakemake.wildcards.run
iteration = arrays.read_json(snakemake.input.best)[snakemake.params.criterion]["iteration"]
panels = []
for name, raw in snakemake.params.validate.items():
    where = {"run": run, "it": iteration, "dataset": name}
    segmentation = layout.path(layout.validation(layout.SEGMENTATION), **where)
    prediction = validation_prediction(layout.path(layout.RUN, run=run), name, iteration)
    if prediction is not None:
        title = f"{name} (iteration {iteration})"
        panels.append((title, raw, str(prediction), segmentation))
for target, raw in snakemake.params.apply.items():
    where = {"run": run, "target": target}
    panels.append(
        (
            target,
            raw,
            layout.path(layout.apply(layout.PREDICTION), **where),
            layout.path(layout.apply(layout.SEGMENTATION), **where),
        )
    )
plot_slices(panels, snakemake.output[0])
