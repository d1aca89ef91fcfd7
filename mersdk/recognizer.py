"""``Recognizer``: the SDK's entry point.

    rec = mersdk.Recognizer()                      # bundled default model, backend="auto"
    p = rec.predict("song.flac", lyrics="song.lrc")
    p.label, p.probabilities, p.valence, p.arousal, p.to_dict()

    with mersdk.Recognizer() as rec:               # close() frees the backend's native resources
        ...

Long audio: the model analyses windows of ``window_s`` seconds (default 30 s, from the model
config); audio up to ``ONE_WINDOW_SLACK`` x window_s (37.5 s by default) is one window, so a
clip a little over 30 s is not analysed twice. Longer audio gets windows starting every ``hop_s``
seconds (default 30 s) plus a last window aligned to the end of the track, so every window is full
length and the tail is covered. Window results are averaged (probabilities, valence, arousal, gate).
Every window sees the whole lyrics. The rule, the batching and the averaging live in
``mersdk.pipeline``, which timelines and ``mersdk evaluate`` share.

Threads: one Recognizer may be shared by any number of threads. Calls keep their state in local
variables (``predict_batch(batch_size=)`` is an argument, never a changed attribute), and every
backend is safe to call concurrently (TensorRT serialises its engine calls with a lock).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _ext
from ._version import __version__
from .audio import Audio, load_audio
from .checkpoint import read_checkpoint
from .errors import InvalidAudioError
from .lyrics import Lyrics, load_lyrics
from .pipeline import (
    ONE_WINDOW_SLACK,
    average_windows,
    check_batch_size,
    check_window_options,
    encode_texts,
    group_windows,
    run_windows,
    window_bounds,
)
from .results import Prediction

if TYPE_CHECKING:
    from .backends.base import Backend
    from .timeline import AnalysisStream, Segment, TrackAnalysis

__all__ = ["ONE_WINDOW_SLACK", "Recognizer", "window_bounds"]  # the last two: their old home


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
    batch_size: windows per forward pass (``predict_batch`` and timelines; ``predict_batch`` also takes
    it per call). window_s / hop_s: see module docs.
    max_duration_s: longer inputs raise ``AudioTooLongError`` (None: no limit; memory grows with
    the resampled signal, 230 MB per hour). num_threads: CPU threads for the backend (None: default).
    backend_options: extra keyword options for the chosen backend, e.g. for "onnx"
    ``{"intra_op_threads": 2, "graph_optimization_level": "all"}``, for "tensorrt"
    ``{"precision": "fp16", "cache_dir": ...}``; an option the
    backend does not take raises ``ValueError`` naming the ones it does.

    Safe to share between threads (module docstring). ``close()`` (or a ``with`` block) frees the
    backend's native resources; a closed Recognizer raises ``BackendUnavailableError``.
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

        self.batch_size = check_batch_size(batch_size)
        self.checkpoint = read_checkpoint(model)
        self.config = self.checkpoint.config
        self.window_s, self.hop_s = check_window_options(
            self.config.window_s if window_s is None else window_s, self.config.hop_s if hop_s is None else hop_s
        )
        self.max_duration_s = max_duration_s
        self.choice = backends.choose(backend, device, checkpoint=self.checkpoint)
        self._backend: Backend = backends.create(
            self.choice, self.checkpoint, num_threads=num_threads, **(backend_options or {})
        )
        self._primary = self.config.task(self.config.primary_task)

    # ------------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.choice.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self._primary.labels

    @property
    def runtime(self) -> Backend:
        """The backend object running the model (``mersdk.backends.base.Backend``): for benchmarks
        and tools that time its stages; ``predict`` and friends are the API."""
        return self._backend

    def close(self) -> None:
        """Free the backend's native resources (GPU memory, sessions). Calling it again is harmless."""
        self._backend.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        from . import backends

        return {
            "mersdk": __version__,
            "build": _ext.build_info(),
            "backend": self.choice.to_dict(),
            "backends": {
                k: ("available" if v is None else v)
                for k, v in backends.availability(checkpoint=self.checkpoint).items()
            },
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
            "kernels": self._backend.kernels(),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
        }

    # ------------------------------------------------------------------------------------------
    def _prepare(self, audio: Any, lyrics: Any, sample_rate: int | None) -> _Item:
        a = load_audio(
            audio, self.config.frontend.sample_rate, sample_rate=sample_rate, max_duration_s=self.max_duration_s
        )
        ly = load_lyrics(lyrics)
        return _Item(a, ly, window_bounds(len(a.samples), a.sample_rate, self.window_s, self.hop_s))

    def _run(self, items: list[_Item], batch_size: int) -> list[Prediction]:
        emb_per_item = encode_texts(self._backend, [it.lyrics.text if it.lyrics else None for it in items])
        # every window of every item; the pipeline batches them, batch_size windows per forward pass
        jobs = [(i, s, e) for i, it in enumerate(items) for s, e in it.windows]
        outs = run_windows(
            self._backend,
            [items[i].audio.samples[s:e] for i, s, e in jobs],
            [emb_per_item[i] for i, _, _ in jobs],
            batch_size,
            self.config.text_encoder.hidden_size,
        )
        per_item = group_windows(outs, [i for i, _, _ in jobs], len(items))
        return [self._prediction(it, average_windows(o, self.config)) for it, o in zip(items, per_item)]

    def _prediction(self, item: _Item, pooled: dict[str, np.ndarray]) -> Prediction:
        task_probs = {t.name: {lab: float(x) for lab, x in zip(t.labels, pooled[t.name])} for t in self.config.tasks}
        probs = task_probs[self._primary.name]
        va = pooled["va"]
        return Prediction(
            label=max(probs, key=probs.__getitem__),
            probabilities=probs,
            valence=float(np.clip(va[0], -1, 1)),
            arousal=float(np.clip(va[1], -1, 1)),
            lyrics_used=item.lyrics is not None,
            fusion_weight=float(pooled["gate"]),
            duration_s=round(item.audio.duration_s, 3),
            backend=self.choice.name,
            task_probabilities=task_probs,
            n_windows=len(item.windows),
            model=self.checkpoint.model_hash,
        )

    def predict(self, audio: Any, lyrics: Any = None, *, sample_rate: int | None = None) -> Prediction:
        """audio: path, file object, bytes, or NumPy array (with sample_rate=). lyrics: text, a
        .txt/.lrc path, bytes, or None. Returns a ``Prediction``; raises ``MersdkError``s."""
        return self._run([self._prepare(audio, lyrics, sample_rate)], self.batch_size)[0]

    def predict_batch(self, items: Iterable[Any], *, batch_size: int | None = None) -> list[Prediction]:
        """Predict many inputs, batched (padding + masks), results in input order.

        Each item is an audio source, a tuple ``(audio, lyrics)`` / ``(audio, lyrics, sample_rate)``,
        or a dict with keys ``audio``, ``lyrics``, ``sample_rate``. An invalid item raises its error.
        """
        size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        prepared = [self._prepare(*_unpack(x)) for x in items]
        return self._run(prepared, size) if prepared else []

    def analyze(
        self,
        audio: Any,
        lyrics: Any = None,
        *,
        sample_rate: int | None = None,
        window_s: float = 10.0,
        hop_s: float = 5.0,
        context_s: float = 2.0,
        smooth: int = 3,
    ) -> TrackAnalysis:
        """Timeline of a whole track: a ``TrackAnalysis`` with ``summary`` (a Prediction) and
        ``timeline`` (Segments with start/end, probabilities, valence, arousal, fusion weight and the
        lyric lines each segment read). Time-stamped lyrics are aligned to the audio; see
        ``mersdk.timeline`` for the alignment and smoothing rules."""
        from .timeline import analyze

        return analyze(
            self,
            audio,
            lyrics,
            sample_rate=sample_rate,
            window_s=window_s,
            hop_s=hop_s,
            context_s=context_s,
            smooth=smooth,
        )

    def iter_analyze(
        self,
        audio: Any,
        lyrics: Any = None,
        *,
        sample_rate: int | None = None,
        window_s: float = 10.0,
        hop_s: float = 5.0,
        context_s: float = 2.0,
    ) -> Iterator[Segment]:
        """Generator form of ``analyze``: raw Segments as they are computed, bounded memory."""
        from .timeline import iter_analyze

        return iter_analyze(
            self, audio, lyrics, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s, context_s=context_s
        )

    def stream(
        self,
        sample_rate: int,
        lyrics: Any = None,
        *,
        channels: int = 1,
        window_s: float = 10.0,
        hop_s: float = 5.0,
        context_s: float = 2.0,
    ) -> AnalysisStream:
        """Push-style timeline for players that decode themselves: ``feed(pcm_block)`` returns the
        segments completed so far, ``close()`` the rest (see ``mersdk.timeline.AnalysisStream``)::

            stream = rec.stream(sample_rate=44100, lyrics="song.lrc", channels=2)
            for block in decoder:                  # (frames, 2) float32 or int16
                for seg in stream.feed(block):
                    show(seg)
            for seg in stream.close():
                show(seg)
        """
        from .timeline import AnalysisStream

        return AnalysisStream(
            self, sample_rate, lyrics, channels=channels, window_s=window_s, hop_s=hop_s, context_s=context_s
        )

    def __repr__(self) -> str:
        return (
            f"Recognizer(model={self.checkpoint.model_hash}, backend={self.choice.name}, device={self.choice.device})"
        )


def _unpack(x: Any) -> tuple[Any, Any, Any]:
    if isinstance(x, dict):
        if "audio" not in x:
            raise InvalidAudioError("a predict_batch dict item needs an 'audio' key")
        return x["audio"], x.get("lyrics"), x.get("sample_rate")
    if isinstance(x, tuple):
        if not 1 <= len(x) <= 3:
            raise InvalidAudioError("a predict_batch tuple item is (audio, lyrics[, sample_rate])")
        return (tuple(x) + (None, None))[:3]
    return x, None, None
