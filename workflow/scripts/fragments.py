"""Rule fragments: fragments and region graph of a prediction, blockwise."""

from dacapo_core import logs, provenance
from dacapo_core.config import FragmentOptions
from dacapo_core.segment import fragment_prediction

logs.to_file(snakemake.log[0])
fragment_prediction(
    snakemake.input.prediction,
    snakemake.output.fragments,
    snakemake.output.graph,
    FragmentOptions.model_validate(snakemake.params.stage),
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
)
provenance.stamp_job(
    snakemake.output.fragments, snakemake, {"prediction": snakemake.input.prediction}
)
