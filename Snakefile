# dacapo-flow: train -> validate -> select -> predict -> segment, per run.
# The config is loaded and validated in workflow/rules/common.smk; each stage
# has its own rule file. `snakemake --cores 2` (no --configfile) runs the demo.


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/classes.smk"
include: "workflow/rules/superblocks.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/share.smk"


rule all:
    input:
        all_targets(),
    default_target: True
