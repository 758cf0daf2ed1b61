"""Installing the project's SLURM profile where ``snakemake --profile slurm`` finds it.

Snakemake resolves a profile name that is not a path by looking for a directory
of that name in the current directory, then in ``$XDG_CONFIG_HOME/snakemake``
(``~/.config/snakemake`` when unset; platformdirs' user config dir) and
``/etc/xdg/snakemake``: the Snakemake SLURM docs put site profiles there. The
repository's ``profiles/slurm`` stays the template (and stays usable with
``--profile profiles/slurm``); the installed copy has the user's partition and
account filled in, so the plain command works (in the repository root, say).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UserError

#: the repository's profiles (an editable install: the package sits beside them)
TEMPLATES = Path(__file__).resolve().parents[1] / "profiles"
#: a SLURM partition or account name: also safe to write unquoted into YAML
NAME = re.compile(r"[A-Za-z0-9_.-]+")


class ProfileError(UserError):
    """A profile that cannot be installed as asked: one line, exit status 2."""


def user_profile_dir(name: str) -> Path:
    """Where Snakemake looks for a named profile of this user (platformdirs' rule)."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "snakemake" / name


def _checked(what: str, value: str) -> str:
    if not NAME.fullmatch(value):
        raise ProfileError(f"{what} {value!r}: expected letters, digits, '_', '.' or '-'")
    return value


def _set_line(text: str, pattern: str, line: str) -> str:
    """Replace the one template line matching ``pattern`` (kept indented, comment and
    all replaced); a template without it is a bug, not a user error."""
    text, count = re.subn(pattern, line, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise RuntimeError(f"profile template: no line matching {pattern!r}")
    return text


def render(template: str, partition: str, account: str | None) -> str:
    """The SLURM profile with the site's partition and (if given) account filled in;
    every other setting and comment as in the template."""
    text = _set_line(
        template,
        r"^(\s*)slurm_partition: \S+.*$",
        rf"\g<1>slurm_partition: {_checked('partition', partition)}",
    )
    if account is not None:
        text = _set_line(
            text,
            r"^(\s*)# slurm_account: \S+.*$",
            rf"\g<1>slurm_account: {_checked('account', account)}",
        )
    return text


def install(partition: str, account: str | None, dest: Path, force: bool = False) -> Path:
    """Write ``dest/config.yaml``; refuses an existing profile directory unless
    ``force`` (then the old config is kept as ``config.yaml.bak``). Returns the file."""
    if dest.exists() and any(dest.iterdir()) and not force:
        raise ProfileError(f"{dest} exists: not overwritten (--force replaces its config.yaml)")
    template = (TEMPLATES / "slurm" / "config.yaml").read_text()
    header = f"# installed by `dacapo-flow profile install slurm` from {TEMPLATES / 'slurm'}\n"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "config.yaml"
    if target.exists():
        target.replace(dest / "config.yaml.bak")
    target.write_text(header + render(template, partition, account))
    return target
