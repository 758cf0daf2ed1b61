"""Rules threshold_class, components_class and argmax_classes: an apply target's class
prediction post-processed blockwise with the chosen (or default) parameters."""

from funlib.geometry import Coordinate

from dacapo_core import logs, provenance
from dacapo_core.postprocess import argmax_blockwise, components_blockwise, threshold_blockwise

logs.to_file(snakemake.log[0])
rule, stage = snakemake.rule, snakemake.params.stage
out = snakemake.output[0]
source = snakemake.input.get("prediction") or snakemake.input.mask
# voxels: the blockwise functions turn them into world units themselves
common = {"block_shape": Coordinate(stage["block_shape"]), "num_workers": snakemake.threads}
common["log_dir"] = f"{snakemake.log[0]}.workers"
if rule == "threshold_class":
    threshold_blockwise(source, out, stage["name"], stage["threshold"], **common)
elif rule == "components_class":
    components_blockwise(source, out, stage["min_size"], **common)
else:  # argmax_classes
    argmax_blockwise(source, out, **common)
run = snakemake.wildcards.run
provenance.stamp(
    out,
    provenance.record(run, snakemake.config["config_hashes"][run], stage, {"source": source}),
)
