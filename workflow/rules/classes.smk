# Class runs (distances, one_hot): per-class validation scores of a validation
# prediction, and an apply target's prediction post-processed with the chosen
# thresholds: a binary array per class, instances of instance classes, or argmax.


rule validate_classes:
    input:
        prediction=validation(PREDICTION),
    output:
        DATASET_SCORES,
    wildcard_constraints:
        run=CLASS_RUNS,
    params:
        stage=class_score_stage,
    log:
        "logs/validate_classes/{run}/{it}/{dataset}.log",
    threads: 1
    priority: VALIDATION_PRIORITY
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/validate_classes.py"


rule threshold_class:
    input:
        unpack(class_post_inputs),
    output:
        directory(apply(CLASS_MASK)),
    wildcard_constraints:
        run=CLASS_RUNS,
    params:
        stage=class_post_stage,
    log:
        "logs/threshold_class/{run}/{target}/{cls}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/postprocess_classes.py"


rule components_class:
    input:
        mask=apply(CLASS_MASK),
    output:
        directory(apply(CLASS_INSTANCES)),
    wildcard_constraints:
        run=CLASS_RUNS,
    params:
        stage=components_stage,
    log:
        "logs/components_class/{run}/{target}/{cls}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/postprocess_classes.py"


rule argmax_classes:
    input:
        prediction=apply(PREDICTION),
    output:
        directory(apply(ARGMAX)),
    wildcard_constraints:
        run=CLASS_RUNS,
    params:
        stage=argmax_stage,
    log:
        "logs/argmax_classes/{run}/{target}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/postprocess_classes.py"
