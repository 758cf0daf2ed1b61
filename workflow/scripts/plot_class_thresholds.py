"""Rule plot_class_thresholds: each class's threshold sweep at the selected iteration."""

from dacapo_core import logs
from dacapo_core.report import class_thresholds_figure

logs.to_file(snakemake.log[0])
figure = class_thresholds_figure(
    snakemake.input.scores,
    snakemake.input.best,
    snakemake.params.criterion,
    snakemake.params.classes,
)
figure.savefig(snakemake.output[0], dpi=100)
