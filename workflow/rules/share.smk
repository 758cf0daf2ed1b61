# On request, not part of `all`: a run's model to share, and its curves in TensorBoard.
#   snakemake results/RUN/export/voi.bioimageio.zip   (any criterion of best.json)
#   snakemake tensorboard_all                         (every run; or results/RUN/tensorboard)
from dacapo_core.config import CRITERIA
from dacapo_core.layout import EXPORT, TENSORBOARD


rule export:
    input:
        run=RUN_JSON,
        best=BEST,
        checkpoints=checkpoints_of_run,
        scores=validation_scores,
        data=export_data,
    output:
        EXPORT,
    wildcard_constraints:
        criterion="|".join(CRITERIA),
    log:
        "logs/export/{run}/{criterion}.log",
    resources:
        mem_mb=4000,
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/export.py"


rule tensorboard:
    input:
        stats=training_stats_of_run,
        scores=validation_scores,
    output:
        directory(TENSORBOARD),
    log:
        "logs/tensorboard/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/tensorboard.py"


rule tensorboard_all:
    input:
        expand(TENSORBOARD, run=RUNS),
    default_target: False
    localrule: True
