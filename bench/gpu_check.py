"""Mixed precision on a GPU, and the default recipe trained for a GPU budget.

    python bench/gpu_check.py --out DIR [--train-seconds 330] [--fetchers 12]

Run where a CUDA GPU is (``bench/gpu_check.sh`` runs it with a GPU machine's own
Python and torch, this project's other packages carried as wheels). On the real-EM
benchmark of ``bench/defaults_learn.py`` (gala example, default recipe, seed 1):

1. training, ``trainer.mixed_precision`` off and on: iterations/s of the network
   step alone (one batch, already in memory: the limit) and of the training loop
   (gunpowder pipeline, ``--fetchers`` processes making batches ahead);
2. prediction, the same weights in float32 and bf16: ``predict_blockwise`` (one
   worker, 128^3 blocks) of a 256^3 volume, and one in-memory forward pass per
   window of the whole volume (the limit);
3. the default recipe trained in float32 for ``--train-seconds`` of wall time, in
   chunks of an interval chosen for about six checkpoints, written as a
   ``defaults_learn.py`` work directory would hold them.

``--seeds 1 2 3 --until 5000 --interval 2500`` instead trains the default recipe to
iteration ``--until`` once per seed in float32 and once in bf16 (bf16 could become
the default only if validation VOI over three repetitions showed no loss),
each run in its own work directory (``fp32_s1``, ``bf16_s1``, ...), packed as
soon as a seed's pair is done.

DIR receives ``gpu_check.json`` (the figures) and the checkpoints (weights only) as
tar files. Back on the workstation, ``gpu_check.py --unpack --out DIR --work WORKDIR``
makes WORKDIR a ``defaults_learn.py`` work directory holding them and prints the
``defaults_learn.py --keep WORKDIR ...`` command that validates, selects and tests
them on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from funlib.geometry import Coordinate
from scipy import ndimage

from dacapo_core import arrays, config, layout, train
from dacapo_core.batches import BatchMaker, batches
from dacapo_core.checkpoint import load_checkpoint, save_checkpoint
from dacapo_core.predict import Predictor, predict_blockwise
from dacapo_core.stages import TrainStage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from defaults_learn import experiment, import_gala  # noqa: E402

SEED = 1
CHECKPOINTS = 6  # about this many in the budget: each is validated on the CPU later
TAR_BYTES = 15 * 2**20  # files that come back from the device machine: at most 16 MiB


def default_stage(workdir: Path, seed: int = SEED, **trainer: Any) -> TrainStage:
    """The default recipe's training on the gala data in ``workdir`` (the current
    directory, as for the workflow's jobs), with ``trainer`` keys changed."""
    rois = import_gala(workdir)
    experiment_config = config.parse(experiment({}, 1000, 100, seed, rois["test"]))
    stage = TrainStage.of(experiment_config.resolved_runs()["r"], experiment_config.datasets)
    return stage.model_copy(update={"trainer": stage.trainer.model_copy(update=trainer)})


def synchronised(device: torch.device) -> float:
    """The clock once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def step_rate(stage: TrainStage, batch: Any, device: torch.device, seconds: float) -> float:
    """Iterations/s of ``train``'s optimisation step on one batch (no data pipeline)."""
    model = train.new_model(stage).to(device)
    optimizer = train.new_optimizer(stage.trainer, model)
    mixed = stage.trainer.mixed_precision
    for _ in range(3):  # warm-up: allocations, kernel choice
        train._step(model, stage.task, optimizer, batch, device, mixed)
    start, n = synchronised(device), 0
    while time.perf_counter() - start < seconds:
        train._step(model, stage.task, optimizer, batch, device, mixed)
        n += 1
    return n / (synchronised(device) - start)


def loop_rate(stage: TrainStage, device: torch.device, seconds: float) -> float:
    """Iterations/s of ``train``'s loop (batches made ahead by the fetchers), after
    its first 10 iterations (fetcher start-up)."""
    model = train.new_model(stage).to(device)
    optimizer = train.new_optimizer(stage.trainer, model)
    made = batches(stage, range(1, 10**6), stage.trainer.num_data_fetchers)
    start, n = 0.0, 0
    for it, batch in made:
        train._step(model, stage.task, optimizer, batch, device, stage.trainer.mixed_precision)
        if it == 10:
            start = synchronised(device)
        elif it > 10:
            n += 1
            if time.perf_counter() - start > seconds:
                break
    made.close()
    return n / (synchronised(device) - start)


def training_rates(workdir: Path, fetchers: int, seconds: float) -> dict[str, float]:
    """Step and loop iterations/s, float32 and bf16, each timed for ``seconds``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rates: dict[str, float] = {}
    maker = BatchMaker(default_stage(workdir))
    batch = maker(0)
    maker.close()
    for name, mixed in (("fp32", False), ("bf16", True)):
        stage = default_stage(workdir, mixed_precision=mixed, num_data_fetchers=fetchers)
        rates[f"step_{name}"] = step_rate(stage, batch, device, seconds)
        rates[f"loop_{name}"] = loop_rate(stage, device, seconds)
        print(
            f"training {name}: step {rates[f'step_{name}']:.1f} it/s, loop "
            f"{rates[f'loop_{name}']:.1f} it/s ({fetchers} fetchers)",
            flush=True,
        )
    return rates


def precision_checkpoints(stage: TrainStage, root: Path) -> dict[str, Path]:
    """A briefly trained checkpoint, as float32 and as bf16 (the same weights)."""
    fp32 = root / "fp32.pt"
    train.train(stage, 5, fp32)
    state = load_checkpoint(fp32)
    state["model_config"]["mixed_precision"] = True
    save_checkpoint(root / "bf16.pt", state)
    return {"fp32": fp32, "bf16": root / "bf16.pt"}


def prediction_rates(stage: TrainStage, root: Path, side: int, repeats: int) -> dict[str, float]:
    """Seconds of blockwise predict and of the in-memory forward passes (best of
    ``repeats``) of a ``side``^3 volume of smoothed noise."""
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.random((side,) * 3, dtype=np.float32), 2)
    data = (255 * (noise - noise.min()) / np.ptp(noise)).astype(np.uint8)
    raw_path = f"{root}/volume.zarr/raw"
    arrays.write_numpy(raw_path, data, Coordinate(10, 10, 10))
    raw = arrays.open_array(raw_path)
    seconds: dict[str, float] = {}
    for name, checkpoint in precision_checkpoints(stage, root).items():
        blockwise, memory = [], []
        for r in range(repeats):
            start = time.perf_counter()
            out = f"{root}/out_{name}_{r}.zarr/prediction"
            predict_blockwise(checkpoint, raw_path, out, num_workers=1, block_shape=(128,) * 3)
            blockwise.append(time.perf_counter() - start)
            predictor = Predictor.load(checkpoint, 3)
            device = predictor.device
            start = synchronised(device)
            predictor.predict(raw, raw.roi)
            memory.append(synchronised(device) - start)
        seconds[f"blockwise_{name}"], seconds[f"memory_{name}"] = min(blockwise), min(memory)
        print(
            f"predict {side}^3 {name}: blockwise {min(blockwise):.2f} s, in memory "
            f"{min(memory):.2f} s",
            flush=True,
        )
    return seconds


def train_for(
    workdir: Path,
    interval: int,
    fetchers: int,
    seconds: float = float("inf"),
    until: int | None = None,
    seed: int = SEED,
    **trainer: Any,
) -> dict[str, Any]:
    """The default recipe (``trainer`` keys changed) trained in chunks of ``interval``
    iterations, as the workflow's train jobs would (``fetchers`` making batches ahead:
    the data, not the GPU, limits it), until the next chunk would pass ``seconds`` or
    iteration ``until`` is reached."""
    stage = default_stage(workdir, seed, num_data_fetchers=fetchers, **trainer)
    start, it, previous = time.perf_counter(), 0, None
    while True:
        chunk_start = time.perf_counter()
        checkpoint = workdir / layout.path(layout.CHECKPOINT, run="r", it=it + interval)
        stats = workdir / layout.path(layout.TRAINING_STATS, run="r", it=it + interval)
        train.train(
            stage,
            it + interval,
            checkpoint,
            previous,
            stats,
            name="r",
            provenance={"made_by": "bench/gpu_check.py", "device": device_name()},
        )
        it, previous = it + interval, checkpoint
        elapsed = time.perf_counter() - start
        print(f"{workdir.name}: trained to {it} in {elapsed:.0f} s", flush=True)
        late = elapsed + (time.perf_counter() - chunk_start) > seconds
        if late or (until is not None and it >= until):
            return {"iterations": it, "interval": interval, "seconds": elapsed}


def pack(workdirs: list[Path], out: Path, prefix: str = "gpu_run") -> list[str]:
    """The runs' training statistics and their checkpoints' weights (no optimizer
    state: validation needs none) as tar files under TAR_BYTES each, each file under
    the name its work directory gives it, or under that directory's name when there
    are several."""
    files: list[tuple[Path, str]] = []
    for workdir in workdirs:
        run = workdir / "results/r"
        for path in run.rglob("*.pt"):
            state = load_checkpoint(path)
            save_checkpoint(path, {k: v for k, v in state.items() if k != "optimizer"})
        base = workdir if len(workdirs) == 1 else workdir.parent
        files += [
            (path, str(path.relative_to(base)))
            for path in sorted(run.rglob("*.json")) + sorted(run.rglob("*.pt"))
        ]
    groups: list[list[tuple[Path, str]]] = [[]]
    for path, arcname in files:
        if sum(p.stat().st_size for p, _ in groups[-1]) + path.stat().st_size > TAR_BYTES:
            groups.append([])
        groups[-1].append((path, arcname))
    names = [f"{prefix}_{i}.tar" for i in range(len(groups))]
    for name, group in zip(names, groups, strict=True):
        with tarfile.open(out / name, "w") as tar:
            for path, arcname in group:
                tar.add(path, arcname=arcname)
    return names


def precision_pair(
    root: Path, out: Path, seed: int, until: int, interval: int, fetchers: int
) -> dict[str, Any]:
    """The default recipe trained to ``until`` with ``seed`` in float32 and in bf16,
    in work directories ``fp32_s<seed>`` and ``bf16_s<seed>`` under ``root``, then
    packed together as ``gpu_s<seed>_<i>.tar`` in ``out``."""
    runs: dict[str, Any] = {}
    for name, mixed in (("fp32", False), ("bf16", True)):
        workdir = root / f"{name}_s{seed}"
        workdir.mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)
        runs[workdir.name] = train_for(
            workdir, interval, fetchers, until=until, seed=seed, mixed_precision=mixed
        )
    runs["tars"] = pack([root / name for name in runs], out, f"gpu_s{seed}")
    return runs


def unpack_run(workdir: Path, trained: dict[str, Any]) -> None:
    """The gala data imported into ``workdir``, which holds a run's unpacked
    checkpoints; those made newer than the data and each newer than the one before
    (as the workflow's train jobs leave them); the command that validates, selects
    and tests them."""
    import_gala(workdir)
    for it in range(trained["interval"], trained["iterations"] + 1, trained["interval"]):
        for template in (layout.CHECKPOINT, layout.TRAINING_STATS):
            (workdir / layout.path(template, run="r", it=it)).touch()
            time.sleep(0.01)
    print(
        f"python bench/defaults_learn.py --keep {workdir} --iterations "
        f"{trained['iterations']} --interval {trained['interval']}"
    )


def unpack(out: Path, root: Path) -> None:
    """On the workstation: ``out``'s tar files unpacked under ``root``, each run a
    ``defaults_learn.py`` work directory (see ``unpack_run``): ``root`` itself for
    the wall-budget run, ``root/<precision>_s<seed>`` for the repetitions."""
    result = json.loads((out / "gpu_check.json").read_text())
    for tar_path in sorted(out.glob("gpu_*.tar")):
        with tarfile.open(tar_path) as tar:
            tar.extractall(root, filter="data")
    if "trained" in result:
        unpack_run(root, result["trained"])
    for pair in result.get("repetitions", {}).values():
        for name, trained in pair.items():
            if name != "tars":
                unpack_run(root / name, trained)


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--unpack", action="store_true", help="on the workstation: see unpack")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_check"))
    parser.add_argument("--fetchers", type=int, default=12)
    parser.add_argument("--rate-seconds", type=float, default=12)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-seconds", type=float, default=330)
    parser.add_argument(
        "--interval", type=int, help="checkpoint interval; given: only step 3 (training) runs"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="only the precision repetitions")
    parser.add_argument("--until", type=int, default=5000, help="the repetitions' length")
    args = parser.parse_args()
    if args.unpack:
        unpack(args.out, args.work)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.work / "defaults_learn"
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # the datasets' paths are relative, as in the workflow's jobs
    result: dict[str, Any] = {"device": device_name(), "torch": torch.__version__}
    print(result, flush=True)

    def save() -> None:
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))

    def attempt(key: str, measure: Callable[[], Any]) -> None:
        """One part's figures, or its error: one device run must bring back the rest."""
        try:
            result[key] = measure()
        except Exception:
            result[key] = {"error": traceback.format_exc()}
            print(result[key]["error"], flush=True)
        save()

    if args.seeds:
        result["repetitions"] = {}
        for seed in args.seeds:  # saved after each seed: a run cut short brings back the rest
            result["repetitions"][seed] = precision_pair(
                args.work, args.out, seed, args.until, args.interval or 2500, args.fetchers
            )
            save()
        return

    if args.interval is None:
        attempt("training", lambda: training_rates(workdir, args.fetchers, args.rate_seconds))
        stage = default_stage(workdir)
        attempt("prediction", lambda: prediction_rates(stage, args.work, args.side, args.repeats))
        rate = result["training"].get("loop_fp32", 5.0)  # a guess if the rates failed
        args.interval = max(50, int(round(rate * args.train_seconds / CHECKPOINTS / 50)) * 50)
    result["trained"] = train_for(workdir, args.interval, args.fetchers, args.train_seconds)
    result["tars"] = pack([workdir], args.out)
    save()
    t, p = result.get("training", {}), result.get("prediction", {})
    if not t or not p or "error" in t or "error" in p:
        return
    print(f"\n{result['device']}, torch {result['torch']}: bf16 / fp32 ratios (>1: bf16 faster)")
    print(
        f"training step {t['step_bf16'] / t['step_fp32']:.2f}, "
        f"training loop {t['loop_bf16'] / t['loop_fp32']:.2f}"
    )
    print(
        f"blockwise predict {p['blockwise_fp32'] / p['blockwise_bf16']:.2f}, "
        f"in memory {p['memory_fp32'] / p['memory_bf16']:.2f}"
    )
    print(f"trained {result['trained']}")


if __name__ == "__main__":
    main()
