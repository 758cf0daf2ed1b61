"""Rule describe_run: the resolved run config; its hash names it in every output's
provenance."""

from dacapo_core import logs, provenance
from dacapo_core.arrays import write_json

logs.to_file(snakemake.log[0])
run = {"run": snakemake.params.run, "datasets": snakemake.params.datasets}
found = provenance.record(snakemake.wildcards.run, provenance.config_hash(run))
write_json(snakemake.output[0], {**run, provenance.KEY: found})
