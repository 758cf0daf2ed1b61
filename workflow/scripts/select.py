"""Rule select: best iteration and parameters per criterion."""

from dacapo_core import arrays, logs
from dacapo_core.select import load_scores, select_best

logs.to_file(snakemake.log[0])
arrays.write_json(snakemake.output[0], select_best(load_scores(snakemake.input)))
