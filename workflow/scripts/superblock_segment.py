"""Rules agglomerate_chunk, label_chunk, prepare_segmentation, relabel_superblock and
publish_segmentation: the agglomeration octree over an apply target's superblocks
(chunk jobs up, label jobs down), then relabelling superblock by superblock."""

from dacapo_core import arrays, blockwise, layout, logs, provenance
from dacapo_core.segment.blockwise import (
    fragments_plan,
    octree_of,
    prepare_segmentation,
    relabel_part,
)
from dacapo_core.segment.octree import agglomerate_chunk, label_chunk
from dacapo_core.stages import AgglomerateStage
from dacapo_core.superblocks import Superblocks, write_done

logs.to_file(snakemake.log[0])
rule = snakemake.rule
stage = AgglomerateStage.model_validate(snakemake.params.stage)
wildcards = snakemake.wildcards
names = {"run": wildcards.run, "target": wildcards.target}
fragments, graph, segmentation = (
    layout.path(layout.apply(pattern), **names)
    for pattern in (layout.FRAGMENTS, layout.GRAPH, layout.SEGMENTATION)
)
plan = fragments_plan(fragments)
tree = octree_of(graph, plan, layout.path(layout.OCTREE, **names))
if rule == "agglomerate_chunk":
    frags = arrays.open_array(fragments)
    chunk = Superblocks.parse(wildcards.chunk)
    agglomerate_chunk(tree, int(wildcards.level), chunk, frags.roi, frags.voxel_size, stage)
elif rule == "label_chunk":
    label_chunk(tree, int(wildcards.level), Superblocks.parse(wildcards.chunk), stage.threshold)
elif rule == "prepare_segmentation":
    prepare_segmentation(fragments, arrays.staging(segmentation), stage)
    write_done(snakemake.output[0], rule)
elif rule == "relabel_superblock":
    sb = wildcards.sb
    part = plan.roi_of(plan.parse(sb))
    staged = arrays.staging(segmentation)
    workers = f"{snakemake.log[0]}.workers"
    relabel_part(fragments, staged, tree, part, f"relabel-{sb}", snakemake.threads, workers)
    write_done(snakemake.output[0], rule, superblock=sb)
else:  # publish_segmentation
    blockwise.publish(segmentation)
    provenance.stamp_job(segmentation, snakemake, {"fragments": fragments, "graph": graph})
