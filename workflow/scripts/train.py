"""Rule train: one chunk, from the previous checkpoint (if any) to iteration {it}."""

from dacapo_core import arrays, layout, logs, provenance
from dacapo_core.select import checkpoint_of
from dacapo_core.stages import TrainStage
from dacapo_core.train import train

logs.to_file(snakemake.log[0])
stage = TrainStage.model_validate(snakemake.params.stage)
run = snakemake.wildcards.run
data = {
    f"{name}.{role}": arrays.array_path(dataset.container, getattr(dataset, role))
    for name, dataset in stage.datasets.items()
    for role in ("raw", "gt", "mask")
    if getattr(dataset, role) is not None
}
init = snakemake.input.get("init_file")  # start: {path: FILE}
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
    name=run,
    provenance=provenance.record(
        run,
        snakemake.config["config_hashes"][run],
        snakemake.params.stage,
        data,
        made_from=snakemake.input.get("start"),
    ),
)
