# Training as a chain of chunks: checkpoint {it} starts from the previous one.
# Only training-relevant config is a param, so post-processing changes never retrain.


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=CHECKPOINT,
        stats=TRAINING_STATS,
    params:
        stage=train_stage,
    log:
        "logs/train/{run}/{it}.log",
    threads: 2
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/train.py"
