"""Rule plot_scores: validation scores per iteration, best parameters each."""

from dacapo_core import logs
from dacapo_core.report import plot_scores

logs.to_file(snakemake.log[0])
plot_scores(snakemake.input.scores, snakemake.input.best, snakemake.output[0])
