"""Shared pieces of the fuzzing harness (tests/test_fuzz.py): example budgets, the per-case timeout,
the one allowed-exception rule, and small real-format audio clips to mutate.

Budgets: each target has a default number of generated inputs, chosen so that a CI run generates
at least 10,000 inputs in total (cheap targets get most of them). ``MERSDK_FUZZ_SCALE`` multiplies
every budget; with a scale above 1 the run is also randomised (a new seed per run) instead of the
CI's fixed, reproducible sequence. A longer run, for example:

    MERSDK_FUZZ_SCALE=20 nice python -m pytest -q -p no:cacheprovider tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import threading
import warnings

import numpy as np
from hypothesis import HealthCheck, settings

from mersdk.errors import MersdkError

SCALE = float(os.environ.get("MERSDK_FUZZ_SCALE", "1"))
# per generated input: a hang (a decoder spinning on a damaged header) fails the case, not the run
# (wall clock, generous: a CI machine may be shared; a real hang never ends)
CASE_TIMEOUT_S = float(os.environ.get("MERSDK_FUZZ_CASE_TIMEOUT_S", "20"))


def budget(n: int) -> settings:
    """Hypothesis settings for a target of ``n`` generated inputs (times MERSDK_FUZZ_SCALE)."""
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,  # the per-case timeout below bounds a case; Hypothesis's deadline is flaky under load
        derandomize=SCALE <= 1,  # CI: the same inputs every run; longer runs: fresh ones
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


class CaseTimeout(Exception):
    """A generated input ran longer than CASE_TIMEOUT_S (a hang, as far as the harness is concerned)."""


@contextlib.contextmanager
def case_timeout(seconds: float = CASE_TIMEOUT_S):
    """SIGALRM-based timeout of one case (main thread only; elsewhere it only runs the body)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise CaseTimeout(f"one generated input took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Counter:
    """Counts the inputs each target really ran (the report's 'generated inputs per CI run')."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, target: str) -> None:
        self.counts[target] = self.counts.get(target, 0) + 1


COUNTER = Counter()


def run_case(target: str, fn, *args, runtime_warnings_are_errors: bool = True, **kwargs):
    """Run one generated input: any exception other than a ``MersdkError`` fails the case (so does
    a timeout). Returns fn's result, or the MersdkError it raised. With
    ``runtime_warnings_are_errors=False`` NumPy's floating-point RuntimeWarnings are ignored (a
    narrowed target: the warnings are a known defect with its own xfail test)."""
    COUNTER.add(target)
    with case_timeout(), warnings.catch_warnings():
        if not runtime_warnings_are_errors:
            warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return fn(*args, **kwargs)
        except MersdkError as e:
            assert str(e), f"{type(e).__name__} without a message"
            return e


# --------------------------------------------------------------------------------------------------
# real-format seed clips


def _tone(sr: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * np.sin(2 * np.pi * 3000.0 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def _with_soundfile(fmt: str, subtype: str | None, sr: int, channels: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, _tone(sr, 0.7, channels), sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _with_pyav(container: str, codec: str, sr: int, channels: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout="mono" if channels == 1 else "stereo")
        x = _tone(sr, 0.7, channels).T.copy()  # planar
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout=stream.layout.name)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def seed_clips() -> dict[str, bytes]:
    """Small valid clips in every container this machine can write: {label: bytes}. What cannot be
    written here (no encoder) is missing, and ``missing_containers`` says so."""
    makers = {
        "wav_pcm16_mono_16k": lambda: _with_soundfile("WAV", "PCM_16", 16000, 1),
        "wav_float_stereo_44k": lambda: _with_soundfile("WAV", "FLOAT", 44100, 2),
        "flac_stereo_44k": lambda: _with_soundfile("FLAC", "PCM_16", 44100, 2),
        "ogg_vorbis_mono_22k": lambda: _with_soundfile("OGG", "VORBIS", 22050, 1),
        "ogg_opus_stereo_48k": lambda: _with_soundfile("OGG", "OPUS", 48000, 2),
        "mp3_mono_44k": lambda: _with_soundfile("MP3", "MPEG_LAYER_III", 44100, 1),
        "m4a_aac_stereo_44k": lambda: _with_pyav("ipod", "aac", 44100, 2),
    }
    clips = {}
    for label, make in makers.items():
        try:
            clips[label] = make()
        except Exception:
            continue
    return clips


def missing_containers() -> list[str]:
    wanted = {"wav", "flac", "ogg", "mp3", "m4a"}
    have = {label.split("_")[0] for label in seed_clips()}
    return sorted(wanted - have)
