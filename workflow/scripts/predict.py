"""Rules predict and validate_predict: blockwise prediction with one checkpoint."""

from dacapo_core import logs
from dacapo_core.predict import predict
from dacapo_core.stages import PredictStage

logs.to_file(snakemake.log[0])
predict(
    snakemake.input.checkpoint,
    snakemake.output[0],
    PredictStage.model_validate(snakemake.params.stage),
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
)
