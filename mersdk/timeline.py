"""Whole-track timelines: how a song's emotion moves, with lyric lines aligned to the audio.

``Recognizer.analyze`` cuts the track into segments of ``window_s`` seconds every ``hop_s`` seconds
(the last one aligned to the end of the track, so every segment has full length when the track is
longer than one window) and runs the model on each.

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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .audio import MIN_DURATION_S, Audio, StreamInfo, load_audio, stream_file
from .errors import AudioTooShortError
from .lyrics import Lyrics, load_lyrics
from .results import Prediction

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
        return {"summary": self.summary.to_dict(), "timeline": [s.to_dict() for s in self.timeline],
                "window_s": self.window_s, "hop_s": self.hop_s, "smooth": self.smooth}


def lines_for_segment(lyrics: Lyrics | None, start_s: float, end_s: float, context_s: float) -> tuple[str, ...]:
    """The lyric lines a segment reads (see module docstring)."""
    if lyrics is None:
        return ()
    if not lyrics.timed:
        return tuple(line.text for line in lyrics.lines)
    timed = [line for line in lyrics.lines if line.time_s is not None]
    out = []
    for i, line in enumerate(timed):
        nxt = timed[i + 1].time_s if i + 1 < len(timed) else line.time_s + MAX_LINE_S
        line_end = max(min(nxt, line.time_s + MAX_LINE_S), line.time_s + 0.5)  # lines at one time still last a moment
        if line.time_s < end_s + context_s and line_end > start_s - context_s:
            out.append(line.text)
    return tuple(out)


def iter_windows(source, sample_rate, rate: int, window_s: float, hop_s: float, max_duration_s):
    """Yield (start_sample, window_samples, total_known) for segments, decoding files as a stream.

    Arrays (already in memory) use the same rule. The final window is aligned to the end."""
    win, hop = int(round(window_s * rate)), int(round(hop_s * rate))
    if isinstance(source, np.ndarray):
        a: Audio = load_audio(source, rate, sample_rate=sample_rate, max_duration_s=max_duration_s)
        blocks = iter([a.samples])
        info = None
    else:
        info = StreamInfo("")
        blocks = stream_file(source, rate, max_duration_s, info)
    buf = np.zeros(0, np.float32)
    buf_start = 0  # absolute index of buf[0]
    next_start = 0
    last_end = 0
    for block in blocks:
        buf = np.concatenate([buf, block]) if buf.size else block
        while next_start + win <= buf_start + buf.size:
            i = next_start - buf_start
            yield next_start, buf[i : i + win].copy()
            last_end = next_start + win
            next_start += hop
        # keep enough for the next window and for an end-aligned last window
        keep_from = max(0, min(next_start - buf_start, buf.size - win))
        buf, buf_start = buf[keep_from:], buf_start + keep_from
    total = buf_start + buf.size
    if info is not None and info.source_sample_rate and info.frames_in / info.source_sample_rate < MIN_DURATION_S:
        raise AudioTooShortError(f"{info.name}: {info.frames_in / info.source_sample_rate:.3f} s of audio; the minimum is {MIN_DURATION_S} s")
    if last_end < total:
        start = max(0, total - win)
        yield start, buf[start - buf_start :].copy()


def iter_analyze(rec, audio, lyrics=None, *, sample_rate=None, window_s: float = 10.0, hop_s: float = 5.0,
                 context_s: float = 2.0) -> Iterator[Segment]:
    """Raw segments in time order (see module docstring); ``rec`` is a Recognizer."""
    if window_s < 1.0 or hop_s <= 0:
        raise ValueError("window_s must be >= 1 s and hop_s > 0")
    rate = rec.config.frontend.sample_rate
    ly = load_lyrics(lyrics)
    labels = rec.labels
    primary = rec.config.primary_task
    pending: list[tuple[int, np.ndarray, tuple[str, ...]]] = []

    def flush():
        texts = ["\n".join(lines) if lines else None for _, _, lines in pending]
        outs = rec._forward_windows([w for _, w, _ in pending], rec._encode_texts(texts))
        for (start, w, lines), out in zip(pending, outs):
            probs = {lab: float(p) for lab, p in zip(labels, out[primary])}
            yield Segment(
                start_s=round(start / rate, 3), end_s=round((start + len(w)) / rate, 3),
                label=max(probs, key=probs.get), probabilities=probs,
                valence=float(out["va"][0]), arousal=float(out["va"][1]),
                fusion_weight=float(out["gate"]), lyric_lines=lines,
            )
        pending.clear()

    for start, w in iter_windows(audio, sample_rate, rate, window_s, hop_s, rec.max_duration_s):
        pending.append((start, w, lines_for_segment(ly, start / rate, (start + len(w)) / rate, context_s)))
        if len(pending) >= rec.batch_size:
            yield from flush()
    if pending:
        yield from flush()


def smooth_segments(segs: list[Segment], n: int) -> list[Segment]:
    if n <= 1 or len(segs) < 2:
        return segs
    half = n // 2
    out = []
    for i, s in enumerate(segs):
        nb = segs[max(0, i - half) : i + half + 1]
        probs = {k: float(np.mean([x.probabilities[k] for x in nb])) for k in s.probabilities}
        z = sum(probs.values())
        probs = {k: v / z for k, v in probs.items()}
        out.append(dataclasses.replace(
            s, probabilities=probs, label=max(probs, key=probs.get),
            valence=float(np.mean([x.valence for x in nb])), arousal=float(np.mean([x.arousal for x in nb]))))
    return out


def analyze(rec, audio, lyrics=None, *, sample_rate=None, window_s: float = 10.0, hop_s: float = 5.0,
            context_s: float = 2.0, smooth: int = 3) -> TrackAnalysis:
    ly = load_lyrics(lyrics)
    raw = list(iter_analyze(rec, audio, ly, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s, context_s=context_s))
    probs = {k: float(np.mean([s.probabilities[k] for s in raw])) for k in rec.labels}
    z = sum(probs.values())
    probs = {k: v / z for k, v in probs.items()}
    duration = max(s.end_s for s in raw)
    summary = Prediction(
        label=max(probs, key=probs.get), probabilities=probs,
        valence=float(np.mean([s.valence for s in raw])), arousal=float(np.mean([s.arousal for s in raw])),
        lyrics_used=any(s.lyric_lines for s in raw), fusion_weight=float(np.mean([s.fusion_weight for s in raw])),
        duration_s=duration, backend=rec.backend, task_probabilities={rec.config.primary_task: probs},
        n_windows=len(raw), model=rec.checkpoint.model_hash,
    )
    return TrackAnalysis(summary, tuple(smooth_segments(raw, smooth)), window_s, hop_s, smooth)


def plot_analysis(analysis: TrackAnalysis, lyrics: Lyrics | None, out_path: str, title: str = "") -> None:
    """Valence/arousal over time with the lyric lines marked; needs matplotlib (extra ``plot``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "mersdk[plot]"') from None
    tl = analysis.timeline
    t = [(s.start_s + s.end_s) / 2 for s in tl]
    fig, ax = plt.subplots(figsize=(11, 4.2))
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
    fig.suptitle(f"{title or 'mersdk timeline'}   (segments of {analysis.window_s:g} s every {analysis.hop_s:g} s, "
                 f"smoothing {analysis.smooth})", fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(out_path, dpi=130)
    plt.close(fig)
