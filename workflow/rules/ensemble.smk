# Ensembles (apply entries naming several runs): validated, selected and applied as a
# run is, under results/ensembles/NAME, from the mean of the members' predictions, each
# member at its own selected iteration. These rules make the ensemble's predictions;
# fragments, scoring, selection, choice and segmentation are the runs' rules.


# The iteration each member uses: a checkpoint, so that the predictions below depend on
# the members' iterations, not on when their best.json files were written.
checkpoint ensemble_members:
    input:
        lambda w: [path(BEST, run=m) for m in ENSEMBLES[w.run]],
    output:
        MEMBERS,
    wildcard_constraints:
        run=ENSEMBLE_RUNS,
    params:
        members=lambda w: ENSEMBLES[w.run],
        criterion=lambda w: run_of(w).run.criterion,
    log:
        "logs/ensemble_members/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/ensemble_members.py"


# The ensemble's validation prediction of a dataset: the mean of its members' (kept
# beside their scores, or predicted again for viewing when they are temporary).
rule ensemble_validate:
    input:
        ensemble_validation_inputs,
    output:
        keep_or_temp(directory(validation(PREDICTION))),
    wildcard_constraints:
        run=ENSEMBLE_RUNS,
        it=str(ENSEMBLE_ITERATION),
    params:
        stage=ensemble_validation_stage,
    log:
        "logs/ensemble_validate/{run}/{it}/{dataset}.log",
    threads: 2
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/average.py"


# A member's prediction of an ensemble's target, with its own selected checkpoint.
rule ensemble_member_predict:
    input:
        checkpoint=member_checkpoint,
        data=lambda w: container(apply_entry(w).input),
    output:
        temp(directory(MEMBER_PREDICTION)),
    wildcard_constraints:
        run=ENSEMBLE_RUNS,
        member=MEMBER_RUNS,
    params:
        stage=member_predict_stage,
    log:
        "logs/ensemble_member_predict/{run}/{target}/{member}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/predict.py"


# The ensemble's prediction of a target: the mean of its members'.
rule ensemble_predict:
    input:
        lambda w: list(member_predictions(w).values()),
    output:
        directory(apply(PREDICTION)),
    wildcard_constraints:
        run=ENSEMBLE_RUNS,
    params:
        stage=ensemble_predict_stage,
    log:
        "logs/ensemble_predict/{run}/{target}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(120),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/average.py"
