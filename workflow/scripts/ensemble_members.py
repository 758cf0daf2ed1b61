"""Checkpoint ensemble_members: the iteration each member of an ensemble uses (its own
selection)."""

from dacapo_core import arrays, logs
from dacapo_core.select import member_iterations

logs.to_file(snakemake.log[0])
best = dict(zip(snakemake.params.members, snakemake.input, strict=True))
arrays.write_json(snakemake.output[0], member_iterations(snakemake.params.criterion, best))
