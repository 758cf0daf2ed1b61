"""Rule validate_score: score every parameter set on a prediction's region graph."""

from dacapo_core import arrays, logs, provenance
from dacapo_core.stages import ScoreStage
from dacapo_core.validate import score

logs.to_file(snakemake.log[0])
result = score(
    snakemake.input.fragments,
    snakemake.input.graph,
    snakemake.output.segmentation,
    ScoreStage.model_validate(snakemake.params.stage),
)
run = snakemake.wildcards.run
found = provenance.record(
    run,
    snakemake.config["config_hashes"][run],
    snakemake.params.stage,
    {"fragments": snakemake.input.fragments, "graph": snakemake.input.graph},
)
provenance.stamp(snakemake.output.segmentation, found)
arrays.write_json(snakemake.output.scores, {**result, provenance.KEY: found})
