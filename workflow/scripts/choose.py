"""Checkpoint choose: the iteration and parameters an apply target uses."""

from dacapo_core import arrays, logs
from dacapo_core.select import apply_choice
from dacapo_core.stages import ChoiceStage

logs.to_file(snakemake.log[0])
choice = apply_choice(
    ChoiceStage.model_validate(snakemake.params.stage),
    best=snakemake.input.get("best"),
    scores=snakemake.input.get("scores"),
)
arrays.write_json(snakemake.output[0], choice)
