"""Rule make_demo_data: the synthetic demo volume."""

from dacapo_core import logs
from dacapo_core.demo import make_demo

logs.to_file(snakemake.log[0])
make_demo(snakemake.output[0], snakemake.params.seed, snakemake.params.voxel_size)
