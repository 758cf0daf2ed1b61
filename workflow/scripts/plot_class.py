"""Rules plot_class_scores (a class run's criterion per class against iteration) and
plot_class_thresholds (each class's threshold sweep at the selected iteration)."""

from dacapo_core import logs
from dacapo_core.report import class_scores_figure, class_thresholds_figure

logs.to_file(snakemake.log[0])
make = {"plot_class_scores": class_scores_figure, "plot_class_thresholds": class_thresholds_figure}
figure = make[snakemake.rule](
    snakemake.input.scores,
    snakemake.input.best,
    snakemake.params.criterion,
    snakemake.params.classes,
)
figure.savefig(snakemake.output[0], dpi=100)
