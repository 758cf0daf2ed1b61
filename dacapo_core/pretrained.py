"""Starting a run from a model file (``start: {path: FILE}``).

The file is a BioImage.IO model package (a ``.zip``, or the ``rdf.yaml`` of an unpacked
one) with PyTorch state-dict weights, or a PyTorch file: a dacapo-flow checkpoint
(``{"model": state_dict, ...}``), ``{"state_dict": ...}`` or a bare state dict.
Which of its tensors fit the run's network is decided in ``train.init_from``.

``check`` reads only a package's description (no torch), so a config check stops on
a TorchScript-only package before any job; ``load_state_dict`` reads the weights.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

#: names of a package's description, in the order they are looked for
DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")


class StartError(UserError):
    """A start file that cannot initialise a network: one line naming it."""


def _description_name(names: list[str]) -> str | None:
    top = [n for n in names if "/" not in n]
    for wanted in DESCRIPTIONS:
        for name in top:
            if name == wanted or name.endswith(f".{wanted}"):
                return name
    return None


def _read_package(path: Path) -> tuple[dict[str, Any], Any] | None:
    """A package's description and a reader of its files (name -> bytes); None when
    ``path`` is no package."""
    if path.name.endswith(".yaml"):
        folder = path.parent
        return yaml.safe_load(path.read_text()), lambda name: (folder / name).read_bytes()
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        name = _description_name(archive.namelist())
        if name is None:  # torch.save writes zip files too: no description, no package
            return None
        rdf = yaml.safe_load(archive.read(name))

    def read(member: str) -> bytes:
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)

    return rdf, read


def _state_dict_source(path: Path, rdf: Any) -> str:
    """The package's state-dict weights file; StartError for a package without one."""
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise StartError(f"{path}: not a BioImage.IO model description")
    weights = rdf.get("weights") or {}
    entry = weights.get("pytorch_state_dict")
    if not entry:
        formats = ", ".join(sorted(weights)) or "none"
        if "torchscript" in weights:
            raise StartError(
                f"{path}: TorchScript-only package (weights: {formats}): a start needs "
                "pytorch_state_dict weights"
            )
        raise StartError(f"{path}: no pytorch_state_dict weights (weights: {formats})")
    return str(entry["source"])


def check(path: str | Path) -> None:
    """The file exists and, if it is a package, has state-dict weights (no torch)."""
    path = Path(path)
    if not path.is_file():
        raise StartError(f"{path}: file not found")
    package = _read_package(path)
    if package is not None:
        _state_dict_source(path, package[0])


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """The network weights of a start file, on the CPU (tensors only: no pickled code)."""
    import torch

    path = Path(path)
    check(path)
    package = _read_package(path)
    if package is not None:
        rdf, read = package
        data: Any = io.BytesIO(read(_state_dict_source(path, rdf)))
    else:
        data = path
    try:
        state = torch.load(data, map_location="cpu", weights_only=True)
    except Exception as e:  # a TorchScript archive, a pickle with code, no torch file at all
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StartError(f"{path}: not a PyTorch state dict or checkpoint ({first})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not (isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values())):
        raise StartError(f"{path}: no state dict of tensors in it")
    return state
