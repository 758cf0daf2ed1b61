"""Rule select: best iteration and parameters per criterion."""

from pathlib import Path

from dacapo_core import arrays, logs, provenance
from dacapo_core.select import select

logs.to_file(snakemake.log[0])
run = snakemake.wildcards.run
scores = {Path(p).parent.name: p for p in snakemake.input}  # validation/{it}/scores.json
found = provenance.record(run, snakemake.config["config_hashes"][run], None, scores)
arrays.write_json(
    snakemake.output[0], {**select(snakemake.input, snakemake.params.stable), provenance.KEY: found}
)
