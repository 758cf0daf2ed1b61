# Validation of checkpoint {it}: one blockwise prediction per dataset, then a
# cheap sweep of the post-processing grid on its region graph.


rule validate_predict:
    input:
        checkpoint="results/{run}/checkpoints/{it}.pt",
        data=lambda w: container(w.dataset),
    output:
        keep_or_temp(directory("results/{run}/validation/{it}/{dataset}.zarr/prediction")),
    params:
        dtype=lambda w: run_of(w).run.prediction_dtype,
        raw=lambda w: array(w.dataset, "raw"),
        gt=lambda w: array(w.dataset, "gt"),
    log:
        "logs/validate_predict/{run}/{it}/{dataset}.log",
    threads: 2
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/validate_predict.py"


rule validate_score:
    input:
        prediction="results/{run}/validation/{it}/{dataset}.zarr/prediction",
    output:
        scores="results/{run}/validation/{it}/{dataset}.scores.json",
        fragments=directory("results/{run}/validation/{it}/{dataset}.zarr/fragments"),
        segmentation=directory("results/{run}/validation/{it}/{dataset}.zarr/segmentation"),
        graph=directory("results/{run}/validation/{it}/{dataset}.zarr.graph"),
    params:
        gt=lambda w: array(w.dataset, "gt"),
        post_processor=lambda w: run_of(w).run.post_processor.model_dump(mode="json"),
        criterion=lambda w: run_of(w).run.criterion,
    log:
        "logs/validate_score/{run}/{it}/{dataset}.log",
    threads: 2
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/validate_score.py"


rule validation_scores:
    input:
        lambda w: expand(
            "results/{{run}}/validation/{{it}}/{dataset}.scores.json",
            dataset=run_of(w).run.datasplit.validate_,
        ),
    output:
        "results/{run}/validation/{it}/scores.json",
    log:
        "logs/validation_scores/{run}/{it}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/validation_scores.py"
