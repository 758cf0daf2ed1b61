"""Rule validation_scores: every parameter set x dataset x criterion of iteration {it}."""

from pathlib import Path

from dacapo_core import arrays, logs, provenance

logs.to_file(snakemake.log[0])
run = snakemake.wildcards.run
datasets = {Path(p).name.removesuffix(".scores.json"): p for p in snakemake.input}
arrays.write_json(
    snakemake.output[0],
    {
        "iteration": int(snakemake.wildcards.it),
        "datasets": {
            name: provenance.contents(arrays.read_json(p)) for name, p in datasets.items()
        },
        provenance.KEY: provenance.record(
            run, snakemake.config["config_hashes"][run], None, datasets
        ),
    },
)
