# The best iteration and post-processing parameters of a run, per criterion.


rule select:
    input:
        validation_scores,
    output:
        "results/{run}/best.json",
    log:
        "logs/select/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/select.py"
