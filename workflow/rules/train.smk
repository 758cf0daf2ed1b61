# Training as a chain of chunks: checkpoint {it} starts from the previous one.
# Only training-relevant config is a param, so post-processing changes never retrain.


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint="results/{run}/checkpoints/{it}.pt",
        stats="results/{run}/training_stats/{it}.json",
    params:
        training=lambda w: dconfig.training_view(run_of(w), DATASETS),
        snapshots="results/{run}/snapshots",
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
