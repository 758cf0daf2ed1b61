# Figures for `snakemake --report report.html`.


rule plot_loss:
    input:
        lambda w: expand(
            "results/{{run}}/training_stats/{it}.json", it=run_of(w).run.iterations()
        ),
    output:
        report(
            "results/{run}/report/loss.png",
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
        best="results/{run}/best.json",
    output:
        report(
            "results/{run}/report/scores.png",
            caption="../report/scores.rst",
            category="Validation",
            subcategory="{run}",
        ),
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
        best="results/{run}/best.json",
    output:
        report(
            "results/{run}/report/thresholds.png",
            caption="../report/thresholds.rst",
            category="Validation",
            subcategory="{run}",
        ),
    params:
        criterion=lambda w: run_of(w).run.criterion,
    log:
        "logs/plot_thresholds/{run}.log",
    localrule: True
    conda:
        "../../envs/dacapo-flow.yaml"
    script:
        "../scripts/plot_thresholds.py"
