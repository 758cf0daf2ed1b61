# Seamless blockwise segmentation of a prediction (a validation dataset's or an
# apply target's): fragments and region graph once, then agglomeration and
# relabelling with the chosen parameters.


rule fragments:
    input:
        prediction=PREDICTION,
    output:
        fragments=directory(FRAGMENTS),
        graph=directory(GRAPH),
    params:
        stage=fragment_stage,
    log:
        "logs/fragments/{run}/{volume}.log",
    threads: 2
    priority: VALIDATION_PRIORITY
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/fragments.py"


rule segment:
    input:
        unpack(segment_inputs),
    output:
        directory(apply(SEGMENTATION)),
    params:
        stage=agglomerate_stage,
    log:
        "logs/segment/{run}/{target}.log",
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/segment.py"
