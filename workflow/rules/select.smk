# The best iteration and post-processing parameters of a run, per criterion.


rule select:
    input:
        validation_scores,
    output:
        report(
            "results/{run}/best.json",
            caption="../report/best.rst",
            category="Selection",
            subcategory="{run}",
        ),
    log:
        "logs/select/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/select.py"


# Only with keep_validation_predictions: false, where each validation prediction
# is deleted once scored: predict each selected iteration again, for viewing.
rule best_predictions:
    input:
        checkpoints=checkpoints_of_run,
        best="results/{run}/best.json",
        data=lambda w: container(w.dataset),
    output:
        directory("results/{run}/validation/best/{dataset}"),
    params:
        dtype=lambda w: run_of(w).run.prediction_dtype,
        raw=lambda w: array(w.dataset, "raw"),
        gt=lambda w: array(w.dataset, "gt"),
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
