"""Snakemake's working-directory lock, after a crash.

Snakemake locks its working directory while it runs (``.snakemake/locks``). A
run killed with SIGKILL (or a lost login session) leaves the lock behind, and
the next run refuses to start until ``snakemake --unlock``. Unlocking while
another Snakemake still runs there would let two runs write the same files,
so a lock is removed only when no Snakemake process on this machine works in
that directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

LOCKS = Path(".snakemake/locks")


class LiveLockError(UserError):
    """The lock belongs to a Snakemake that is still running."""


def _workdir_of(pid: int, argv: list[str]) -> Path | None:
    """The working directory of a Snakemake process: ``--directory``/``-d`` if given,
    else its current directory; None if it is gone or not ours to read."""
    for flag in ("--directory", "-d"):
        if flag in argv[:-1]:
            base = Path(f"/proc/{pid}/cwd")
            try:
                return (base / argv[argv.index(flag) + 1]).resolve()
            except OSError:
                return None
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except OSError:
        return None


def _is_snakemake(argv: list[str]) -> bool:
    """Snakemake's console script or ``python -m snakemake``, not a job's script."""
    return any(Path(a).name == "snakemake" for a in argv[:2]) or argv[1:3] == ["-m", "snakemake"]


def running_in(workdir: str | Path) -> list[int]:
    """PIDs of Snakemake processes whose working directory is ``workdir``."""
    target = Path(workdir).resolve()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if _is_snakemake(argv) and _workdir_of(int(entry.name), argv) == target:
            pids.append(int(entry.name))
    return sorted(pids)


def remove_stale(workdir: str | Path) -> list[Path]:
    """Remove the locks of ``workdir`` if no Snakemake runs there; the removed files.

    Raises LiveLockError naming the processes when one does.
    """
    locks = sorted((Path(workdir) / LOCKS).glob("*.lock"))
    if not locks:
        return []
    pids = running_in(workdir)
    if pids:
        raise LiveLockError(
            f"{Path(workdir).resolve()}: Snakemake is running there (pid "
            f"{', '.join(map(str, pids))}); its lock is live, not removed"
        )
    for lock in locks:
        lock.unlink(missing_ok=True)
    return locks
