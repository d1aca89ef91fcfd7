"""Small audio files in every container the tagging tests need, written into pytest's tmp_path.

The signal is the first seconds of a real clip from ../shared/data when it is there (so tagging is
tried on re-encoded real music), else a synthesized tone; files stay tiny either way."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA, tone

HAVE_MUTAGEN = importlib.util.find_spec("mutagen") is not None
HAVE_AV = importlib.util.find_spec("av") is not None
HAVE_RAY = importlib.util.find_spec("ray") is not None
HAVE_PYARROW = importlib.util.find_spec("pyarrow") is not None

needs_mutagen = pytest.mark.skipif(not HAVE_MUTAGEN, reason='mutagen is not installed (pip install "mersdk[tag]")')
needs_av = pytest.mark.skipif(not HAVE_AV, reason='PyAV is not installed (pip install "mersdk[decoders]")')
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason='Ray is not installed (pip install "mersdk[ray]")')

# container -> (extension, soundfile format, subtype, sample rate)
SOUNDFILE_CONTAINERS = {
    "wav": (".wav", "WAV", "PCM_16", 16000),
    "flac": (".flac", "FLAC", "PCM_16", 16000),
    "ogg-vorbis": (".ogg", "OGG", "VORBIS", 16000),
    "ogg-opus": (".opus", "OGG", "OPUS", 48000),
    "mp3": (".mp3", "MP3", "MPEG_LAYER_III", 16000),
}


def source_signal(seconds: float = 1.5, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Real music (a re-encoded excerpt) when the data folder exists, else a tone."""
    real = DATA / "mirex_mm" / "audio" / f"{seed + 1:03d}.opus"
    if real.is_file():
        import soxr

        x, rate = sf.read(real, frames=int(seconds * 48000), dtype="float32", always_2d=True)
        return soxr.resample(x.mean(axis=1), rate, sr).astype(np.float32)
    return tone(seconds, sr, freq=220.0 * (1 + seed % 5), seed=seed)


def write_clip(path: Path, container: str, seconds: float = 1.5, seed: int = 0) -> Path:
    """A short clip in ``container`` (a key of SOUNDFILE_CONTAINERS, or "m4a-aac" / "m4a-alac", or
    "m4a-aac-faststart": the index (moov) before the audio, so a bigger tag moves the audio)."""
    if container.startswith("m4a"):
        return _write_with_pyav(
            path, "alac" if container == "m4a-alac" else "aac", seconds, seed, faststart=container.endswith("faststart")
        )
    _, fmt, subtype, sr = SOUNDFILE_CONTAINERS[container]
    sf.write(path, source_signal(seconds, sr, seed), sr, format=fmt, subtype=subtype)
    return path


def _write_with_pyav(
    path: Path, codec: str, seconds: float, seed: int, sr: int = 44100, faststart: bool = False
) -> Path:
    import av

    x = source_signal(seconds, sr, seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="ipod" if codec == "alac" else "mp4", options=options) as c:
        stream = c.add_stream(codec, rate=sr, layout="mono")
        frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(
            format=fmt, layout="mono", rate=sr, frame_size=stream.codec_context.frame_size or None
        )
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


def write_wma(path: Path, seconds: float = 1.5, sr: int = 44100) -> Path:
    import av

    x = source_signal(seconds, sr)
    with av.open(str(path), "w", format="asf") as c:
        stream = c.add_stream("wmav2", rate=sr, layout="mono")
        stream.bit_rate = 64000
        frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        resampler = av.AudioResampler(
            format="fltp", layout="mono", rate=sr, frame_size=stream.codec_context.frame_size or None
        )
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


def decoded(path: Path) -> np.ndarray:
    """The samples as decoded by mersdk (soundfile, or PyAV for M4A), for before/after checks."""
    from mersdk.audio import load_audio

    return load_audio(path, 16000).samples


BYPASS_REASON = "file modes are not enforced here (root, or CAP_DAC_OVERRIDE): chmod cannot make a file unreadable"


def permissions_enforced(tmp_path: Path) -> bool:
    """Whether chmod 000 really stops this process (false for root with its usual capabilities;
    true for root with CAP_DAC_OVERRIDE dropped, e.g. under ``setpriv --bounding-set=-all``)."""
    probe = tmp_path / ".permission_probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        probe.open("rb").close()
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()
