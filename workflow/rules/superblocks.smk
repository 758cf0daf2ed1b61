# An apply target of several superblocks (its `superblock_shape`): the stages of
# predict.smk and segment.smk, one job per superblock (and per octree chunk).
# For each staged array one job creates it whole (`prepare_*`), superblock jobs
# write their disjoint chunks and a small done-file, and a last job publishes it
# under its final name (`publish_*`, which the rules for one superblock make
# otherwise). Creating and publishing touch metadata only: they run where
# Snakemake runs (`localrule`), not as cluster jobs that wait in the queue.
# Killed, a superblock job reruns only its unfinished blocks.
# Trained runs only: an ensemble's target is one superblock for now (and may share
# its name with a member's target cut into superblocks).


ruleorder: publish_prediction > predict
ruleorder: publish_fragments > fragments
ruleorder: publish_segmentation > segment


rule prepare_prediction:
    input:
        checkpoint=predict_checkpoint,
        data=lambda w: container(apply_entry(w).input),
    output:
        path(PREPARED, run="{run}", target="{target}", step="predict"),
    params:
        stage=predict_stage,
        prediction=lambda w: path(apply(PREDICTION), run=w.run, target=w.target),
    log:
        "logs/superblocks/{run}/{target}/prepare_prediction.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_predict.py"


rule predict_superblock:
    input:
        checkpoint=predict_checkpoint,
        prepared=path(PREPARED, run="{run}", target="{target}", step="predict"),
    output:
        temp(path(SUPERBLOCK_DONE, run="{run}", target="{target}", step="predict", sb="{sb}")),
    params:
        stage=predict_stage,
        prediction=lambda w: path(apply(PREDICTION), run=w.run, target=w.target),
        superblock_shape=lambda w: apply_entry(w).superblock_shape,
    log:
        "logs/superblocks/{run}/{target}/predict/{sb}.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_predict.py"


rule publish_prediction:
    input:
        superblock_done("predict"),
        checkpoint=predict_checkpoint,
    output:
        directory(apply(PREDICTION)),
    params:
        stage=predict_stage,
    log:
        "logs/superblocks/{run}/{target}/publish_prediction.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_predict.py"


rule prepare_fragments:
    input:
        prediction=apply(PREDICTION),
    output:
        path(PREPARED, run="{run}", target="{target}", step="fragments"),
    params:
        stage=fragment_stage,
        superblock_shape=lambda w: apply_entry(w).superblock_shape,
    log:
        "logs/superblocks/{run}/{target}/prepare_fragments.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_fragments.py"


rule fragments_superblock:
    input:
        prediction=apply(PREDICTION),
        prepared=path(PREPARED, run="{run}", target="{target}", step="fragments"),
    output:
        temp(path(SUPERBLOCK_DONE, run="{run}", target="{target}", step="fragments", sb="{sb}")),
    log:
        "logs/superblocks/{run}/{target}/fragments/{sb}.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_fragments.py"


rule edges_superblock:
    input:
        fragments_behind,
        prediction=apply(PREDICTION),
    output:
        temp(path(SUPERBLOCK_DONE, run="{run}", target="{target}", step="edges", sb="{sb}")),
    log:
        "logs/superblocks/{run}/{target}/edges/{sb}.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_fragments.py"


rule publish_fragments:
    input:
        superblock_done("edges"),
        prediction=apply(PREDICTION),
    output:
        fragments=directory(apply(FRAGMENTS)),
        graph=directory(apply(GRAPH)),
    params:
        stage=fragment_stage,
        superblock_shape=lambda w: apply_entry(w).superblock_shape,
    log:
        "logs/superblocks/{run}/{target}/publish_fragments.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_fragments.py"


rule agglomerate_chunk:
    input:
        unpack(octree_inputs),
    output:
        OCTREE_RESULT,
    params:
        stage=agglomerate_stage,
    log:
        "logs/superblocks/{run}/{target}/agglomerate/{level}/{chunk}.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_segment.py"


rule label_chunk:
    input:
        unpack(label_inputs),
    output:
        OCTREE_LABELS,
    params:
        stage=agglomerate_stage,
    log:
        "logs/superblocks/{run}/{target}/labels/{level}/{chunk}.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    resources:
        mem_mb=by_attempt(4000),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_segment.py"


rule prepare_segmentation:
    input:
        unpack(segment_inputs),
    output:
        path(PREPARED, run="{run}", target="{target}", step="segment"),
    params:
        stage=agglomerate_stage,
    log:
        "logs/superblocks/{run}/{target}/prepare_segmentation.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_segment.py"


rule relabel_superblock:
    input:
        unpack(segment_inputs),
        prepared=path(PREPARED, run="{run}", target="{target}", step="segment"),
        labels=lambda w: path(OCTREE_LABELS, run=w.run, target=w.target, level=0, chunk=w.sb),
    output:
        temp(path(SUPERBLOCK_DONE, run="{run}", target="{target}", step="relabel", sb="{sb}")),
    params:
        stage=agglomerate_stage,
    log:
        "logs/superblocks/{run}/{target}/relabel/{sb}.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    threads: lambda w: apply_entry(w).num_workers
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_segment.py"


rule publish_segmentation:
    input:
        superblock_done("relabel"),
        unpack(segment_inputs),
    output:
        directory(apply(SEGMENTATION)),
    params:
        stage=agglomerate_stage,
    log:
        "logs/superblocks/{run}/{target}/publish_segmentation.log",
    wildcard_constraints:
        run=TRAINED_RUNS,
        target=SUPERBLOCK_TARGETS,
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/superblock_segment.py"
