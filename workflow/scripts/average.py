"""Rules ensemble_validate and ensemble_predict: the mean of an ensemble's members'
predictions of one volume."""

from dacapo_core import logs, provenance
from dacapo_core.ensemble import average
from dacapo_core.stages import AverageStage

logs.to_file(snakemake.log[0])
stage = AverageStage.model_validate(snakemake.params.stage)
average(
    list(stage.members.values()),
    snakemake.output[0],
    stage.dtype,
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
)
provenance.stamp_job(snakemake.output[0], snakemake, stage.members)
