"""Rule validate_score: score every parameter set on a prediction's region graph."""

from dacapo_core import arrays, logs
from dacapo_core.stages import ScoreStage
from dacapo_core.validate import score

logs.to_file(snakemake.log[0])
result = score(
    snakemake.input.fragments,
    snakemake.input.graph,
    snakemake.output.segmentation,
    ScoreStage.model_validate(snakemake.params.stage),
)
arrays.write_json(snakemake.output.scores, result)
