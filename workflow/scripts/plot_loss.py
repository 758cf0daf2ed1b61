"""Rule plot_loss: the training loss curve of a run."""

from dacapo_core import logs
from dacapo_core.report import plot_loss

logs.to_file(snakemake.log[0])
plot_loss(snakemake.input, snakemake.output[0])
