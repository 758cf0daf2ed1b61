"""Rules prepare_prediction, predict_superblock and publish_prediction: an apply
target's prediction created whole, predicted superblock by superblock, published."""

from dacapo_core import arrays, blockwise, logs, provenance
from dacapo_core.predict import predict_part, prepare_prediction
from dacapo_core.stages import PredictStage
from dacapo_core.superblocks import Superblocks, write_done

logs.to_file(snakemake.log[0])
stage = PredictStage.model_validate(snakemake.params.stage)
rule = snakemake.rule
if rule == "prepare_prediction":
    roi = arrays.parse_roi(stage.roi) if stage.roi else None
    prepare_prediction(
        snakemake.input.checkpoint,
        stage.raw,
        snakemake.params.prediction,
        roi,
        stage.block_shape,
        stage.dtype,
        stage.test_time_augmentation,
    )
    write_done(snakemake.output[0], rule)
elif rule == "predict_superblock":
    staged = arrays.open_array(arrays.staging(snakemake.params.prediction))
    vs = staged.voxel_size
    plan = Superblocks.plan(staged.roi, vs, stage.block_shape, snakemake.params.superblock_shape)
    sb = snakemake.wildcards.sb
    predict_part(
        snakemake.input.checkpoint,
        snakemake.params.prediction,
        plan.roi_of(plan.parse(sb)),
        f"predict-{sb}",
        snakemake.threads,
        log_dir=f"{snakemake.log[0]}.workers",
    )
    write_done(snakemake.output[0], rule, superblock=sb)
else:  # publish_prediction
    blockwise.publish(snakemake.output[0])
    provenance.stamp_job(
        snakemake.output[0], snakemake, {"raw": stage.raw}, made_from=snakemake.input.checkpoint
    )
