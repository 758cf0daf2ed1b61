"""Rule train: one chunk, from the previous checkpoint (if any) to iteration {it}."""

from dacapo_core import arrays, logs
from dacapo_core.config import DatasetConfig, ResolvedRun
from dacapo_core.select import checkpoint_of
from dacapo_core.train import train

logs.to_file(snakemake.log[0])
view = snakemake.params.training
resolved = ResolvedRun.model_validate(view["resolved"])
init = None
if snakemake.input.get("init_best"):  # fine-tuning: the other run's selected checkpoint
    start = resolved.run.start
    best = arrays.read_json(snakemake.input.init_best)[start.criterion]
    init = checkpoint_of(snakemake.input.init_checkpoints, best["iteration"])
train(
    resolved,
    {name: DatasetConfig.model_validate(d) for name, d in view["datasets"].items()},
    until=int(snakemake.wildcards.it),
    checkpoint_out=snakemake.output.checkpoint,
    start_checkpoint=snakemake.input.get("start"),
    stats_out=snakemake.output.stats,
    snapshot_dir=snakemake.params.snapshots,
    threads=snakemake.threads,
    init_checkpoint=init,
)
