"""Rule export: the checkpoint best.json selects for {criterion}, as a BioImage.IO package."""

from pathlib import Path

from dacapo_core import logs
from dacapo_core.export import export

logs.to_file(snakemake.log[0])
export(
    Path(snakemake.input.run).parent,
    snakemake.wildcards.criterion,
    snakemake.output[0],
    checkpoints=list(snakemake.input.checkpoints),
)
