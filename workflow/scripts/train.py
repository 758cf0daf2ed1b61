"""Rule train: one chunk, from the previous checkpoint (if any) to iteration {it}."""

from dacapo_core import arrays, layout, logs
from dacapo_core.select import checkpoint_of
from dacapo_core.stages import TrainStage
from dacapo_core.train import train

logs.to_file(snakemake.log[0])
stage = TrainStage.model_validate(snakemake.params.stage)
init = None
if snakemake.input.get("init_best"):  # fine-tuning: the other run's selected checkpoint
    best = arrays.read_json(snakemake.input.init_best)[stage.start.criterion]
    init = checkpoint_of(snakemake.input.init_checkpoints, best["iteration"])
train(
    stage,
    until=int(snakemake.wildcards.it),
    checkpoint_out=snakemake.output.checkpoint,
    start_checkpoint=snakemake.input.get("start"),
    stats_out=snakemake.output.stats,
    snapshot_dir=layout.path(layout.SNAPSHOTS, run=snakemake.wildcards.run),
    threads=snakemake.threads,
    init_checkpoint=init,
    name=snakemake.wildcards.run,
)
