"""Deprecated alias of ``mersdk.export.cli`` (moved there; this name goes in the next release)."""

import warnings

from .export.cli import (
    cmd_engine,  # noqa: F401
    )

warnings.warn("mersdk.export_cli is deprecated; import mersdk.export.cli", DeprecationWarning, stacklevel=2)
