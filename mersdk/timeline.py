"""Whole-track timelines: how a song's emotion moves, with lyric lines aligned to the audio.

``Recognizer.analyze`` cuts the track into segments of ``window_s`` seconds every ``hop_s`` seconds
(the last one aligned to the end of the track, so every segment has full length when the track is
longer than one window) and runs the model on each, through ``mersdk.pipeline`` (the windowing rule
with no one-window slack, and the batching ``predict`` uses).

Lyric alignment (what the method is named for): with time-stamped lyrics (LRC, or ID3 SYLT read by
the tagger), line i is sung over [t_i, min(t_{i+1}, t_i + 8 s)) (a line does not last through an
instrumental break; the last line lasts 8 s); a segment
[start, end) reads the lines whose span overlaps [start - context_s, end + context_s), so its
cross-modal attention sees only the words sung in or near it. A segment with no line in reach is
analysed on audio alone (fusion weight 0), as an instrumental passage should be. Plain (untimed)
lyrics cannot be placed: every segment reads the whole text.

Smoothing: ``analyze(smooth=N)`` replaces each segment's probabilities, valence and arousal with
the mean over the N segments centred on it (fewer at the edges; probabilities renormalised);
``smooth=1`` gives the raw per-segment values. ``iter_analyze`` yields raw segments as soon as they
are computed; it decodes files block by block and keeps at most one batch of windows in memory,
so hours of audio stream through in bounded memory. The summary is the mean over all segments.

Players that decode themselves push PCM instead: ``Recognizer.stream`` (``AnalysisStream``) gives
the same segments as ``iter_analyze`` on the same audio, as soon as each window is complete.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import (
    StreamInfo,
    block_resampler,
    check_min_duration,
    check_sample_rate,
    load_audio,
    pcm_block_to_mono,
    stream_file,
)
from .errors import AudioTooLongError, InvalidOptionError
from .lyrics import Lyrics, load_lyrics
from .pipeline import Windower, check_window_options, encode_texts, iter_batches, pool_probabilities, run_windows
from .results import Prediction

if TYPE_CHECKING:
    from .recognizer import Recognizer

MAX_LINE_S = 8.0  # longest a lyric line is taken to last


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    label: str
    probabilities: dict[str, float]
    valence: float
    arousal: float
    fusion_weight: float
    lyric_lines: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrackAnalysis:
    summary: Prediction
    timeline: tuple[Segment, ...]
    window_s: float
    hop_s: float
    smooth: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_dict(),
            "timeline": [s.to_dict() for s in self.timeline],
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "smooth": self.smooth,
        }


def lines_for_segment(lyrics: Lyrics | None, start_s: float, end_s: float, context_s: float) -> tuple[str, ...]:
    """The lyric lines a segment reads (see module docstring)."""
    if lyrics is None:
        return ()
    if not lyrics.timed:
        return tuple(line.text for line in lyrics.lines)
    timed = [(line.time_s, line.text) for line in lyrics.lines if line.time_s is not None]
    out = []
    for i, (t, text) in enumerate(timed):
        nxt = timed[i + 1][0] if i + 1 < len(timed) else t + MAX_LINE_S
        line_end = max(min(nxt, t + MAX_LINE_S), t + 0.5)  # lines at one time still last a moment
        if t < end_s + context_s and line_end > start_s - context_s:
            out.append(text)
    return tuple(out)


def _model_rate_blocks(
    source: Any, sample_rate: int | None, rate: int, max_duration_s: float | None
) -> Iterator[np.ndarray]:
    """Mono blocks at the model rate: an array (already in memory) as one block, a file decoded as a
    stream; the minimum length is checked once the stream has ended."""
    if isinstance(source, np.ndarray):
        yield load_audio(source, rate, sample_rate=sample_rate, max_duration_s=max_duration_s).samples
        return
    info = StreamInfo("")
    yield from stream_file(source, rate, max_duration_s, info)
    if info.source_sample_rate:
        check_min_duration(info.frames_in, info.source_sample_rate, info.name)


@dataclass(frozen=True)
class _Window:
    start: int
    samples: np.ndarray
    lines: tuple[str, ...]


class _SegmentMaker:
    """Cuts model-rate audio into segment windows (``pipeline.Windower``), finds the lyric lines
    each reads, and runs them through the pipeline. Shared by ``iter_analyze`` and ``AnalysisStream``."""

    def __init__(self, rec: Recognizer, lyrics: Lyrics | None, window_s: float, hop_s: float, context_s: float):
        self.rec, self.lyrics, self.context_s = rec, lyrics, float(context_s)
        self.rate = rec.config.frontend.sample_rate
        self.windower = Windower(self.rate, window_s, hop_s, slack=1.0)

    def _windows(self, cut: list[tuple[int, np.ndarray]]) -> list[_Window]:
        r = self.rate
        return [_Window(s, w, lines_for_segment(self.lyrics, s / r, (s + len(w)) / r, self.context_s)) for s, w in cut]

    def feed(self, block: np.ndarray) -> list[_Window]:
        return self._windows(self.windower.feed(block))

    def finish(self) -> list[_Window]:
        return self._windows(self.windower.finish())

    def windows_of(self, blocks: Iterator[np.ndarray]) -> Iterator[_Window]:
        for block in blocks:
            yield from self.feed(block)
        yield from self.finish()

    def segments(self, windows: list[_Window]) -> list[Segment]:
        if not windows:
            return []
        rec, r = self.rec, self.rate
        texts = ["\n".join(w.lines) if w.lines else None for w in windows]
        outs = run_windows(
            rec.runtime,
            [w.samples for w in windows],
            encode_texts(rec.runtime, texts),
            rec.batch_size,
            rec.config.text_encoder.hidden_size,
        )
        labels, primary = rec.labels, rec.config.primary_task
        segs = []
        for w, out in zip(windows, outs):
            probs = {lab: float(p) for lab, p in zip(labels, out[primary])}
            segs.append(
                Segment(
                    start_s=round(w.start / r, 3),
                    end_s=round((w.start + len(w.samples)) / r, 3),
                    label=max(probs, key=probs.__getitem__),
                    probabilities=probs,
                    valence=float(out["va"][0]),
                    arousal=float(out["va"][1]),
                    fusion_weight=float(out["gate"]),
                    lyric_lines=w.lines,
                )
            )
        return segs


def iter_analyze(
    rec: Recognizer,
    audio: Any,
    lyrics: Any = None,
    *,
    sample_rate: int | None = None,
    window_s: float = 10.0,
    hop_s: float = 5.0,
    context_s: float = 2.0,
) -> Iterator[Segment]:
    """Raw segments in time order (see module docstring); ``rec`` is a Recognizer."""
    window_s, hop_s = check_window_options(window_s, hop_s)
    maker = _SegmentMaker(rec, load_lyrics(lyrics), window_s, hop_s, context_s)
    blocks = _model_rate_blocks(audio, sample_rate, maker.rate, rec.max_duration_s)
    for batch in iter_batches(maker.windows_of(blocks), rec.batch_size):
        yield from maker.segments(batch)


class AnalysisStream:
    """Push-style timeline for players that decode themselves (``Recognizer.stream``).

    ``feed(block)`` takes PCM at ``sample_rate`` -- shape (frames,) for mono, (frames, channels)
    otherwise; float in [-1, 1] or int16/int32/uint8 -- and returns the segments whose window is
    complete, in time order; ``close()`` flushes the end of the track (the last, end-aligned segment)
    and returns what is left. The segments equal ``iter_analyze``'s on the same audio, however the
    blocks are cut. Memory is bounded: only what a coming window still needs is held. Also a
    context manager (leaving it closes the stream; call ``close()`` yourself to get the last
    segments). One stream serves one thread at a time; several streams may share a Recognizer."""

    def __init__(
        self,
        rec: Recognizer,
        sample_rate: int,
        lyrics: Any = None,
        *,
        channels: int = 1,
        window_s: float = 10.0,
        hop_s: float = 5.0,
        context_s: float = 2.0,
    ):
        window_s, hop_s = check_window_options(window_s, hop_s)
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 64:
            raise InvalidOptionError(f"channels must be an integer from 1 to 64, got {channels!r}")
        self.sample_rate = check_sample_rate(sample_rate)
        self.channels = channels
        self.window_s, self.hop_s = window_s, hop_s
        self._maker = _SegmentMaker(rec, load_lyrics(lyrics), window_s, hop_s, context_s)
        self._resample = block_resampler(self.sample_rate, self._maker.rate)
        self._max_duration_s = rec.max_duration_s
        self._frames_in = 0
        self._closed = False

    def feed(self, block: Any) -> list[Segment]:
        if self._closed:
            raise InvalidOptionError("this stream is closed")
        mono = pcm_block_to_mono(block, self.channels, "stream block")
        self._frames_in += mono.size
        if self._max_duration_s is not None and self._frames_in / self.sample_rate > self._max_duration_s:
            raise AudioTooLongError(f"stream: longer than max_duration_s={self._max_duration_s:.0f} s")
        return self._maker.segments(self._maker.feed(self._resample(mono)))

    def close(self) -> list[Segment]:
        """The last segments (empty when already closed); raises ``AudioTooShortError`` when less
        than the minimum duration was fed."""
        if self._closed:
            return []
        self._closed = True
        check_min_duration(self._frames_in, self.sample_rate, "stream")
        windows = self._maker.feed(self._resample(np.zeros(0, np.float32), last=True)) + self._maker.finish()
        return self._maker.segments(windows)

    def __enter__(self) -> AnalysisStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True


def smooth_segments(segs: list[Segment], n: int) -> list[Segment]:
    if n <= 1 or len(segs) < 2:
        return segs
    half = n // 2
    out = []
    for i, s in enumerate(segs):
        nb = segs[max(0, i - half) : i + half + 1]
        probs = _pooled_probabilities(nb)
        out.append(
            dataclasses.replace(
                s,
                probabilities=probs,
                label=max(probs, key=probs.__getitem__),
                valence=float(np.mean([x.valence for x in nb])),
                arousal=float(np.mean([x.arousal for x in nb])),
            )
        )
    return out


def _pooled_probabilities(segs: list[Segment]) -> dict[str, float]:
    keys = list(segs[0].probabilities)
    p = pool_probabilities([[x.probabilities[k] for k in keys] for x in segs])
    return {k: float(v) for k, v in zip(keys, p)}


def analyze(
    rec: Recognizer,
    audio: Any,
    lyrics: Any = None,
    *,
    sample_rate: int | None = None,
    window_s: float = 10.0,
    hop_s: float = 5.0,
    context_s: float = 2.0,
    smooth: int = 3,
) -> TrackAnalysis:
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise InvalidOptionError(f"smooth must be an integer >= 1, got {smooth!r}")
    window_s, hop_s = check_window_options(window_s, hop_s)
    ly = load_lyrics(lyrics)
    raw = list(
        iter_analyze(rec, audio, ly, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s, context_s=context_s)
    )
    probs = _pooled_probabilities(raw)
    summary = Prediction(
        label=max(probs, key=probs.__getitem__),
        probabilities=probs,
        valence=float(np.mean([s.valence for s in raw])),
        arousal=float(np.mean([s.arousal for s in raw])),
        lyrics_used=any(s.lyric_lines for s in raw),
        fusion_weight=float(np.mean([s.fusion_weight for s in raw])),
        duration_s=max(s.end_s for s in raw),
        backend=rec.backend,
        task_probabilities={rec.config.primary_task: probs},
        n_windows=len(raw),
        model=rec.checkpoint.model_hash,
    )
    return TrackAnalysis(summary, tuple(smooth_segments(raw, smooth)), window_s, hop_s, smooth)


def plot_analysis(analysis: TrackAnalysis, lyrics: Lyrics | None, out_path: str, title: str = "") -> None:
    """Valence/arousal over time with the lyric lines marked; needs matplotlib (extra ``plot``)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "mersdk[plot]"') from None
    tl = analysis.timeline
    t = [(s.start_s + s.end_s) / 2 for s in tl]
    # a bare Figure (Agg canvas on savefig): no pyplot, no global backend or figure registry touched
    fig = Figure(figsize=(11, 4.2))
    ax = fig.add_subplot()
    ax.plot(t, [s.valence for s in tl], "-o", ms=3, label="valence", color="tab:blue")
    ax.plot(t, [s.arousal for s in tl], "-o", ms=3, label="arousal", color="tab:red")
    ax.fill_between(t, 0, [s.fusion_weight for s in tl], color="tab:green", alpha=0.15, label="fusion weight (lyrics)")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("value")
    if lyrics is not None and lyrics.timed:
        for line in lyrics.lines:
            if line.time_s is None:
                continue
            ax.axvline(line.time_s, color="0.5", lw=0.6, ls=":")
            ax.text(line.time_s, 1.02, line.text[:28], rotation=35, fontsize=6.5, va="bottom", ha="left", color="0.3")
    for s in tl[:: max(1, len(tl) // 12)]:
        ax.text((s.start_s + s.end_s) / 2, -0.98, s.label, fontsize=7, ha="center", color="0.25")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, max(s.end_s for s in tl))
    fig.suptitle(
        f"{title or 'mersdk timeline'}   (segments of {analysis.window_s:g} s every {analysis.hop_s:g} s, "
        f"smoothing {analysis.smooth})",
        fontsize=9,
        x=0.01,
        ha="left",
    )
    fig.tight_layout()
    fig.savefig(out_path, dpi=130)
