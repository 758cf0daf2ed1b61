"""Rule tensorboard: event files from training_stats and validation scores (JSON stays
the source of truth)."""

from dacapo_core import logs
from dacapo_core.tensorboard_events import write_events

logs.to_file(snakemake.log[0])
write_events(snakemake.output[0], snakemake.input.stats, snakemake.input.scores)
