"""Rule predict: blockwise prediction of an apply target with the selected checkpoint."""

from funlib.geometry import Coordinate

from dacapo_core import arrays, logs
from dacapo_core.config import ApplyConfig
from dacapo_core.predict import predict_blockwise
from dacapo_core.select import checkpoint_of

logs.to_file(snakemake.log[0])
entry = ApplyConfig.model_validate(snakemake.params.entry)
best = arrays.read_json(snakemake.input.best)[snakemake.params.criterion]
checkpoint = checkpoint_of(snakemake.input.checkpoints, entry.iteration or best["iteration"])
predict_blockwise(
    checkpoint,
    snakemake.params.raw,
    snakemake.output[0],
    roi=arrays.parse_roi(entry.roi) if entry.roi else None,
    num_workers=entry.num_workers,
    block_shape=Coordinate(entry.block_shape),
    log_dir=f"{snakemake.log[0]}.workers",
    dtype=snakemake.params.dtype,
)
