"""Rule predict: blockwise prediction of an apply target with the selected (or pinned) model."""

from funlib.geometry import Coordinate

from dacapo_core import arrays, logs
from dacapo_core.config import ApplyConfig
from dacapo_core.predict import predict_blockwise
from dacapo_core.select import apply_choice, checkpoint_of

logs.to_file(snakemake.log[0])
entry = ApplyConfig.model_validate(snakemake.params.entry)
choice = apply_choice(
    entry, snakemake.params.criterion, best=snakemake.input.get("best"), parameters=False
)
dims = arrays.open_array(snakemake.params.raw).voxel_size.dims
predict_blockwise(
    checkpoint_of(snakemake.input.checkpoints, choice["iteration"]),
    snakemake.params.raw,
    snakemake.output[0],
    roi=arrays.parse_roi(entry.roi) if entry.roi else None,
    num_workers=entry.num_workers,
    block_shape=Coordinate(entry.blocks(dims)),
    log_dir=f"{snakemake.log[0]}.workers",
    dtype=snakemake.params.dtype,
)
