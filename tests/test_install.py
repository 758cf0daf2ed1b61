"""The lock is the whole environment: `make venv` runs `uv pip sync` on requirements/lock.txt
and dev.txt, which installs exactly those pins without resolving, so a dependency missing
from them is silently missing from every fresh venv (pip used to add it on its own)."""

import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, Version]:
    """Name -> pinned version of every line of lock.txt and dev.txt."""
    out = {}
    for name in ("lock.txt", "dev.txt"):
        for line in (ROOT / "requirements" / name).read_text().splitlines():
            text = line.split("#")[0].strip()
            if text:
                req = Requirement(text)
                (spec,) = req.specifier
                assert spec.operator == "==", f"{name}: {text} is not an exact pin"
                out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def applies(req: Requirement, extras: Iterable[str]) -> bool:
    """Whether req holds here, for the package installed with these extras."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in (*extras, ""))


def unpinned(pinned: dict[str, Version], roots: list[Requirement]) -> list[str]:
    """Requirements reachable from roots and from every pin (as installed in this venv)
    that no pin satisfies, following extras."""
    todo = [(req, ()) for req in roots] + [(Requirement(name), ()) for name in pinned]
    seen, bad = set(), []
    while todo:
        req, parent_extras = todo.pop()
        name = canonicalize_name(req.name)
        if not applies(req, parent_extras) or (name, *sorted(req.extras)) in seen:
            continue
        seen.add((name, *sorted(req.extras)))
        if name not in pinned or not req.specifier.contains(pinned[name], prereleases=True):
            bad.append(str(req))
            continue
        try:  # a venv older than the lock lacks some pins: follow what is there
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        todo += [(Requirement(r), tuple(req.extras)) for r in requires]
    return bad


def test_lock_pins_every_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = [Requirement(r) for r in project["dependencies"]]
    assert unpinned(pins(), roots) == []


def test_a_missing_dependency_is_found():
    pinned = pins()
    del pinned["setuptools"]  # torch needs it; pip freeze leaves it out of a lock
    assert "setuptools>=77.0.3" in unpinned(pinned, [])
