# Apply a run to a target volume: blockwise prediction, then seamless blockwise
# segmentation, both with daisy workers inside the job's allocation.


rule predict:
    input:
        unpack(apply_selection(parameters=False)),
        checkpoints=apply_checkpoints,
        data=lambda w: container(apply_entry(w).input),
    output:
        directory("results/{run}/apply/{target}.zarr/prediction"),
    params:
        dtype=lambda w: run_of(w).run.prediction_dtype,
        entry=lambda w: apply_entry(w).model_dump(mode="json"),
        raw=lambda w: array(apply_entry(w).input, "raw"),
        criterion=lambda w: run_of(w).run.criterion,
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


rule segment:
    input:
        unpack(apply_selection(parameters=True)),
        prediction="results/{run}/apply/{target}.zarr/prediction",
    output:
        segmentation=directory("results/{run}/apply/{target}.zarr/segmentation"),
        fragments=directory("results/{run}/apply/{target}.zarr/fragments"),
        graph=directory("results/{run}/apply/{target}.zarr.graph"),
    params:
        entry=lambda w: apply_entry(w).model_dump(mode="json"),
        criterion=lambda w: run_of(w).run.criterion,
        fragments=lambda w: run_of(w).run.post_processor.fragments.model_dump(mode="json"),
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
