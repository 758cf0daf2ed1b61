# The demo's synthetic dataset; real experiments bring their own zarr volumes.


if EXPERIMENT.demo is not None and EXPERIMENT.demo.kind == "cells":

    rule make_demo_data:
        output:
            directory(EXPERIMENT.demo.container),
        params:
            seed=EXPERIMENT.seed,
            voxel_size=EXPERIMENT.demo.voxel_size,
        log:
            "logs/make_demo_data.log",
        threads: 1
        resources:
            mem_mb=by_attempt(2000),
            runtime=by_attempt(10),
        conda:
            "../../envs/dacapo-flow.yaml"
        script:
            "../scripts/make_demo_data.py"


if EXPERIMENT.demo is not None and EXPERIMENT.demo.kind == "organelles":

    rule make_organelle_data:
        output:
            directory(EXPERIMENT.demo.container),
        params:
            seed=EXPERIMENT.seed,
            voxel_size=EXPERIMENT.demo.voxel_size,
        log:
            "logs/make_organelle_data.log",
        threads: 1
        resources:
            mem_mb=by_attempt(2000),
            runtime=by_attempt(10),
        conda:
            "../../envs/dacapo-flow.yaml"
        script:
            "../scripts/make_demo_data.py"


rule describe_run:
    output:
        RUN_JSON,
    params:
        run=lambda w: run_record(w.run)["run"],
        datasets=lambda w: run_record(w.run)["datasets"],
    log:
        "logs/describe_run/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/describe_run.py"
