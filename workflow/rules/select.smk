# The best iteration and post-processing parameters of a run, per criterion.


rule select:
    input:
        validation_scores,
    output:
        report(
            BEST,
            caption="../report/best.rst",
            category="Selection",
            subcategory="{run}",
        ),
    params:
        stable=lambda w: run_of(w).run.selection == "stable",
    log:
        "logs/select/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/select.py"


# What an apply target uses: pinned values, else the selection. A checkpoint, so
# prediction depends on the chosen checkpoint file and segmentation on the chosen
# parameters, not on when best.json was last written.
checkpoint choose:
    input:
        unpack(choice_inputs),
    output:
        CHOICE,
    params:
        stage=lambda w: stage(choice_stage(w)),
    log:
        "logs/choose/{run}/{target}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/choose.py"


# Only with keep_validation_predictions: false, where each validation prediction
# is deleted once scored: predict each selected iteration again, for viewing.
rule best_predictions:
    input:
        checkpoints=checkpoints_of_run,
        best=BEST,
        data=lambda w: container(w.dataset),
    output:
        directory(BEST_PREDICTIONS),
    params:
        stage=validate_predict_stage,
    log:
        "logs/best_predictions/{run}/{dataset}.log",
    threads: 2
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/best_predictions.py"
