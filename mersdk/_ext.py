"""The one place that imports the compiled extension ``mersdk._C``.

A missing extension (a pure-Python install) is tolerated and reported; a broken one (it exists but
fails to load) raises, because silently falling back would hide a real installation problem.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_C: ModuleType | None = None
IMPORT_ERROR: str | None = None

try:
    # import_module, not `from . import _C`: the latter turns a missing module into a plain
    # ImportError, indistinguishable from a broken one (a source checkout has no _C)
    _C = importlib.import_module("mersdk._C")
except ModuleNotFoundError as e:  # only "No module named 'mersdk._C'" is tolerated
    if e.name != "mersdk._C":
        raise
    _C = None
    IMPORT_ERROR = str(e)


def available() -> bool:
    return _C is not None


def build_info() -> dict:
    if _C is None:
        return {"extension": False, "reason": IMPORT_ERROR}
    return {"extension": True, **_C.build_info()}
