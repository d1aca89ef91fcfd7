"""The inference pipeline: windowing, padding, batching and window averaging, in one place.

``Recognizer.predict``/``predict_batch``, timelines (``analyze``, ``iter_analyze``, ``stream``) and
``mersdk evaluate`` all run through these functions, so an evaluation measures exactly what users get.

Windowing rule (``WindowCutter``; ``window_bounds`` is its result for a known length): a signal of n
samples up to ``slack`` x window (``ONE_WINDOW_SLACK`` = 1.25 for ``predict``, so a clip a little over
30 s is not analysed twice; 1.0 for timelines) is one window [0, n). A longer one gets windows
starting every hop while they end strictly before n, plus a last window aligned to the end when the
regular ones do not reach it, so every window has full length and the tail is covered. The cutter
works on a stream (it decides each window as soon as enough samples have arrived), so in-memory
arrays, decoded files and pushed PCM blocks are cut identically.

Batching: ``run_windows`` (waveforms) and ``run_mels`` (cached log-mels, evaluation) run a backend on
``batch_size`` windows per forward pass, longest first within each call so a batch pads little; the
model's outputs do not depend on padding (see ``mersdk.model``). ``average_windows`` pools a clip's
windows: probabilities averaged and renormalised, valence/arousal and the fusion gate averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidAudioError, InvalidOptionError
from .padding import pad_stack
from .text_encoder import pad_embeddings

if TYPE_CHECKING:
    from .backends.base import Backend
    from .config import FrontendConfig, ModelConfig

ONE_WINDOW_SLACK = 1.25
# Bounds that keep the work per call bounded: a window is one forward pass whose attention grows
# with the square of its length, and every hop is one more window over the whole track.
MIN_WINDOW_S, MAX_WINDOW_S = 1.0, 600.0
MIN_HOP_S = 0.1

WindowOutput = dict[str, np.ndarray]


def check_window_options(window_s: Any, hop_s: Any) -> tuple[float, float]:
    """(window_s, hop_s) as floats; ``InvalidOptionError`` for NaN, infinities, non-numbers and values
    outside [MIN_WINDOW_S, MAX_WINDOW_S] / [MIN_HOP_S, MAX_WINDOW_S]."""
    out = []
    for name, v, low in (("window_s", window_s, MIN_WINDOW_S), ("hop_s", hop_s, MIN_HOP_S)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InvalidOptionError(f"{name} must be a number of seconds, got {v!r}") from None
        if isinstance(v, bool) or not math.isfinite(f) or not low <= f <= MAX_WINDOW_S:
            raise InvalidOptionError(
                f"{name} must be a finite number of seconds from {low:g} to {MAX_WINDOW_S:g}, got {v!r}"
            )
        out.append(f)
    return out[0], out[1]


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidOptionError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


class WindowCutter:
    """The windowing rule (module docstring) on sample counts alone: ``push(n)`` says n more samples
    arrived and returns the starts of the windows now decided; ``finish()`` returns the last
    ``(start, end)`` windows once the length is known. ``keep_from`` is the first sample a caller
    buffering the signal must still hold."""

    def __init__(self, sample_rate: int, window_s: float, hop_s: float, slack: float = 1.0):
        self.win = int(round(window_s * sample_rate))
        self.hop = max(1, int(round(hop_s * sample_rate)))
        self.one_window_limit = int(self.win * slack)
        self.seen = 0
        self.next_start = 0
        self.emitted_end = 0  # end of the last regular window given out (0: none)

    def push(self, n: int) -> list[int]:
        self.seen += n
        starts: list[int] = []
        if self.seen <= self.one_window_limit:
            return starts  # it may still end as a single window of the whole signal
        while self.next_start + self.win < self.seen:
            starts.append(self.next_start)
            self.emitted_end = self.next_start + self.win
            self.next_start += self.hop
        return starts

    def finish(self) -> list[tuple[int, int]]:
        n = self.seen
        if n <= self.one_window_limit:
            return [(0, n)] if n else []
        if self.emitted_end < n:
            return [(n - self.win, n)]
        return []

    @property
    def keep_from(self) -> int:
        # the next regular window, or an end-aligned last one, or the whole signal (single window)
        if self.seen <= self.one_window_limit:
            return 0
        return max(0, min(self.next_start, self.seen - self.win))


def window_bounds(
    n_samples: int, sample_rate: int, window_s: float, hop_s: float, slack: float = ONE_WINDOW_SLACK
) -> list[tuple[int, int]]:
    """[start, end) sample ranges of the analysis windows of a signal of known length."""
    cut = WindowCutter(sample_rate, window_s, hop_s, slack)
    return [(s, s + cut.win) for s in cut.push(n_samples)] + cut.finish()


class Windower:
    """``WindowCutter`` with the samples: feed mono blocks, get ``(start, window samples)`` as soon as
    each window is decided; holds only what a coming window still needs."""

    def __init__(self, sample_rate: int, window_s: float, hop_s: float, slack: float = 1.0):
        self.cutter = WindowCutter(sample_rate, window_s, hop_s, slack)
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute index of _buf[0]

    def feed(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        # a copy either way: a player may reuse its block's memory for the next one
        self._buf = np.concatenate([self._buf, block]) if self._buf.size else np.array(block, np.float32)
        win = self.cutter.win
        out = [(s, self._slice(s, s + win)) for s in self.cutter.push(len(block))]
        drop = self.cutter.keep_from - self._buf_start
        if drop > 0:
            self._buf, self._buf_start = self._buf[drop:], self._buf_start + drop
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        return [(s, self._slice(s, e)) for s, e in self.cutter.finish()]

    @property
    def samples_seen(self) -> int:
        return self.cutter.seen

    def _slice(self, start: int, end: int) -> np.ndarray:
        return self._buf[start - self._buf_start : end - self._buf_start].copy()


# ------------------------------------------------------------------------------------------------
# batching


def _longest_first(lengths: Sequence[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def encode_texts(backend: Backend, texts: Sequence[str | None]) -> list[np.ndarray | None]:
    """Lyric embeddings per text (None for no lyrics), each distinct text encoded once."""
    unique = list(dict.fromkeys(t for t in texts if t))
    enc = dict(zip(unique, backend.encode_lyrics(unique))) if unique else {}
    return [enc[t] if t else None for t in texts]


def _forward(
    backend: Backend, mel: Any, lengths: Any, embs: Sequence[np.ndarray | None], hidden: int
) -> list[WindowOutput]:
    emb, mask = pad_embeddings(list(embs), hidden)
    out = backend.forward(mel, lengths, emb, mask)
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            # finite samples far outside [-1, 1] (e.g. 3e38) overflow the log-mel: refuse, never a NaN label
            raise InvalidAudioError(
                f"the model's {k!r} output is not finite for this input; "
                "are the samples far outside the nominal range [-1, 1]?"
            )
    return [{k: v[j] for k, v in out.items()} for j in range(len(embs))]


def _batched(
    backend: Backend,
    lengths: Sequence[int],
    embs: Sequence[np.ndarray | None],
    batch_size: int,
    hidden: int,
    features: Any,
) -> list[WindowOutput]:
    """Shared batching loop: ``features(indices) -> (mel, mel_lengths)`` for one batch."""
    batch_size = check_batch_size(batch_size)
    order = _longest_first(lengths)
    outs: list[WindowOutput | None] = [None] * len(order)
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        mel, mel_lengths = features(idx)
        for i, o in zip(idx, _forward(backend, mel, mel_lengths, [embs[i] for i in idx], hidden)):
            outs[i] = o
    return outs  # type: ignore[return-value]  # every slot is filled


def run_windows(
    backend: Backend, windows: Sequence[np.ndarray], embs: Sequence[np.ndarray | None], batch_size: int, hidden: int
) -> list[WindowOutput]:
    """Model outputs of waveform windows (mono, model rate) with their lyric embeddings, in order.
    The backend computes the log-mel where its model runs (``Backend.log_mel``)."""
    return _batched(
        backend,
        [len(w) for w in windows],
        embs,
        batch_size,
        hidden,
        lambda idx: backend.log_mel([windows[i] for i in idx]),
    )


def run_mels(
    backend: Backend, mels: Sequence[np.ndarray], embs: Sequence[np.ndarray | None], batch_size: int, hidden: int
) -> list[WindowOutput]:
    """Model outputs of precomputed per-window log-mels (n_mels, frames_i), in order: for evaluation
    over many models of one cached feature set."""

    def features(idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return pad_stack([mels[i] for i in idx], axis=-1)

    return _batched(backend, [m.shape[-1] for m in mels], embs, batch_size, hidden, features)


def log_mels(frontend: FrontendConfig, windows: Sequence[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
    """Per-window log-mels (n_mels, frames_i), computed as the CPU backends compute them
    (``ops.log_mel_batch_fast``), for evaluation caches reused over many models."""
    from .ops import log_mel_batch_fast

    out: list[np.ndarray] = []
    for b0 in range(0, len(windows), check_batch_size(batch_size)):
        mel, lengths = log_mel_batch_fast(list(windows[b0 : b0 + batch_size]), frontend)
        out.extend(mel[j, :, : lengths[j]] for j in range(len(lengths)))
    return out


def clip_windows(
    signals: Sequence[np.ndarray], sample_rate: int, window_s: float, hop_s: float, slack: float = ONE_WINDOW_SLACK
) -> tuple[list[np.ndarray], list[int]]:
    """Every window of every signal (``window_bounds``), and the signal index of each window."""
    windows, owner = [], []
    for i, x in enumerate(signals):
        for s, e in window_bounds(len(x), sample_rate, window_s, hop_s, slack):
            windows.append(x[s:e])
            owner.append(i)
    return windows, owner


def pool_probabilities(probs: Sequence[Any]) -> np.ndarray:
    """Mean of probability vectors (float64), renormalised to sum to 1."""
    p = np.mean(np.asarray(probs, dtype=np.float64), axis=0)
    return p / p.sum()


def average_windows(outs: Sequence[WindowOutput], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Pool one clip's window outputs: every task's probabilities averaged (float64) and
    renormalised; valence/arousal and the gate averaged."""
    res: dict[str, np.ndarray] = {}
    for t in cfg.tasks:
        res[t.name] = pool_probabilities([o[t.name] for o in outs])
    for k in ("va", "gate"):
        res[k] = np.asarray(np.mean([o[k] for o in outs], axis=0, dtype=np.float64))
    return res


def group_windows(outs: Sequence[WindowOutput], owner: Sequence[int], n_items: int) -> list[list[WindowOutput]]:
    """Window outputs per item, ``owner[j]`` being the item of window j."""
    groups: list[list[WindowOutput]] = [[] for _ in range(n_items)]
    for o, i in zip(outs, owner):
        groups[i].append(o)
    return groups


def iter_batches(items: Iterator[Any], batch_size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most batch_size items."""
    batch: list[Any] = []
    for x in items:
        batch.append(x)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
