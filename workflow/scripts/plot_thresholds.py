"""Rule plot_thresholds: the post-processing sweep at the selected iteration."""

from dacapo_core import logs
from dacapo_core.report import plot_thresholds

logs.to_file(snakemake.log[0])
plot_thresholds(
    snakemake.input.scores, snakemake.input.best, snakemake.params.criterion, snakemake.output[0]
)
