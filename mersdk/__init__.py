"""mersdk: music emotion recognition from audio and lyrics.

    import mersdk
    rec = mersdk.Recognizer()
    print(rec.predict("song.flac", lyrics="song.lrc").to_dict())

Importing mersdk is light: PyTorch, transformers and the compiled extension load only when a
Recognizer is created (or ``mersdk.info()`` is asked for).
"""

from __future__ import annotations

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
    LyricsError,
    MersdkError,
)
from .results import BackendChoice, Prediction

__all__ = [
    "__version__", "Recognizer", "Prediction", "BackendChoice", "info",
    "MersdkError", "AudioError", "AudioFileNotFoundError", "AudioDecodeError", "AudioTooShortError",
    "AudioTooLongError", "InvalidAudioError", "LyricsError", "CheckpointError", "BackendUnavailableError",
]


def __getattr__(name):
    # Recognizer pulls in NumPy-level modules only; backends import torch when created
    if name == "Recognizer":
        from .recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'mersdk' has no attribute {name!r}")


def info() -> dict:
    """Version, build of the compiled extension and which backends can run here (and why not)."""
    from . import _ext, backends

    return {
        "mersdk": __version__,
        "build": _ext.build_info(),
        "backends": {k: ("available" if v is None else v) for k, v in backends.availability().items()},
    }
