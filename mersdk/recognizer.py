"""``Recognizer``: the SDK's entry point.

    rec = mersdk.Recognizer()                      # bundled default model, backend="auto"
    p = rec.predict("song.flac", lyrics="song.lrc")
    p.label, p.probabilities, p.valence, p.arousal, p.to_dict()

Long audio: the model analyses windows of ``window_s`` seconds (default 30 s, from the model
config); audio up to ``ONE_WINDOW_SLACK`` x window_s (37.5 s by default) is one window, so a
clip a little over 30 s is not analysed twice. Longer audio gets windows starting every ``hop_s``
seconds (default 30 s) plus a last window aligned to the end of the track, so every window is full
length and the tail is covered. Window results are averaged (probabilities, valence, arousal, gate).
Every window sees the whole lyrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from . import _ext
from ._version import __version__
from .audio import Audio, load_audio
from .checkpoint import read_checkpoint
from .errors import InvalidAudioError
from . import ops
from .lyrics import Lyrics, load_lyrics
from .results import Prediction
from .text_encoder import pad_embeddings


ONE_WINDOW_SLACK = 1.25


def window_bounds(n_samples: int, sample_rate: int, window_s: float, hop_s: float,
                  slack: float = ONE_WINDOW_SLACK) -> list[tuple[int, int]]:
    """[start, end) sample ranges of the analysis windows (see module docstring)."""
    win, hop = int(round(window_s * sample_rate)), int(round(hop_s * sample_rate))
    if n_samples <= int(win * slack):
        return [(0, n_samples)]
    starts = list(range(0, n_samples - win, hop))
    if starts[-1] + win < n_samples:
        starts.append(n_samples - win)
    return [(s, s + win) for s in starts]


@dataclass
class _Item:
    audio: Audio
    lyrics: Lyrics | None
    windows: list[tuple[int, int]]


class Recognizer:
    """Recognise the emotion of music from its audio and (optionally) its lyrics.

    model: a checkpoint folder (``config.json`` + ``model.safetensors``) or None for the bundled model.
    device: "auto" | "cpu" | "cuda". backend: "auto" | a registered backend name ("torch", ...);
    "auto" picks the fastest that can run here and ``info()`` says which and why.
    batch_size: windows per forward pass in ``predict_batch``. window_s / hop_s: see module docs.
    max_duration_s: longer inputs raise ``AudioTooLongError`` (None: no limit; memory grows with
    the resampled signal, 230 MB per hour). num_threads: CPU threads for the backend (None: default).
    backend_options: extra keyword options for the chosen backend, e.g. for "onnx"
    ``{"intra_op_threads": 2, "graph_optimization_level": "all"}``, for "tensorrt"
    ``{"precision": "fp16", "cache_dir": ...}``; an option the
    backend does not take raises ``ValueError`` naming the ones it does.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str = "auto",
        backend: str = "auto",
        *,
        batch_size: int = 8,
        window_s: float | None = None,
        hop_s: float | None = None,
        max_duration_s: float | None = 4 * 3600.0,
        num_threads: int | None = None,
        backend_options: dict[str, Any] | None = None,
    ):
        from . import backends

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.checkpoint = read_checkpoint(model)
        self.config = self.checkpoint.config
        self.window_s = float(window_s or self.config.window_s)
        self.hop_s = float(hop_s or self.config.hop_s)
        if self.window_s < 1.0 or self.hop_s <= 0:
            raise ValueError("window_s must be >= 1 s and hop_s > 0")
        self.batch_size = int(batch_size)
        self.max_duration_s = max_duration_s
        self.choice = backends.choose(backend, device, checkpoint=self.checkpoint)
        self._backend = backends.create(self.choice, self.checkpoint, num_threads=num_threads, **(backend_options or {}))
        self._log_mel = getattr(self._backend, "log_mel", None)
        self._primary = self.config.task(self.config.primary_task)

    # ------------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.choice.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self._primary.labels

    def _kernels(self) -> dict[str, str]:
        from . import ops

        cfg = self.config
        k = ops.describe(self.choice.device, cfg.d_model // cfg.n_heads)
        if self._log_mel is None:
            # graph backends (ONNX Runtime, TensorRT) run their own attention; the log-mel is ours
            k = {"log_mel": ops.describe("cpu")["log_mel"], "attention": f"inside the {self.choice.name} graph"}
        return k

    def info(self) -> dict[str, Any]:
        from . import backends

        return {
            "mersdk": __version__,
            "build": _ext.build_info(),
            "backend": self.choice.to_dict(),
            "backends": {k: ("available" if v is None else v)
                         for k, v in backends.availability(checkpoint=self.checkpoint).items()},
            "model": {
                "path": str(self.checkpoint.path),
                "hash": self.checkpoint.model_hash,
                "primary_task": self.config.primary_task,
                "labels": {t.name: list(t.labels) for t in self.config.tasks},
                "sample_rate": self.config.frontend.sample_rate,
                "text_encoder": self.config.text_encoder.source,
                "trained": bool(self.checkpoint.metadata.get("trained", False)),
                "description": self.config.description,
            },
            "kernels": self._kernels(),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
        }

    # ------------------------------------------------------------------------------------------
    def _prepare(self, audio, lyrics, sample_rate) -> _Item:
        a = load_audio(audio, self.config.frontend.sample_rate, sample_rate=sample_rate, max_duration_s=self.max_duration_s)
        ly = load_lyrics(lyrics)
        return _Item(a, ly, window_bounds(len(a.samples), a.sample_rate, self.window_s, self.hop_s))

    def _forward_windows(self, windows: list[np.ndarray], embs: list[np.ndarray | None]) -> list[dict[str, np.ndarray]]:
        """Run the model on windows (mono samples at the model rate) with their lyric embeddings,
        ``batch_size`` windows per forward pass; returns one output dict per window, in order."""
        cfg = self.config
        outs: list[dict[str, np.ndarray]] = []
        for b0 in range(0, len(windows), self.batch_size):
            batch = windows[b0 : b0 + self.batch_size]
            # a backend may compute the log-mel where its model runs (cuda: on the GPU); else the
            # compiled CPU kernel, or the NumPy reference without the extension (ops decides)
            mel, lengths = self._log_mel(batch) if self._log_mel else ops.log_mel_batch_fast(batch, cfg.frontend)
            emb, mask = pad_embeddings(embs[b0 : b0 + self.batch_size], cfg.text_encoder.hidden_size)
            out = self._backend.forward(mel, lengths, emb, mask)
            outs.extend({k: v[j] for k, v in out.items()} for j in range(len(mel)))
        return outs

    def _encode_texts(self, texts: list[str | None]) -> list[np.ndarray | None]:
        """Lyric embeddings per text, each distinct text encoded once."""
        unique = list(dict.fromkeys(t for t in texts if t))
        enc = dict(zip(unique, self._backend.encode_lyrics(unique))) if unique else {}
        return [enc[t] if t else None for t in texts]

    def _run(self, items: list[_Item]) -> list[Prediction]:
        cfg = self.config
        emb_per_item = self._encode_texts([it.lyrics.text if it.lyrics else None for it in items])
        # every window of every item, in order; batches never mix more than batch_size windows
        jobs = [(i, s, e) for i, it in enumerate(items) for s, e in it.windows]
        outs = self._forward_windows([items[i].audio.samples[s:e] for i, s, e in jobs], [emb_per_item[i] for i, _, _ in jobs])
        acc: dict[str, list[list[np.ndarray]]] = {}
        for (i, _, _), out in zip(jobs, outs):
            for k, v in out.items():
                acc.setdefault(k, [[] for _ in items])[i].append(v)
        results = []
        for i, it in enumerate(items):
            task_probs = {}
            for t in cfg.tasks:
                p = np.mean(acc[t.name][i], axis=0, dtype=np.float64)
                p = p / p.sum()
                task_probs[t.name] = {lab: float(x) for lab, x in zip(t.labels, p)}
            va = np.mean(acc["va"][i], axis=0)
            probs = task_probs[self._primary.name]
            results.append(Prediction(
                label=max(probs, key=probs.get),
                probabilities=probs,
                valence=float(np.clip(va[0], -1, 1)),
                arousal=float(np.clip(va[1], -1, 1)),
                lyrics_used=it.lyrics is not None,
                fusion_weight=float(np.mean(acc["gate"][i])),
                duration_s=round(it.audio.duration_s, 3),
                backend=self.choice.name,
                task_probabilities=task_probs,
                n_windows=len(it.windows),
                model=self.checkpoint.model_hash,
            ))
        return results

    def predict(self, audio, lyrics=None, *, sample_rate: int | None = None) -> Prediction:
        """audio: path, file object, bytes, or NumPy array (with sample_rate=). lyrics: text, a
        .txt/.lrc path, bytes, or None. Returns a ``Prediction``; raises ``MersdkError``s."""
        return self._run([self._prepare(audio, lyrics, sample_rate)])[0]

    def predict_batch(self, items: Iterable, *, batch_size: int | None = None) -> list[Prediction]:
        """Predict many inputs, batched (padding + masks), results in input order.

        Each item is an audio source, a tuple ``(audio, lyrics)`` / ``(audio, lyrics, sample_rate)``,
        or a dict with keys ``audio``, ``lyrics``, ``sample_rate``. An invalid item raises its error.
        """
        prepared = [self._prepare(*_unpack(x)) for x in items]
        if batch_size is not None:
            if batch_size < 1:
                raise ValueError("batch_size must be >= 1")
            saved, self.batch_size = self.batch_size, int(batch_size)
            try:
                return self._run(prepared) if prepared else []
            finally:
                self.batch_size = saved
        return self._run(prepared) if prepared else []

    def analyze(self, audio, lyrics=None, *, sample_rate: int | None = None, window_s: float = 10.0,
                hop_s: float = 5.0, context_s: float = 2.0, smooth: int = 3):
        """Timeline of a whole track: a ``TrackAnalysis`` with ``summary`` (a Prediction) and
        ``timeline`` (Segments with start/end, probabilities, valence, arousal, fusion weight and the
        lyric lines each segment read). Time-stamped lyrics are aligned to the audio; see
        ``mersdk.timeline`` for the alignment and smoothing rules."""
        from .timeline import analyze

        return analyze(self, audio, lyrics, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s,
                       context_s=context_s, smooth=smooth)

    def iter_analyze(self, audio, lyrics=None, *, sample_rate: int | None = None, window_s: float = 10.0,
                     hop_s: float = 5.0, context_s: float = 2.0):
        """Generator form of ``analyze``: raw Segments as they are computed, bounded memory."""
        from .timeline import iter_analyze

        return iter_analyze(self, audio, lyrics, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s, context_s=context_s)

    def __repr__(self) -> str:
        return f"Recognizer(model={self.checkpoint.model_hash}, backend={self.choice.name}, device={self.choice.device})"


def _unpack(x) -> tuple[Any, Any, Any]:
    if isinstance(x, dict):
        if "audio" not in x:
            raise InvalidAudioError("a predict_batch dict item needs an 'audio' key")
        return x["audio"], x.get("lyrics"), x.get("sample_rate")
    if isinstance(x, tuple):
        if not 1 <= len(x) <= 3:
            raise InvalidAudioError("a predict_batch tuple item is (audio, lyrics[, sample_rate])")
        return (tuple(x) + (None, None))[:3]
    return x, None, None
