# Figures for `snakemake --report report.html`.


rule plot_loss:
    input:
        lambda w: [path(TRAINING_STATS, run=w.run, it=it) for it in run_of(w).run.iterations()],
    output:
        report(
            figure("loss"),
            caption="../report/loss.rst",
            category="Training",
            subcategory="{run}",
        ),
    log:
        "logs/plot_loss/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_loss.py"


rule plot_scores:
    input:
        scores=validation_scores,
        best=BEST,
    output:
        report(
            figure("scores"),
            caption="../report/scores.rst",
            category="Validation",
            subcategory="{run}",
        ),
    wildcard_constraints:
        run=AFFINITY_RUNS,  # class runs: plot_class_scores
    log:
        "logs/plot_scores/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_scores.py"


rule plot_thresholds:
    input:
        scores=validation_scores,
        best=BEST,
    output:
        report(
            figure("thresholds"),
            caption="../report/thresholds.rst",
            category="Validation",
            subcategory="{run}",
        ),
    wildcard_constraints:
        run=AFFINITY_RUNS,  # class runs: plot_class_thresholds
    params:
        criterion=lambda w: run_of(w).run.criterion,
    log:
        "logs/plot_thresholds/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_thresholds.py"


rule plot_slices:
    input:
        best=BEST,
        scores=validation_scores,
        targets=lambda w: [
            path(apply(SEGMENTATION), run=w.run, target=t) for r, t in APPLY if r == w.run
        ],
        kept=lambda w: best_predictions(w.run),
    output:
        report(
            figure("slices"),
            caption="../report/slices.rst",
            category="Examples",
            subcategory="{run}",
        ),
    wildcard_constraints:
        run=AFFINITY_RUNS,  # class runs: no slices yet
    params:
        criterion=lambda w: run_of(w).run.criterion,
        validate=lambda w: {n: array(n, "raw") for n in run_of(w).run.datasplit.validate_},
        apply=lambda w: {t: array(a.input, "raw") for (r, t), a in APPLY.items() if r == w.run},
    log:
        "logs/plot_slices/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_slices.py"


# Class runs: the same figures (scores, thresholds), a line or a panel per class.
rule plot_class_scores:
    input:
        scores=validation_scores,
        best=BEST,
    output:
        report(
            figure("scores"),
            caption="../report/class_scores.rst",
            category="Validation",
            subcategory="{run}",
        ),
    wildcard_constraints:
        run=CLASS_RUNS,
    params:
        criterion=lambda w: run_of(w).run.criterion,
        classes=lambda w: list(run_of(w).run.task.classes),
    log:
        "logs/plot_class_scores/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_class.py"


rule plot_class_thresholds:
    input:
        scores=validation_scores,
        best=BEST,
    output:
        report(
            figure("thresholds"),
            caption="../report/class_thresholds.rst",
            category="Validation",
            subcategory="{run}",
        ),
    wildcard_constraints:
        run=CLASS_RUNS,
    params:
        criterion=lambda w: run_of(w).run.criterion,
        classes=lambda w: list(run_of(w).run.task.classes),
    log:
        "logs/plot_class_thresholds/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_class.py"
