"""The base of every config model, apart from the config module: block workers
unpickle the fragment options without building the whole schema (a worker's
start-up, issue 19)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors, not silently ignored. Validators are built on first
    use: a process that only reads a config's values never pays for them."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
