"""Audio input: decode, validate, mix to mono and resample to the model's rate.

Accepted sources: a path (str or os.PathLike), a binary file object, ``bytes``, or a NumPy array
with ``sample_rate=`` given. Files are decoded by libsndfile through ``soundfile`` (WAV, FLAC,
OGG/Vorbis/Opus, MP3, AIFF, ...); resampling uses ``soxr``. Containers libsndfile cannot open
(AAC/M4A, ALAC, WMA, ...) are decoded by PyAV (its wheel bundles FFmpeg) when the optional extra
``mersdk[decoders]`` is installed; without it they raise ``AudioDecodeError`` naming the extra.

Arrays: float32/float64 are taken as is (nominal range [-1, 1]); int16, int32 and uint8 PCM are
scaled to [-1, 1]. Shape (n,) is mono; (n, channels) is soundfile's layout; (channels, n) with at
most 8 channels and fewer channels than samples is also accepted. Channels are averaged.

Limits: shorter than ``MIN_DURATION_S`` raises ``AudioTooShortError`` (the CNN needs that many
frames to give one audio token); sample rates outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] raise
``InvalidAudioError``; NaN or Inf samples raise ``InvalidAudioError``. Files are decoded block by
block and resampled as a stream, so a long file never holds more than its resampled mono signal
(16 kHz float32: 230 MB per hour); ``max_duration_s`` refuses longer files before decoding.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np

from . import _ext
from .errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
    InvalidAudioError,
)

MIN_DURATION_S = 0.5
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
_MAX_CHANNELS_FIRST = 8
_BLOCK_FRAMES = 1 << 18  # frames per decode block (about 5 s at 48 kHz)

AudioSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO, np.ndarray]


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples at ``sample_rate`` plus what was learned while loading them."""

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    peak: float
    rms: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def silent(self) -> bool:
        return self.peak == 0.0


def describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return f"array{source.shape}"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return getattr(source, "name", None) or type(source).__name__


def _stats(x: np.ndarray) -> tuple[float, float, int]:
    if _ext.available():
        return _ext._C.audio_stats(x)
    finite = np.isfinite(x)
    bad = int(x.size - np.count_nonzero(finite))
    y = x[finite] if bad else x
    if y.size == 0:
        return 0.0, 0.0, bad
    return float(np.max(np.abs(y))), float(np.sqrt(np.mean(y.astype(np.float64) ** 2))), bad


def _pcm_to_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:
        return (a.astype(np.float64) / 2147483648.0).astype(np.float32)
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    if a.dtype in (np.float32, np.float64, np.float16):
        return a.astype(np.float32, copy=False)
    raise InvalidAudioError(
        f"unsupported sample dtype {a.dtype}; use float32/float64 in [-1, 1] or int16/int32/uint8 PCM"
    )


def _to_mono(a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        return a
    if a.ndim != 2:
        raise InvalidAudioError(f"audio array must be 1-D (mono) or 2-D (multi-channel), got shape {a.shape}")
    if a.shape[0] <= _MAX_CHANNELS_FIRST and a.shape[0] < a.shape[1]:
        a = a.T  # (channels, n) -> (n, channels)
    return a.mean(axis=1, dtype=np.float32) if a.shape[1] > 1 else a[:, 0]


def _check_rate(sr) -> int:
    try:
        if isinstance(sr, (str, bytes, bool)):
            raise TypeError
        sr_int = int(sr)
    except (TypeError, ValueError, OverflowError):
        raise InvalidAudioError(f"sample_rate must be an integer number of Hz, got {sr!r}") from None
    if sr_int != sr or not MIN_SAMPLE_RATE <= sr_int <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"sample_rate {sr!r} is outside the supported range {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    return sr_int


check_sample_rate = _check_rate  # the public name


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.ascontiguousarray(x, dtype=np.float32)
    import soxr

    return np.ascontiguousarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def check_min_duration(frames: int, sample_rate: int, name: str) -> None:
    """``AudioTooShortError`` when ``frames`` at ``sample_rate`` is under ``MIN_DURATION_S``."""
    if frames / sample_rate < MIN_DURATION_S:
        raise AudioTooShortError(f"{name}: {frames / sample_rate:.3f} s of audio; the minimum is {MIN_DURATION_S} s")


def pcm_block_to_mono(block, channels: int, name: str = "block") -> np.ndarray:
    """One pushed PCM block -> mono float32: shape (frames,) when ``channels`` is 1, else (frames,
    channels) (interleaved, soundfile's layout); dtypes as for arrays; NaN/Inf refused."""
    a = np.asarray(block)
    if not ((a.ndim == 1 and channels == 1) or (a.ndim == 2 and a.shape[1] == channels)):
        layout = "(frames,)" if channels == 1 else f"(frames, {channels})"
        raise InvalidAudioError(f"{name}: a block of {channels}-channel audio has shape {layout}, got {a.shape}")
    x = _pcm_to_float(a)
    mono = np.ascontiguousarray(x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x)
    _, _, bad = _stats(mono)
    if bad:
        raise InvalidAudioError(f"{name}: {bad} of {mono.size} samples are NaN or Inf")
    return mono


def block_resampler(sr_in: int, sr_out: int):
    """``resample(mono_block, last=False) -> block at sr_out`` for a stream fed in pieces of any size;
    the output is the same however the input is cut (soxr keeps the filter state)."""
    if sr_in == sr_out:
        return lambda x, last=False: x
    import soxr

    stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
    return lambda x, last=False: np.ascontiguousarray(stream.resample_chunk(x, last=last), np.float32)


def _finish(x: np.ndarray, sr_in: int, sr_out: int, name: str) -> Audio:
    x = np.ascontiguousarray(x, dtype=np.float32)
    peak, rms, bad = _stats(x)
    if bad:
        raise InvalidAudioError(f"{name}: {bad} of {x.size} samples are NaN or Inf")
    check_min_duration(x.size, sr_in, name)
    y = _resample(x, sr_in, sr_out)
    return Audio(samples=y, sample_rate=sr_out, source_sample_rate=sr_in, peak=float(peak), rms=float(rms))


def load_array(a: np.ndarray, sample_rate, target_rate: int, name: str = "array") -> Audio:
    if sample_rate is None:
        raise InvalidAudioError(
            "a NumPy array has no sample rate: pass sample_rate=... (e.g. predict(x, sample_rate=44100))"
        )
    sr = _check_rate(sample_rate)
    a = np.asarray(a)
    if a.size == 0:
        raise AudioTooShortError(f"{name}: the array is empty; the minimum is {MIN_DURATION_S} s")
    return _finish(_to_mono(_pcm_to_float(a)), sr, target_rate, name)


class _NotForLibsndfile(AudioDecodeError):
    """libsndfile refused to open the source: the one case where PyAV may still decode it."""


def _open_checked(source):
    """Validate a path / bytes / file object and open it with soundfile; returns (SoundFile, name)."""
    import soundfile as sf

    name = describe(source)
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioDecodeError("<0 bytes>: empty input is not audio")
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise AudioFileNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            raise AudioDecodeError(f"{path}: is a directory, not an audio file")
        if os.path.getsize(path) == 0:
            raise AudioDecodeError(f"{path}: the file is empty (0 bytes)")
    try:
        return sf.SoundFile(source), name
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise _NotForLibsndfile(f"{name}: not a readable audio file ({e})") from None
    except OSError as e:
        raise AudioDecodeError(f"{name}: cannot open ({e})") from None


@dataclass
class StreamInfo:
    """Filled in while ``stream_file`` runs: what the decoder saw so far."""

    name: str
    source_sample_rate: int = 0
    frames_in: int = 0
    peak: float = 0.0
    sumsq: float = 0.0

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.sumsq / max(1, self.frames_in)))


def _account_block(info, mono: np.ndarray, name: str, sr: int, max_duration_s) -> None:
    """Checks and running statistics of one decoded mono block, shared by both decoders."""
    p, r, bad = _stats(mono)
    if bad:
        raise InvalidAudioError(f"{name}: {bad} decoded samples are NaN or Inf")
    info.peak, info.sumsq = max(info.peak, p), info.sumsq + r * r * mono.size
    info.frames_in += mono.size
    if max_duration_s is not None and info.frames_in / sr > max_duration_s:
        raise AudioTooLongError(f"{name}: longer than max_duration_s={max_duration_s:.0f} s")


def stream_file(source, target_rate: int, max_duration_s: float | None = None, info: StreamInfo | None = None):
    """Yield mono float32 blocks at ``target_rate`` while decoding block by block (bounded memory).

    libsndfile decodes what it can open; anything else goes to PyAV (FFmpeg) when the ``decoders``
    extra is installed, with the same checks and errors. Checks as it goes: NaN/Inf,
    ``max_duration_s``, decode errors. The minimum length is checked by the caller, which knows when
    the stream ended. ``info`` (optional) receives the running stats."""
    import soundfile as sf
    import soxr

    info = info if info is not None else StreamInfo(describe(source))
    try:
        f, name = _open_checked(source)
    except _NotForLibsndfile as e:
        yield from _stream_with_pyav(source, target_rate, max_duration_s, info, refused=e)
        return
    info.name = name
    with f:
        sr = _check_rate(f.samplerate)
        info.source_sample_rate = sr
        if max_duration_s is not None and f.frames > 0 and f.frames / sr > max_duration_s:
            raise AudioTooLongError(f"{name}: {f.frames / sr:.0f} s is longer than max_duration_s={max_duration_s:.0f} s")
        stream = None if sr == target_rate else soxr.ResampleStream(sr, target_rate, 1, dtype="float32", quality="HQ")
        while True:
            try:
                block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            except sf.LibsndfileError as e:
                raise AudioDecodeError(
                    f"{name}: decoding failed after {info.frames_in / sr:.1f} s ({e}); the file may be truncated or corrupt"
                ) from None
            last = len(block) < _BLOCK_FRAMES
            mono = np.ascontiguousarray(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0])
            _account_block(info, mono, name, sr, max_duration_s)
            out = stream.resample_chunk(mono, last=last) if stream else mono
            if out.size:
                yield np.ascontiguousarray(out, dtype=np.float32)
            if last:
                break
    if info.frames_in == 0:
        raise AudioDecodeError(f"{name}: contains no audio frames (empty or truncated file)")


def load_file(source, target_rate: int, max_duration_s: float | None = None) -> Audio:
    """Decode a path, file object or bytes block by block, mix down and resample as a stream."""
    info = StreamInfo(describe(source))
    blocks = list(stream_file(source, target_rate, max_duration_s, info))
    check_min_duration(info.frames_in, info.source_sample_rate, info.name)
    y = np.concatenate(blocks) if len(blocks) != 1 else blocks[0]
    return Audio(samples=np.ascontiguousarray(y, np.float32), sample_rate=target_rate,
                 source_sample_rate=info.source_sample_rate, peak=float(info.peak), rms=info.rms)


PYAV_EXTRA_HINT = 'AAC/M4A, ALAC and WMA need the decoders extra: pip install "mersdk[decoders]"'


def _stream_with_pyav(source, target_rate: int, max_duration_s: float | None, info: StreamInfo,
                      refused: AudioDecodeError):
    """Fallback for what libsndfile cannot open: decode with PyAV (FFmpeg) frame by frame, mix to
    mono, resample with soxr as a stream; the same checks and errors as the libsndfile path."""
    try:
        import av
    except ImportError:
        raise AudioDecodeError(f"{refused}; {PYAV_EXTRA_HINT}") from None
    import soxr

    name = info.name = describe(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    elif hasattr(source, "seek"):
        source.seek(0)  # libsndfile may have read part of it before refusing
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{name}: the container has no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None or stream.codec_context.name in ("", "none"):
                raise AudioDecodeError(f"{name}: no decoder for this stream (protected or unknown codec)")
            # a FairPlay-protected iTunes track keeps its real codec behind the sample entry 'drms'
            if stream.codec_context.codec_tag in ("drms", "drmi", "enca", "p608"):
                raise AudioDecodeError(f"{name}: the audio is DRM-protected ({stream.codec_context.codec_tag}); it cannot be decoded")
            sr = _check_rate(stream.codec_context.sample_rate or stream.rate)
            info.source_sample_rate = sr
            if max_duration_s is not None and stream.duration and stream.time_base:
                if float(stream.duration * stream.time_base) > max_duration_s:
                    raise AudioTooLongError(f"{name}: longer than max_duration_s={max_duration_s:.0f} s")
            # planar float keeps every channel; mixing to mono here (a mean, like soundfile's path)
            # rather than in FFmpeg keeps both decoders' downmix identical
            to_float = av.AudioResampler(format="fltp")
            stream_rs = None if sr == target_rate else soxr.ResampleStream(sr, target_rate, 1, dtype="float32", quality="HQ")
            for frame in container.decode(stream):
                for f in to_float.resample(frame):
                    a = f.to_ndarray()
                    mono = np.ascontiguousarray(a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0])
                    _account_block(info, mono, name, sr, max_duration_s)
                    out = stream_rs.resample_chunk(mono) if stream_rs else mono
                    if out.size:
                        yield np.asarray(out, np.float32)
            if stream_rs:
                tail = stream_rs.resample_chunk(np.zeros(0, np.float32), last=True)
                if tail.size:
                    yield np.asarray(tail, np.float32)
    except av.error.FFmpegError as e:
        raise AudioDecodeError(f"{refused}; FFmpeg (PyAV) could not decode it either ({e})") from None
    if info.frames_in == 0:
        raise AudioDecodeError(f"{name}: contains no audio frames (empty or truncated file)")


def load_audio(source: AudioSource, target_rate: int, sample_rate=None, max_duration_s: float | None = None) -> Audio:
    """Any accepted source -> mono float32 ``Audio`` at ``target_rate``; raises ``AudioError``s."""
    if isinstance(source, np.ndarray):
        a = load_array(source, sample_rate, target_rate)
        if max_duration_s is not None and a.duration_s > max_duration_s:
            raise AudioTooLongError(f"array: {a.duration_s:.0f} s is longer than max_duration_s={max_duration_s:.0f} s")
        return a
    if isinstance(source, (str, os.PathLike, bytes, bytearray)) or hasattr(source, "read"):
        return load_file(source, target_rate, max_duration_s)
    if isinstance(source, (list, tuple)):
        return load_audio(np.asarray(source), target_rate, sample_rate, max_duration_s)
    raise InvalidAudioError(
        f"unsupported audio source {type(source).__name__}: give a path, a file object, bytes, or a NumPy array with sample_rate="
    )
