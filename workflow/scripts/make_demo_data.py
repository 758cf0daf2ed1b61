"""Rules make_demo_data and make_organelle_data: a synthetic demo volume."""

from dacapo_core import logs
from dacapo_core.demo import make_demo, make_organelle_demo

logs.to_file(snakemake.log[0])
make = make_organelle_demo if snakemake.rule == "make_organelle_data" else make_demo
make(snakemake.output[0], snakemake.params.seed, snakemake.params.voxel_size)
