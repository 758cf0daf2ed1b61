"""Make bioimageio.spec 0.5.12 work with our pinned pydantic (2.14, pydantic-core 2.50).

Its wrap serializers of packaged files and weights call ``handler(value, info)``:
pydantic-core passes that second argument on as ``index_key``, which it now checks
(an int or a str), so describing or loading any model with files fails with
"'index_key' is expected to be an integer or a string". ``apply`` rewires those
serializers to call ``handler(value)`` (what pydantic documents); it changes nothing
else and does nothing where the library no longer has them. Import it before using
bioimageio.spec or bioimageio.core (``export`` does).
"""

from __future__ import annotations

from typing import Any

_FIXED = "_dacapo_flow_fixed"


class _Handler:
    """A wrap-serializer handler that drops the extra argument."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def __call__(self, value: Any, *_: Any) -> Any:
        return self.handler(value)


def _rewire(module: Any, name: str) -> None:
    function = getattr(module, name, None)
    if function is None or getattr(function, _FIXED, False):
        return
    original = type(function)(function.__code__, function.__globals__, name)
    alias = f"_dacapo_flow_original_{name}"
    function.__globals__[alias] = original
    function.__globals__["_DacapoFlowHandler"] = _Handler
    scope: dict[str, Any] = {}
    exec(  # the same function object (captured in the schemas) gets the new code
        f"def {name}(value, handler, info):\n"
        f"    return {alias}(value, _DacapoFlowHandler(handler), info)\n",
        function.__globals__,
        scope,
    )
    function.__code__ = scope[name].__code__
    setattr(function, _FIXED, True)


def apply() -> None:
    from bioimageio.spec._internal import io_packaging
    from bioimageio.spec.model import v0_4

    _rewire(io_packaging, "package_file_descr_serializer")
    _rewire(v0_4, "package_weights")  # v0_5 uses the same function
