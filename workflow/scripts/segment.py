"""Rule segment: seamless blockwise watershed with the selected (or pinned) parameters."""

import logging

from dacapo_core import arrays, logs
from dacapo_core.config import ApplyConfig, FragmentOptions
from dacapo_core.postprocess import segment_blockwise
from dacapo_core.select import apply_choice

logs.to_file(snakemake.log[0])
entry = ApplyConfig.model_validate(snakemake.params.entry)
choice = apply_choice(
    entry,
    snakemake.params.criterion,
    best=snakemake.input.get("best"),
    scores=snakemake.input.get("scores"),
)
logging.getLogger("segment").info("apply choice: %s", choice)
params = choice["parameters"]
segment_blockwise(
    snakemake.input.prediction,
    snakemake.output.segmentation,
    threshold=params["threshold"],
    merge_function=params["merge_function"],
    min_size=params["min_size"],
    block_shape=arrays.open_array(snakemake.input.prediction).data.chunksize[1:],
    num_workers=entry.num_workers,
    frags_path=snakemake.output.fragments,
    graph_dir=snakemake.output.graph,
    options=FragmentOptions.model_validate(snakemake.params.fragments),
    log_dir=f"{snakemake.log[0]}.workers",
)
