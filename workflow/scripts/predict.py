"""Rules predict and validate_predict: blockwise prediction with one checkpoint."""

from dacapo_core import logs, provenance
from dacapo_core.predict import predict
from dacapo_core.stages import PredictStage

logs.to_file(snakemake.log[0])
stage = PredictStage.model_validate(snakemake.params.stage)
predict(
    snakemake.input.checkpoint,
    snakemake.output[0],
    stage,
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
)
provenance.stamp_job(
    snakemake.output[0], snakemake, {"raw": stage.raw}, made_from=snakemake.input.checkpoint
)
