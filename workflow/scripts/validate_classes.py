"""Rule validate_classes: per-class scores of a class run's validation prediction."""

from dacapo_core import arrays, logs, provenance
from dacapo_core.class_validate import score_classes
from dacapo_core.stages import ClassScoreStage

logs.to_file(snakemake.log[0])
result = score_classes(
    snakemake.input.prediction, ClassScoreStage.model_validate(snakemake.params.stage)
)
run = snakemake.wildcards.run
found = provenance.record(
    run,
    snakemake.config["config_hashes"][run],
    snakemake.params.stage,
    {"prediction": snakemake.input.prediction},
)
arrays.write_json(snakemake.output[0], {**result, provenance.KEY: found})
