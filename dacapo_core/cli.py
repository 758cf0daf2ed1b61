"""``dacapo-flow``: each workflow step by hand, without Snakemake.

User mistakes (bad config, missing file: a UserError) and failed blocks end with
one line on stderr and exit status 2 or 1; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from funlib.geometry import Coordinate

from . import arrays, profiles, tta
from .blockwise import BlockwiseError
from .errors import UserError

if TYPE_CHECKING:
    from .segment.fragments import FragmentOptions


def _roi(text: str | None):
    return None if text is None else arrays.parse_roi(text)


def cmd_import(args: argparse.Namespace) -> None:
    from .importer import import_volume

    array = import_volume(args.src, args.out, args.voxel_size, args.key, args.offset)
    print(f"{args.out}: {tuple(array.shape)} {array.dtype}, ROI {arrays.format_roi(array.roi)}")


def cmd_predict(args: argparse.Namespace) -> None:
    from .predict import predict_blockwise

    predict_blockwise(
        args.checkpoint,
        args.input,
        args.out,
        _roi(args.roi),
        args.workers,
        Coordinate(args.block_shape) if args.block_shape else None,
        args.device,
        dtype=args.dtype,
        superblock_shape=args.superblock_shape,
        augmentation=args.test_time_augmentation,
    )


def _fragment_options(args: argparse.Namespace) -> FragmentOptions:
    """The segment command's fragment options; a bad value is one line naming its flag."""
    from pydantic import ValidationError

    from .config import FragmentOptions

    try:
        return FragmentOptions(
            method=args.fragments, seed_distance=args.seed_distance, context=args.context
        )
    except ValidationError as e:
        first = e.errors()[0]
        raise UserError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None


def cmd_segment(args: argparse.Namespace) -> None:
    from .segment import segment_blockwise

    segment_blockwise(
        args.affinities,
        args.out,
        args.threshold,
        args.merge_function,
        args.min_size,
        _roi(args.roi),
        args.block_shape,
        args.workers,
        options=_fragment_options(args),
        superblock_shape=args.superblock_shape,
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate
    from .sections import per_section

    seg = arrays.open_array(args.segmentation)
    gt = arrays.open_array(args.gt)
    if seg.voxel_size != gt.voxel_size:
        raise arrays.DataError(
            f"{args.segmentation}: voxel size {tuple(seg.voxel_size)} differs from "
            f"{args.gt}'s {tuple(gt.voxel_size)}"
        )
    roi = seg.roi.intersect(gt.roi)
    if roi.empty:
        raise arrays.DataError(f"{args.segmentation} and {args.gt} do not overlap")
    labels = [arrays.read(seg, roi), arrays.read(gt, roi)]
    if args.per_section and roi.dims != 3:
        raise arrays.DataError(f"{args.gt}: --per-section needs 3D arrays (a stack of sections)")
    if args.per_section:
        labels = [per_section(x) for x in labels]
    print(json.dumps(evaluate(*labels), indent=2, sort_keys=True))


def cmd_check(args: argparse.Namespace) -> None:
    from . import config, preflight

    cfg = config.load(args.config)
    preflight.check(cfg)
    print(f"{args.config}: ok ({len(cfg.resolved_runs())} runs, {len(cfg.apply)} targets)")


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end the viewer cleanly. SIGINT is set explicitly: a
    viewer started from a script's background job or under nohup inherits it ignored,
    and Ctrl-C would do nothing."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)  # raises KeyboardInterrupt


def cmd_view(args: argparse.Namespace) -> None:
    """Only the URL goes to stdout (scripts read it); messages go to stderr."""
    import logging
    import webbrowser

    import neuroglancer

    from . import view

    logging.basicConfig(format="%(levelname)s: %(message)s")
    logging.getLogger(view.__name__).setLevel(logging.INFO)
    following = args.target is None and args.iteration is None
    if following:
        viewer = view.serve(args.bind)
    else:
        viewer = view.start(args.run, args.target, args.iteration, args.bind)
    url = viewer.get_viewer_url()
    _stop_on_signals()
    try:  # from the URL on: a user may press Ctrl-C as soon as it is printed
        print(url, flush=True)
        if not args.no_browser:
            webbrowser.open(url)
        if following:
            view.follow(viewer, args.run)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        neuroglancer.server.stop()
        print("viewer stopped", file=sys.stderr)


def _ask(option: str, hint: str) -> str:
    """A value the command line left out, asked for where someone can answer."""
    if not sys.stdin.isatty():
        raise profiles.ProfileError(f"{option} is required (no terminal to ask on)")
    return input(f"{option} ({hint}): ").strip()


def cmd_profile(args: argparse.Namespace) -> None:
    """Says what it wrote (stdout), and what it replaced if --force was needed."""
    partition, account = args.partition, args.account
    if partition is None:
        partition = _ask("--partition", "your default partition, `sinfo -s`")
        account = account or _ask("--account", "empty if the cluster has no accounting") or None
    dest = Path(args.dest) if args.dest else profiles.user_profile_dir(args.name)
    replaced = (dest / "config.yaml").exists()
    written = profiles.install(partition, account, dest, args.force)
    done = "replaced" if replaced else "installed"
    kept = f"; the previous one is {written}.bak" if replaced else ""
    print(f"{done} {written} (partition {partition}, account {account or 'none'}){kept}")
    named = args.name if args.dest is None else dest
    print(f"now, in the repository: snakemake --profile {named} [--configfile CONFIG]")


def cmd_unlock(args: argparse.Namespace) -> None:
    from .locks import remove_stale

    for lock in remove_stale(args.workdir):
        print(f"removed stale lock {lock}", file=sys.stderr)


def cmd_provenance(args: argparse.Namespace) -> None:
    from .provenance import explain

    print("\n".join(explain(args.path, args.verify)))


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export

    out = export(args.run, args.criterion, args.out, author=args.author, license=args.license)
    print(out)


def cmd_schema(args: argparse.Namespace) -> None:
    from .config import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dacapo-flow", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import", help="turn an .npz/.tif/.h5 volume into a zarr array")
    s.add_argument("src")
    s.add_argument("--out", required=True, help="CONTAINER.zarr/DATASET")
    s.add_argument("--voxel-size", type=int, nargs="+", required=True)
    s.add_argument("--offset", type=int, nargs="+", help="world units (default 0)")
    s.add_argument("--key", help="array name inside the file (default: the first)")
    s.set_defaults(func=cmd_import)

    blockwise = argparse.ArgumentParser(add_help=False)
    blockwise.add_argument("--roi", help='world units, "[z0:z1,y0:y1,x0:x1]"')
    blockwise.add_argument("--workers", type=int, default=2)
    blockwise.add_argument("--block-shape", type=int, nargs="+", metavar="N")
    blockwise.add_argument(
        "--superblock-shape",
        type=int,
        nargs="+",
        metavar="N",
        help="voxels, whole blocks: one superblock after the other, memory bounded by one",
    )

    s = sub.add_parser("predict", parents=[blockwise], help="blockwise prediction")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--input", required=True, help="raw: CONTAINER.zarr/DATASET")
    s.add_argument("--out", required=True, help="CONTAINER.zarr/DATASET")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument(
        "--dtype", default="float32", choices=["float32", "uint8"], help="uint8: steps of 1/255"
    )
    s.add_argument(
        "--test-time-augmentation",
        default="none",
        choices=get_args(tta.Mode),
        help="average over mirrored (and transposed) views of the input",
    )
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("segment", parents=[blockwise], help="seamless blockwise watershed")
    s.add_argument("--affinities", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--threshold", type=float, required=True)
    s.add_argument("--merge-function", default="mean", help="mean or hist_quant_Q")
    s.add_argument("--min-size", type=int, default=0, help="merge smaller fragments (voxels) first")
    s.add_argument("--fragments", default="seeded", choices=["seeded", "waterz"])
    s.add_argument(
        "--seed-distance", type=int, default=3, help="seeded: minimal seed spacing (voxels)"
    )
    s.add_argument(
        "--context", type=int, default=16, help="voxels read around each block for its fragments"
    )
    s.set_defaults(func=cmd_segment)

    s = sub.add_parser("evaluate", help="VOI / adapted Rand scores as JSON")
    s.add_argument("--segmentation", required=True)
    s.add_argument("--gt", required=True)
    s.add_argument(
        "--per-section",
        action="store_true",
        help="objects are per z section (a label in two sections is two objects)",
    )
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("check", help="validate a config and the data it points at")
    s.add_argument("config")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser(
        "view",
        help="neuroglancer on a run's results (Ctrl-C stops it)",
        description="Serve a run's results in neuroglancer and print the URL (alone on stdout). "
        "Without --target or --iteration it follows the best validation: it waits for the "
        "first selection and switches to each new best once its arrays are written. Layers "
        "are named DATASET/ARRAY, one group per validation dataset (only the first visible at "
        "start) or TARGET/ARRAY for an apply target.",
    )
    s.add_argument("run", help="results/RUN (data paths resolve against its workdir, ../..)")
    s.add_argument("--target", help="an apply target (default: follow the best validation)")
    s.add_argument("--iteration", type=int, help="a validated iteration (default: the best)")
    s.add_argument("--no-browser", action="store_true", help="only print the URL")
    s.add_argument(
        "--bind", default="127.0.0.1", help="address to serve on (else warned: no authentication)"
    )
    s.set_defaults(func=cmd_view)

    s = sub.add_parser("profile", help="install a Snakemake profile: `--profile slurm` works")
    actions = s.add_subparsers(dest="action", required=True)
    s = actions.add_parser(
        "install",
        help="the project's SLURM profile, with your partition and account, as a named profile",
        description="Copy profiles/slurm/config.yaml, with your partition and account filled "
        "in, to $XDG_CONFIG_HOME/snakemake/NAME (default ~/.config/snakemake/slurm), where "
        "`snakemake --profile NAME` finds it from any directory. An existing profile there is "
        "not overwritten without --force. Asks for the partition and account when run in a "
        "terminal without --partition.",
    )
    s.add_argument("name", choices=["slurm"], help="the profile (and the name it gets)")
    s.add_argument("--partition", help="default partition for jobs (`sinfo -s`)")
    s.add_argument("--account", help="account, on clusters with accounting")
    s.add_argument("--dest", help="install here instead (a profile directory)")
    s.add_argument("--force", action="store_true", help="replace an existing profile")
    s.set_defaults(func=cmd_profile)

    s = sub.add_parser(
        "unlock",
        help="remove Snakemake's lock left by a killed run (never while one runs there)",
    )
    s.add_argument("workdir", nargs="?", default=".", help="the workflow's working directory")
    s.set_defaults(func=cmd_unlock)

    s = sub.add_parser(
        "provenance",
        help="where an output came from: its checkpoint, run.json and input data",
        description="Print the chain from an output (zarr array, JSON file or checkpoint) back "
        "to its config and data: each output it was made from, the checkpoints (iteration, "
        "sha256, compared with the file) and each run.json's config hash.",
    )
    s.add_argument("path", help="e.g. results/RUN/apply/TARGET.zarr/segmentation")
    s.add_argument(
        "--verify",
        action="store_true",
        help="fail if a checkpoint's sha256 differs from the record",
    )
    s.set_defaults(func=cmd_provenance)

    s = sub.add_parser(
        "export",
        help="a run's selected checkpoint as a BioImage.IO model package (.zip)",
        description="Write the checkpoint best.json selects for --criterion as a BioImage.IO "
        "model package: state-dict weights with their architecture source, TorchScript "
        "weights, axes with voxel size, the training's intensity scaling, a test input and "
        "output, and the chosen post-processing and scores in its README. Offline.",
    )
    s.add_argument("run", help="results/RUN (data paths resolve against its workdir, ../..)")
    s.add_argument("--criterion", default="voi", help="which selection (default voi)")
    s.add_argument("--out", required=True, help="FILE.zip")
    s.add_argument("--author", help="the package's author (default: your user name)")
    s.add_argument("--license", default="CC-BY-4.0", help="SPDX id (default CC-BY-4.0)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("schema", help="print the config's JSON schema")
    s.set_defaults(func=cmd_schema)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"dacapo-flow {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BlockwiseError as e:
        print(f"dacapo-flow {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
