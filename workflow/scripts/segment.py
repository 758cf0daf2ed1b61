"""Rule segment: agglomerate an apply target's region graph with the chosen (or
pinned) parameters, or cluster it by mutex watershed, then relabel its fragments
blockwise."""

from dacapo_core import logs, provenance
from dacapo_core.segment import segment_fragments
from dacapo_core.stages import segment_stage

logs.to_file(snakemake.log[0])
segment_fragments(
    snakemake.input.fragments,
    snakemake.input.graph,
    snakemake.output[0],
    segment_stage(snakemake.params.stage),
    num_workers=snakemake.threads,
    log_dir=f"{snakemake.log[0]}.workers",
)
provenance.stamp_job(
    snakemake.output[0],
    snakemake,
    {"fragments": snakemake.input.fragments, "graph": snakemake.input.graph},
)
