"""Rule train: one chunk, from the previous checkpoint (if any) to iteration {it}."""

from dacapo_core import logs
from dacapo_core.config import DatasetConfig, ResolvedRun
from dacapo_core.train import train

logs.to_file(snakemake.log[0])
view = snakemake.params.training
train(
    ResolvedRun.model_validate(view["resolved"]),
    {name: DatasetConfig.model_validate(d) for name, d in view["datasets"].items()},
    until=int(snakemake.wildcards.it),
    checkpoint_out=snakemake.output.checkpoint,
    start_checkpoint=snakemake.input.get("start"),
    stats_out=snakemake.output.stats,
    snapshot_dir=snakemake.params.snapshots,
    threads=snakemake.threads,
)
