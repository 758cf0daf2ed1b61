# Validation of checkpoint {it}: one blockwise prediction per dataset, its fragments
# and region graph (rule fragments, segment.smk), then a cheap sweep of the
# post-processing grid on that graph.


rule validate_predict:
    input:
        checkpoint=CHECKPOINT,
        data=lambda w: container(w.dataset),
    output:
        keep_or_temp(directory(validation(PREDICTION))),
    wildcard_constraints:
        run=TRAINED_RUNS,  # ensembles: ensemble_validate (ensemble.smk)
    params:
        stage=validate_predict_stage,
    log:
        "logs/validate_predict/{run}/{it}/{dataset}.log",
    threads: 2
    priority: VALIDATION_PRIORITY
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/predict.py"


rule validate_score:
    input:
        fragments=validation(FRAGMENTS),
        graph=validation(GRAPH),
    output:
        scores=DATASET_SCORES,
        segmentation=directory(validation(SEGMENTATION)),
    wildcard_constraints:
        run=AFFINITY_RUNS,  # class runs: validate_classes (classes.smk)
    params:
        stage=score_stage,
    log:
        "logs/validate_score/{run}/{it}/{dataset}.log",
    threads: 2
    priority: VALIDATION_PRIORITY
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/validate_score.py"


rule validation_scores:
    input:
        lambda w: [
            path(DATASET_SCORES, run=w.run, it=w.it, dataset=d)
            for d in run_of(w).run.datasplit.validate_
        ],
    output:
        SCORES,
    log:
        "logs/validation_scores/{run}/{it}.log",
    localrule: True
    priority: VALIDATION_PRIORITY
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/validation_scores.py"
