"""Training throughput: the real training loop against a bare PyTorch loop.

    .venv/bin/python bench/train_throughput.py [--iterations 30] [--fetchers 0 1 2] [--lsds]

Printed, all measured in this run on this machine, for the demo network
(config/config.yaml) on the demo data:
- iterations/s of a bare PyTorch loop over in-memory tensors of the same shapes
  (same model, loss and optimizer): the limit;
- iterations/s of ``train.train`` (gunpowder pipeline + model) for each number of
  data fetcher processes, and its ratio to the limit (target >= 0.9);
- batches/s of the data pipeline alone (no network);
- peak RSS of this process and of its largest child (the fetchers).

With ``--lsds``, the pipeline and each ``train.train`` are measured again with the
task's auxiliary LSDs on (default sigma and downsampling), alternating with the
plain task, and the ratio lsds / plain is printed.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from dacapo_core import config, train
from dacapo_core.batches import KEYS, BatchMaker
from dacapo_core.demo import make_demo
from dacapo_core.stages import TrainStage
from dacapo_core.task import loss

REPO = Path(__file__).resolve().parents[1]


def demo_run(root: Path, fetchers: int, lsds: bool = False) -> TrainStage:
    """The demo's training with its data in ``root``, ``fetchers`` fetchers and the
    task's ``lsds``."""
    experiment = config.load(REPO / "config/config.yaml")
    datasets = {
        name: ds.model_copy(update={"container": str(root / "demo.zarr")})
        for name, ds in experiment.datasets.items()
    }
    stage = TrainStage.of(experiment.resolved_runs()["affs_unet"], datasets)
    trainer = stage.trainer.model_copy(update={"num_data_fetchers": fetchers})
    task = stage.task.model_copy(update={"lsds": lsds})
    return stage.model_copy(update={"trainer": trainer, "task": task})


def bare_loop(stage: TrainStage, batch, iterations: int) -> float:
    """Iterations/s with the batch's tensors already in memory: no data pipeline."""
    model = train.new_model(stage)
    optimizer = train.new_optimizer(stage.trainer, model)
    raw, target, weights = (
        torch.from_numpy(batch[k].data) for k in (KEYS.raw, KEYS.target, KEYS.weights)
    )
    start = time.perf_counter()
    for _ in range(iterations):
        optimizer.zero_grad()
        loss(stage.task, model.logits(raw), target, weights).backward()
        optimizer.step()
    return iterations / (time.perf_counter() - start)


def training_loop(stage: TrainStage, root: Path, n: int) -> float:
    """Iterations/s of train.train, from the per-iteration times it records.

    The first iterations (fetcher start-up, first allocations) are left out.
    """
    stats = train.train(stage, n + 5, root / f"{time.time_ns()}.pt")
    seconds = [s["seconds"] for s in stats["iterations"][5:]]
    return len(seconds) / sum(seconds)


def pipeline_alone(stage: TrainStage, n: int) -> tuple[float, object]:
    maker = BatchMaker(stage)
    maker(0)
    start = time.perf_counter()
    for i in range(1, n + 1):
        batch = maker(i)
    rate = n / (time.perf_counter() - start)
    maker.close()
    return rate, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--fetchers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lsds", action="store_true", help="also with the task's lsds on")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo(str(root / "demo.zarr"), seed=0)
        stage = demo_run(root, 0)
        shape = stage.architecture.input_shape
        print(f"demo network, input {shape}, batch size {stage.trainer.batch_size}")
        pipeline_rate, batch = pipeline_alone(stage, args.iterations)
        limit = bare_loop(stage, batch, args.iterations)
        print(f"bare PyTorch loop (limit)   {limit:6.2f} it/s")
        print(f"data pipeline alone         {pipeline_rate:6.2f} batches/s")
        if args.lsds:
            lsds_rate = pipeline_alone(demo_run(root, 0, lsds=True), args.iterations)[0]
            print(
                f"  with lsds                 {lsds_rate:6.2f} batches/s  lsds / plain "
                f"{lsds_rate / pipeline_rate:.2f}"
            )
        for fetchers in args.fetchers:
            rate = training_loop(demo_run(root, fetchers), root, args.iterations)
            print(
                f"train.train, {fetchers} fetcher(s)   {rate:6.2f} it/s  ratio {rate / limit:.2f}"
            )
            if args.lsds:
                lsds_rate = training_loop(demo_run(root, fetchers, True), root, args.iterations)
                print(
                    f"  with lsds                 {lsds_rate:6.2f} it/s  lsds / plain "
                    f"{lsds_rate / rate:.2f}"
                )
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {self_mb:.0f} MB, largest fetcher {child_mb:.0f} MB")


if __name__ == "__main__":
    main()
