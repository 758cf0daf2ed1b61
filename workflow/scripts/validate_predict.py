"""Rule validate_predict: predict the labelled ROI of a validation dataset."""

from dacapo_core import arrays, logs
from dacapo_core.predict import predict_blockwise

logs.to_file(snakemake.log[0])
predict_blockwise(
    snakemake.input.checkpoint,
    snakemake.params.raw,
    snakemake.output[0],
    roi=arrays.open_array(snakemake.params.gt).roi,
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
    dtype=snakemake.params.dtype,
)
