"""mersdk: music emotion recognition from audio and lyrics.

    import mersdk
    rec = mersdk.Recognizer()
    print(rec.predict("song.flac", lyrics="song.lrc").to_dict())

Importing mersdk is light: PyTorch, transformers and the compiled extension load only when a
Recognizer is created (or ``mersdk.info()`` is asked for). ``Recognizer``, ``TrackAnalysis``,
``Segment`` and ``AnalysisStream`` are imported on first use; type checkers see them directly.

The library logs through the ``mersdk`` logger (and its children) and configures no handler
beyond a ``NullHandler``: the application decides what is shown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AudioDecodeError,
    AudioError,
    AudioFileNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
    BackendUnavailableError,
    CheckpointError,
    InvalidAudioError,
    InvalidOptionError,
    LyricsError,
    MersdkError,
)
from .results import BackendChoice, Prediction

if TYPE_CHECKING:
    from .recognizer import Recognizer
    from .timeline import AnalysisStream, Segment, TrackAnalysis

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AnalysisStream",
    "AudioDecodeError",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLongError",
    "AudioTooShortError",
    "BackendChoice",
    "BackendUnavailableError",
    "CheckpointError",
    "InvalidAudioError",
    "InvalidOptionError",
    "LyricsError",
    "MersdkError",
    "Prediction",
    "Recognizer",
    "Segment",
    "TrackAnalysis",
    "__version__",
    "info",
]

# public name -> module that defines it; imported on first use, since those modules load the
# compiled extension (and the backends, when a Recognizer is made, torch or onnxruntime)
_LAZY = {"Recognizer": "recognizer", "TrackAnalysis": "timeline", "Segment": "timeline", "AnalysisStream": "timeline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mersdk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def info() -> dict[str, Any]:
    """Version, build of the compiled extension and which backends can run here (and why not)."""
    from . import _ext, backends

    return {
        "mersdk": __version__,
        "build": _ext.build_info(),
        "backends": {k: ("available" if v is None else v) for k, v in backends.availability().items()},
    }
