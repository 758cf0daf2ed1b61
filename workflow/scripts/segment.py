"""Rule segment: seamless blockwise watershed at the selected (or pinned) threshold."""

from dacapo_core import arrays, logs
from dacapo_core.config import ApplyConfig, FragmentOptions
from dacapo_core.postprocess import segment_blockwise

logs.to_file(snakemake.log[0])
entry = ApplyConfig.model_validate(snakemake.params.entry)
best = arrays.read_json(snakemake.input.best)[snakemake.params.criterion]
segment_blockwise(
    snakemake.input.prediction,
    snakemake.output.segmentation,
    threshold=entry.threshold or best["parameters"]["threshold"],
    merge_function=best["parameters"]["merge_function"],
    min_size=best["parameters"]["min_size"],
    block_shape=arrays.open_array(snakemake.input.prediction).data.chunksize[1:],
    num_workers=entry.num_workers,
    frags_path=snakemake.output.fragments,
    graph_dir=snakemake.output.graph,
    options=FragmentOptions.model_validate(snakemake.params.fragments),
    log_dir=f"{snakemake.log[0]}.workers",
)
