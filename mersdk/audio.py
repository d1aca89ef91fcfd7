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
frames to give one audio token); sample rates outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], or not a
finite number (a str, inf, a bool), raise ``InvalidAudioError``; NaN or Inf samples, and samples
beyond ``MAX_SAMPLE_ABS`` (no audio in [-1, 1]; such values overflow the log-mel power into NaN),
raise ``InvalidAudioError``. Files are decoded block by block and resampled as a stream, so a long
file never holds more than its resampled mono signal (16 kHz float32: 230 MB per hour);
``max_duration_s`` refuses longer files before decoding, and longer arrays from their shape and
sample rate, before any conversion.

Sources: a path must name a regular file (FIFOs, devices, directories, symlink loops are refused
by name, see ``files.py``); a file object must be binary (``open(path, "rb")``) and seekable (a
pipe is refused: read it into ``bytes`` first). A file that stops decoding part way (cut
mid-stream, a damaged tail) gives what decoded before the damage, with a logged warning; one
where nothing decodes raises ``AudioDecodeError`` ("not decodable audio").

libsndfile's MP3 decoder (libmpg123) prints notes such as "Illegal Audio-MPEG-Header" straight to
the process's stderr while it probes a damaged file; silencing that would mean redirecting file
descriptor 2 for the whole process (every thread), so mersdk leaves it.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np

from .errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
    InvalidAudioError,
)
from .files import check_regular_file, kind_of

log = logging.getLogger("mersdk.audio")

MIN_DURATION_S = 0.5
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
_MAX_CHANNELS_FIRST = 8
_BLOCK_FRAMES = 1 << 18  # frames per decode block (about 5 s at 48 kHz)
_SALVAGE_FRAMES = 4096  # after a decode error, re-read the failed block in pieces this small
# 120 dB above full scale; int16-scaled floats (32768) pass, 1e18 would already give NaN log-mels
MAX_SAMPLE_ABS = 1e6

AudioSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO, np.ndarray]  # noqa: UP007 (a runtime alias on 3.10)


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
    name = getattr(source, "name", None)  # an int for a file object made from a descriptor
    return name if isinstance(name, str) and name else f"<{type(source).__name__}>"


def _stats(x: np.ndarray) -> tuple[float, float, int]:
    finite = np.isfinite(x)
    bad = int(x.size - np.count_nonzero(finite))
    y = x[finite] if bad else x
    if y.size == 0:
        return 0.0, 0.0, bad
    return float(np.max(np.abs(y))), float(np.sqrt(np.mean(y.astype(np.float64) ** 2))), bad


def _check_samples(name: str, peak: float, bad: int, total: int) -> None:
    """The sample checks both arrays and decoded blocks get: NaN/Inf, absurd magnitudes."""
    if bad:
        raise InvalidAudioError(f"{name}: {bad} of {total} samples are NaN or Inf")
    if peak > MAX_SAMPLE_ABS:
        raise InvalidAudioError(
            f"{name}: samples reach {peak:.3g}, beyond the limit {MAX_SAMPLE_ABS:g}; float audio is expected "
            f"in [-1, 1] (int16-scaled floats: divide by 32768)"
        )


def _pcm_to_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:
        return (a.astype(np.float64) / 2147483648.0).astype(np.float32)
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    if a.dtype in (np.float32, np.float64, np.float16):
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, refused as such
            return a.astype(np.float32, copy=False)
    raise InvalidAudioError(
        f"unsupported sample dtype {a.dtype}; use float32/float64 in [-1, 1] or int16/int32/uint8 PCM"
    )


def _channels_first(shape: tuple[int, ...]) -> bool:
    """The layout rule: 1-D is mono; 2-D is (n, channels) unless (channels, n) with few channels."""
    if len(shape) not in (1, 2):
        raise InvalidAudioError(f"audio array must be 1-D (mono) or 2-D (multi-channel), got shape {shape}")
    return len(shape) == 2 and shape[0] <= _MAX_CHANNELS_FIRST and shape[0] < shape[1]


def _frames_in(shape: tuple[int, ...]) -> int:
    return shape[1] if _channels_first(shape) else shape[0]


def _mix_down(a: np.ndarray) -> np.ndarray:
    """Mean over the channels of (n, channels) float samples, as float32. Accumulated in float64, so
    huge finite samples stay finite (and are then refused by their magnitude, not as "Inf"); +Inf
    beside -Inf becomes NaN, refused as such, without a NumPy warning."""
    if a.shape[1] == 1:
        return a[:, 0]
    with np.errstate(over="ignore", invalid="ignore"):
        return a.mean(axis=1, dtype=np.float64).astype(np.float32)


def _to_mono(a: np.ndarray) -> np.ndarray:
    if _channels_first(a.shape):
        a = a.T  # (channels, n) -> (n, channels)
    if a.ndim == 1:
        return a
    return _mix_down(a)


def _check_rate(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, numbers.Real):  # "44100" is refused, not parsed
        raise InvalidAudioError(f"sample_rate must be an integer number of Hz, got {type(sr).__name__} {sr!r}")
    if not math.isfinite(sr):
        raise InvalidAudioError(f"sample_rate must be a finite number of Hz, got {sr!r}")
    # typeshed's numbers.Real has no __int__, though every Real here (int, float, NumPy scalars) has one
    sr_int = int(sr)  # type: ignore[call-overload]
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
    mono = np.ascontiguousarray(_mix_down(x) if x.ndim == 2 else x)
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
    _check_samples(name, peak, bad, x.size)
    check_min_duration(x.size, sr_in, name)
    y = _resample(x, sr_in, sr_out)
    return Audio(samples=y, sample_rate=sr_out, source_sample_rate=sr_in, peak=float(peak), rms=float(rms))


def load_array(
    a: np.ndarray, sample_rate, target_rate: int, name: str = "array", max_duration_s: float | None = None
) -> Audio:
    """An array -> ``Audio``; its length is checked from its shape before any conversion."""
    if sample_rate is None:
        raise InvalidAudioError(
            "a NumPy array has no sample rate: pass sample_rate=... (e.g. predict(x, sample_rate=44100))"
        )
    sr = _check_rate(sample_rate)
    a = np.asarray(a)
    if a.size == 0:
        raise AudioTooShortError(f"{name}: the array is empty; the minimum is {MIN_DURATION_S} s")
    seconds = _frames_in(a.shape) / sr
    if max_duration_s is not None and seconds > max_duration_s:
        raise AudioTooLongError(f"{name}: {seconds:.0f} s is longer than max_duration_s={max_duration_s:.0f} s")
    return _finish(_to_mono(_pcm_to_float(a)), sr, target_rate, name)


class _NotForLibsndfile(AudioDecodeError):
    """libsndfile refused to open the source: the one case where PyAV may still decode it."""


def _check_file_object(f, name: str) -> None:
    """A file object must give bytes and seek (libsndfile and FFmpeg both seek while probing)."""
    if isinstance(f, io.TextIOBase) or "b" not in getattr(f, "mode", "b"):
        raise InvalidAudioError(f"{name}: the file object is open in text mode; open it with open(path, 'rb')")
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        st = None  # no descriptor behind it (BytesIO, a custom reader)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InvalidAudioError(
            f"{name}: the file object reads {kind_of(st.st_mode)}, not a regular file; read it into bytes first"
        )
    try:
        seekable = f.seekable() if hasattr(f, "seekable") else hasattr(f, "seek")
    except (OSError, ValueError):  # a closed file
        seekable = False
    if not seekable:
        raise InvalidAudioError(f"{name}: the file object cannot seek (a pipe or socket?); read it into bytes first")


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
        # libsndfile reopens the path after this check; a file swapped for a FIFO in between is a
        # race mersdk does not defend against (it only guards against such files being named)
        st = check_regular_file(path, error=AudioDecodeError, not_found=AudioFileNotFoundError)
        if st.st_size == 0:
            raise AudioDecodeError(f"{path}: the file is empty (0 bytes)")
    else:
        _check_file_object(source, name)
    try:
        f = sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        # libsndfile says "File does not exist or is not a regular file" of any file it cannot
        # parse; the file was checked above, so only the parse failed
        why = "format not recognised" if "not a regular file" in str(e) else str(e)
        raise _NotForLibsndfile(
            f"{name}: not decodable audio (not a readable audio file for libsndfile: {why})"
        ) from None
    except OSError as e:
        raise AudioDecodeError(f"{name}: cannot open ({e})") from None
    if f.samplerate <= 0 or f.channels <= 0:  # random bytes libsndfile took for a headerless format
        f.close()
        raise _NotForLibsndfile(f"{name}: not decodable audio (libsndfile found no sample rate or channels)")
    return f, name


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
    _check_samples(name, p, bad, mono.size)
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
            raise AudioTooLongError(
                f"{name}: {f.frames / sr:.0f} s is longer than max_duration_s={max_duration_s:.0f} s"
            )
        stream = None if sr == target_rate else soxr.ResampleStream(sr, target_rate, 1, dtype="float32", quality="HQ")
        for block, last in _read_blocks(f, source, name, info):
            mono = np.ascontiguousarray(_mix_down(block))
            _account_block(info, mono, name, sr, max_duration_s)
            out = stream.resample_chunk(mono, last=last) if stream else mono
            if out.size:
                yield np.ascontiguousarray(out, dtype=np.float32)
    if info.frames_in == 0:
        raise AudioDecodeError(f"{name}: not decodable audio (no audio frames: an empty, truncated or corrupt file)")


def _warn_cut(name: str, seconds: float, error) -> None:
    log.warning(
        "%s: decoding stopped after %.1f s (%s); the file may be truncated or corrupt: using what decoded",
        name,
        seconds,
        error,
    )


def _read_blocks(f, source, name: str, info: StreamInfo):
    """Yield (block, last) from an open SoundFile. A decode error (a file cut mid-stream, a damaged
    tail) fails a whole large read, so the failed block is read again in small pieces from a fresh
    handle (the failed one may have lost its position): what decodes before the damage is used,
    with a warning. An error before any frame decoded raises ``AudioDecodeError``."""
    import soundfile as sf

    done = 0
    while True:
        try:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        except sf.LibsndfileError as e:
            failure = e
            break
        done += len(block)
        last = len(block) < _BLOCK_FRAMES
        yield block, last
        if last:
            return
    pieces, salvaged = [], 0
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        g, _ = _open_checked(source)
        with g:
            g.seek(done)
            while True:
                piece = g.read(_SALVAGE_FRAMES, dtype="float32", always_2d=True)
                pieces.append(piece)
                salvaged += len(piece)
                if len(piece) < _SALVAGE_FRAMES:
                    break
    except (sf.LibsndfileError, AudioDecodeError, RuntimeError, OSError):
        pass  # reached the damage: stop here
    if done + salvaged == 0:
        raise AudioDecodeError(f"{name}: not decodable audio (decoding failed at the start: {failure})") from None
    _warn_cut(name, (done + salvaged) / f.samplerate, failure)
    tail = np.concatenate(pieces) if pieces else np.zeros((0, f.channels), np.float32)
    yield tail, True


def load_file(source, target_rate: int, max_duration_s: float | None = None) -> Audio:
    """Decode a path, file object or bytes block by block, mix down and resample as a stream."""
    info = StreamInfo(describe(source))
    blocks = list(stream_file(source, target_rate, max_duration_s, info))
    check_min_duration(info.frames_in, info.source_sample_rate, info.name)
    y = np.concatenate(blocks) if len(blocks) != 1 else blocks[0]
    return Audio(
        samples=np.ascontiguousarray(y, np.float32),
        sample_rate=target_rate,
        source_sample_rate=info.source_sample_rate,
        peak=float(info.peak),
        rms=info.rms,
    )


PYAV_EXTRA_HINT = 'AAC/M4A, ALAC and WMA need the decoders extra: pip install "mersdk[decoders]"'
# What only PyAV decodes, by name or by its first bytes: the extra is worth naming only for these.
_PYAV_SUFFIXES = (".m4a", ".m4b", ".m4p", ".mp4", ".aac", ".alac", ".wma", ".asf", ".3gp", ".webm", ".mka")
_ASF_MAGIC = bytes.fromhex("3026b2758e66cf11")


def _needs_pyav(source) -> bool:
    """True when the source looks like a container only FFmpeg opens (MP4/M4A, ADTS AAC, ASF/WMA)."""
    if isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(_PYAV_SUFFIXES):
        return True
    try:
        if isinstance(source, (bytes, bytearray)):
            head = bytes(source[:16])
        elif isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:  # a regular file: checked by _open_checked already
                head = f.read(16)
        else:
            source.seek(0)
            head = source.read(16)
            source.seek(0)
    except (OSError, ValueError, AttributeError, TypeError):
        return False
    return (
        head[4:8] == b"ftyp"
        or head.startswith(_ASF_MAGIC)
        or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0)
    )


def _stream_with_pyav(
    source, target_rate: int, max_duration_s: float | None, info: StreamInfo, refused: AudioDecodeError
):
    """Fallback for what libsndfile cannot open: decode with PyAV (FFmpeg) frame by frame, mix to
    mono, resample with soxr as a stream; the same checks and errors as the libsndfile path."""
    try:
        import av
    except ImportError:
        raise AudioDecodeError(f"{refused}; {PYAV_EXTRA_HINT}" if _needs_pyav(source) else str(refused)) from None
    import soxr

    name = info.name = describe(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    elif hasattr(source, "seek"):
        source.seek(0)  # libsndfile may have read part of it before refusing
    try:
        with av.open(source, mode="r", metadata_errors="replace") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{name}: the container has no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None or stream.codec_context.name in ("", "none"):
                raise AudioDecodeError(f"{name}: no decoder for this stream (protected or unknown codec)")
            # a FairPlay-protected iTunes track keeps its real codec behind the sample entry 'drms'
            if stream.codec_context.codec_tag in ("drms", "drmi", "enca", "p608"):
                raise AudioDecodeError(
                    f"{name}: the audio is DRM-protected ({stream.codec_context.codec_tag}); it cannot be decoded"
                )
            if not (stream.codec_context.sample_rate or stream.rate):
                raise AudioDecodeError(f"{refused}; FFmpeg (PyAV) found no sample rate either")
            sr = _check_rate(stream.codec_context.sample_rate or stream.rate)
            info.source_sample_rate = sr
            if max_duration_s is not None and stream.duration and stream.time_base:
                if float(stream.duration * stream.time_base) > max_duration_s:
                    raise AudioTooLongError(f"{name}: longer than max_duration_s={max_duration_s:.0f} s")
            # planar float keeps every channel; mixing to mono here (a mean, like soundfile's path)
            # rather than in FFmpeg keeps both decoders' downmix identical
            to_float = av.AudioResampler(format="fltp")
            stream_rs = (
                None if sr == target_rate else soxr.ResampleStream(sr, target_rate, 1, dtype="float32", quality="HQ")
            )
            try:
                for frame in container.decode(stream):
                    for f in to_float.resample(frame):
                        a = f.to_ndarray()
                        mono = np.ascontiguousarray(a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0])
                        _account_block(info, mono, name, sr, max_duration_s)
                        out = stream_rs.resample_chunk(mono) if stream_rs else mono
                        if out.size:
                            yield np.asarray(out, np.float32)
            except av.error.FFmpegError as e:
                if info.frames_in == 0:
                    raise
                _warn_cut(name, info.frames_in / sr, e)
            if stream_rs:
                tail = stream_rs.resample_chunk(np.zeros(0, np.float32), last=True)
                if tail.size:
                    yield np.asarray(tail, np.float32)
    except av.error.FFmpegError as e:
        raise AudioDecodeError(f"{refused}; FFmpeg (PyAV) could not decode it either ({e})") from None
    if info.frames_in == 0:
        raise AudioDecodeError(f"{name}: not decodable audio (no audio frames: an empty, truncated or corrupt file)")


def load_audio(source: AudioSource, target_rate: int, sample_rate=None, max_duration_s: float | None = None) -> Audio:
    """Any accepted source -> mono float32 ``Audio`` at ``target_rate``; raises ``AudioError``s."""
    if isinstance(source, np.ndarray):
        return load_array(source, sample_rate, target_rate, max_duration_s=max_duration_s)
    if isinstance(source, (str, os.PathLike, bytes, bytearray)) or hasattr(source, "read"):
        return load_file(source, target_rate, max_duration_s)
    if isinstance(source, (list, tuple)):
        try:
            a = np.asarray(source)
        except ValueError as e:  # ragged: rows of different lengths
            raise InvalidAudioError(
                f"a list of samples must be rectangular (all channels the same length): {e}"
            ) from None
        return load_audio(a, target_rate, sample_rate, max_duration_s)
    raise InvalidAudioError(
        f"unsupported audio source {type(source).__name__}: give a path, a file object, bytes, "
        f"or a NumPy array with sample_rate="
    )
