"""Rule best_predictions: predict a validation dataset again with each selected
checkpoint (one per distinct iteration in best.json)."""

from pathlib import Path

from dacapo_core import arrays, logs
from dacapo_core.predict import predict_blockwise
from dacapo_core.select import checkpoint_of

logs.to_file(snakemake.log[0])
best = arrays.read_json(snakemake.input.best)
for iteration in sorted({choice["iteration"] for choice in best.values()}):
    predict_blockwise(
        checkpoint_of(snakemake.input.checkpoints, iteration),
        snakemake.params.raw,
        str(Path(snakemake.output[0]) / f"{iteration}.zarr/prediction"),
        roi=arrays.open_array(snakemake.params.gt).roi,
        num_workers=snakemake.threads,
        log_dir=f"{snakemake.log[0]}.workers",
        dtype=snakemake.params.dtype,
    )
