"""Rule validate_score: fragments + region graph once, then score every parameter set."""

from funlib.geometry import Coordinate

from dacapo_core import arrays, logs
from dacapo_core.config import WatershedConfig
from dacapo_core.validate import sweep

logs.to_file(snakemake.log[0])
prediction = snakemake.input.prediction
result = sweep(
    prediction,
    snakemake.params.gt,
    snakemake.output.fragments,
    snakemake.output.graph,
    snakemake.output.segmentation,
    WatershedConfig.model_validate(snakemake.params.post_processor),
    snakemake.params.criterion,
    block_shape=Coordinate(arrays.open_array(prediction).data.chunksize[1:]),
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
)
arrays.write_json(snakemake.output.scores, result)
