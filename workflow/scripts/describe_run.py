"""Rule describe_run: the resolved run config, for provenance."""

from dacapo_core import logs
from dacapo_core.arrays import write_json

logs.to_file(snakemake.log[0])
write_json(
    snakemake.output[0], {"run": snakemake.params.run, "datasets": snakemake.params.datasets}
)
