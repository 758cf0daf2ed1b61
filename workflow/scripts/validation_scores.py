"""Rule validation_scores: every parameter set x dataset x criterion of iteration {it}."""

from pathlib import Path

from dacapo_core import arrays, logs

logs.to_file(snakemake.log[0])
arrays.write_json(
    snakemake.output[0],
    {
        "iteration": int(snakemake.wildcards.it),
        "datasets": {
            Path(p).name.removesuffix(".scores.json"): arrays.read_json(p) for p in snakemake.input
        },
    },
)
