"""Rule best_predictions: predict a validation dataset again with each selected
checkpoint (one per distinct iteration in best.json)."""

from dacapo_core import arrays, layout, logs, provenance
from dacapo_core.predict import predict
from dacapo_core.select import checkpoint_of
from dacapo_core.stages import PredictStage

logs.to_file(snakemake.log[0])
stage = PredictStage.model_validate(snakemake.params.stage)
run, dataset = snakemake.wildcards.run, snakemake.wildcards.dataset
best = provenance.contents(arrays.read_json(snakemake.input.best))
for iteration in sorted({choice["iteration"] for choice in best.values()}):
    checkpoint = checkpoint_of(snakemake.input.checkpoints, iteration)
    out = layout.path(layout.BEST_PREDICTION, run=run, dataset=dataset, it=iteration)
    predict(
        checkpoint,
        out,
        stage,
        num_workers=snakemake.threads,
        log_dir=f"{snakemake.log[0]}.workers",
    )
    found = provenance.record(
        run,
        snakemake.config["config_hashes"][run],
        snakemake.params.stage,
        {"raw": stage.raw},
        made_from=checkpoint,
    )
    provenance.stamp(out, found)
