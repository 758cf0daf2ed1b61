"""Rule plot_class_scores: a class run's criterion per class against iteration."""

from dacapo_core import logs
from dacapo_core.report import class_scores_figure

logs.to_file(snakemake.log[0])
figure = class_scores_figure(
    snakemake.input.scores,
    snakemake.input.best,
    snakemake.params.criterion,
    snakemake.params.classes,
)
figure.savefig(snakemake.output[0], dpi=100)
