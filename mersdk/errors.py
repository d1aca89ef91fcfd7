"""One exception hierarchy for everything mersdk raises on purpose.

Callers catch ``MersdkError`` for any of them; the subclasses say what went wrong. Several also
derive from the matching built-in (``ValueError``, ``FileNotFoundError``) so generic handlers work.
"""

from __future__ import annotations


class MersdkError(Exception):
    """Base class of every error mersdk raises on purpose."""


class AudioError(MersdkError, ValueError):
    """The audio could not be used: unreadable, corrupt, wrong type or out of range."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio path does not exist."""


class AudioDecodeError(AudioError):
    """The file exists but is not audio that can be decoded (corrupt, truncated, unknown format)."""


class AudioTooShortError(AudioError):
    """The audio is shorter than the documented minimum (``MIN_DURATION_S``)."""


class AudioTooLongError(AudioError):
    """The audio is longer than the ``max_duration_s`` the Recognizer was given."""


class InvalidAudioError(AudioError):
    """The samples are unusable: NaN/Inf, wrong dtype or shape, or no ``sample_rate`` given."""


class LyricsError(MersdkError, ValueError):
    """The lyrics could not be used (unreadable file, over the length limit, wrong type)."""


class UsageError(MersdkError, ValueError):
    """An option or argument that cannot work as given (the command line exits with status 2)."""


class CheckpointError(MersdkError):
    """A model checkpoint is missing, corrupt, or made for another version or config."""


class BackendUnavailableError(MersdkError, RuntimeError):
    """The requested backend or device cannot run here; the message says why."""


class InvalidOptionError(MersdkError, ValueError):
    """An option is out of range or of the wrong type (``window_s``, ``hop_s``, ``batch_size``, ...)."""
