# Apply a run to a target volume: blockwise prediction with daisy workers inside
# the job's allocation, from the checkpoint the selection chose (or the config pins).


rule predict:
    input:
        checkpoint=predict_checkpoint,
        data=lambda w: container(apply_entry(w).input),
    output:
        directory(apply(PREDICTION)),
    wildcard_constraints:
        run=TRAINED_RUNS,  # ensembles: ensemble_predict (ensemble.smk)
    params:
        stage=predict_stage,
    log:
        "logs/predict/{run}/{target}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/predict.py"
