"""Rules prepare_fragments, fragments_superblock, edges_superblock and
publish_fragments: an apply target's fragments and region graph (one shard per
superblock), superblock by superblock."""

from dacapo_core import arrays, blockwise, layout, logs, provenance
from dacapo_core.config import FragmentOptions
from dacapo_core.segment.blockwise import (
    edges_part,
    fragments_part,
    fragments_plan,
    prepare_fragments,
)
from dacapo_core.superblocks import write_done

logs.to_file(snakemake.log[0])
rule = snakemake.rule
prediction = snakemake.input.prediction
names = {"run": snakemake.wildcards.run, "target": snakemake.wildcards.target}
staged = [
    arrays.staging(layout.path(layout.apply(pattern), **names))
    for pattern in (layout.FRAGMENTS, layout.GRAPH)
]
if rule == "prepare_fragments":
    chunks = arrays.open_array(prediction).data.chunksize[1:]
    options = FragmentOptions.model_validate(snakemake.params.stage)
    superblock = snakemake.params.superblock_shape
    prepare_fragments(prediction, *staged, None, chunks, options, superblock)
    write_done(snakemake.output[0], rule)
elif rule in ("fragments_superblock", "edges_superblock"):
    sb = snakemake.wildcards.sb
    plan = fragments_plan(staged[0])
    step = fragments_part if rule == "fragments_superblock" else edges_part
    stage = rule.removesuffix("_superblock")
    part = plan.roi_of(plan.parse(sb))
    workers = f"{snakemake.log[0]}.workers"
    step(prediction, *staged, part, f"{stage}-{sb}", snakemake.threads, workers)
    write_done(snakemake.output[0], rule, superblock=sb)
else:  # publish_fragments
    blockwise.publish(snakemake.output.fragments, snakemake.output.graph)
    provenance.stamp_job(snakemake.output.fragments, snakemake, {"prediction": prediction})
