"""``tag_library``: predict every audio file under some folders and store one row per track.

Pipeline: ``walk_audio`` streams file paths -> a pool of decode threads (hash the file, skip it when
already done, decode + resample, find lyrics) with a bounded number of files in flight -> the main
thread groups decoded tracks into batches for one ``Recognizer.predict_batch`` -> rows are written
(and tags, with ``write_tags``) as each batch finishes. Threads suffice for decoding: libsndfile,
soxr, FFmpeg and hashlib release the GIL while they work. A file that fails anywhere becomes a row
with ``error`` set and the run goes on.

The same ``prepare_track`` / ``predict_rows`` functions run inside the Ray actors (``ray_runner``),
so both paths give the same rows.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..audio import PYAV_EXTRA_HINT, Audio, load_audio
from ..errors import MersdkError
from ..lyrics import Lyrics
from .lyrics_tags import find_lyrics
from .store import open_store
from .walk import FoundFile, walk_audio


@dataclass
class PreparedTrack:
    path: str
    sha256: str
    size_bytes: int
    audio: Audio
    lyrics: Lyrics | None
    lyrics_source: str | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class TagSummary:
    found: int = 0
    predicted: int = 0
    errors: int = 0
    skipped: int = 0
    tags_written: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tracks_per_s(self) -> float:
        return (self.predicted + self.errors) / self.seconds if self.seconds else 0.0


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def error_row(path: str, model_hash: str, error: str, *, sha256: str | None = None, size_bytes: int | None = None,
              warning: str | None = None) -> dict[str, Any]:
    return {"path": path, "sha256": sha256, "size_bytes": size_bytes, "model_hash": model_hash, "label": None,
            "probabilities": None, "valence": None, "arousal": None, "fusion_weight": None, "lyrics_used": None,
            "lyrics_source": None, "duration_s": None, "error": error, "warning": warning, "processed_at": now_iso()}


def _join(warnings: list[str]) -> str | None:
    return "; ".join(warnings) if warnings else None


def prepare_track(found: FoundFile, *, sample_rate: int, model_hash: str, max_duration_s: float | None,
                  done: set[tuple[str, str]] | frozenset = frozenset()) -> PreparedTrack | dict[str, Any] | None:
    """Hash, decode and find lyrics for one file: a ``PreparedTrack``, an error row, or None when
    this file (same path and SHA-256) was already done by this model."""
    path = found.path
    try:
        size = os.path.getsize(path)
        sha = sha256_of(path)
    except OSError as e:
        return error_row(path, model_hash, f"cannot read file ({e.strerror or e})")
    if (path, sha) in done:
        return None
    if found.kind == "needs-decoders":
        return error_row(path, model_hash, f"{os.path.splitext(path)[1]} files: {PYAV_EXTRA_HINT}", sha256=sha, size_bytes=size)
    if found.kind == "protected":
        return error_row(path, model_hash, "an .m4p file is a DRM-protected (FairPlay) iTunes track; it cannot be decoded",
                         sha256=sha, size_bytes=size)
    try:
        audio = load_audio(path, sample_rate, max_duration_s=max_duration_s)
    except MersdkError as e:
        return error_row(path, model_hash, f"{type(e).__name__}: {e}", sha256=sha, size_bytes=size)
    except Exception as e:  # noqa: BLE001 - a decoder bug on one hostile file must not end a library run
        return error_row(path, model_hash, f"unexpected {type(e).__name__} while decoding: {e}", sha256=sha, size_bytes=size)
    lyr = find_lyrics(path)
    return PreparedTrack(path, sha, size, audio, lyr.lyrics, lyr.source, list(lyr.warnings))


def _prediction_row(t: PreparedTrack, p, model_hash: str) -> dict[str, Any]:
    return {"path": t.path, "sha256": t.sha256, "size_bytes": t.size_bytes, "model_hash": model_hash, "label": p.label,
            "probabilities": json.dumps(p.probabilities), "valence": p.valence, "arousal": p.arousal,
            "fusion_weight": p.fusion_weight, "lyrics_used": p.lyrics_used,
            "lyrics_source": t.lyrics_source if p.lyrics_used else None, "duration_s": p.duration_s,
            "error": None, "warning": _join(t.warnings), "processed_at": now_iso()}


def predict_rows(rec, tracks: list[PreparedTrack]) -> list[dict[str, Any]]:
    """One ``predict_batch`` for the tracks; if the batch fails, each track alone, so one bad
    track becomes one error row."""
    if not tracks:
        return []
    model_hash = rec.checkpoint.model_hash
    items = [(t.audio.samples, t.lyrics, t.audio.sample_rate) for t in tracks]
    try:
        return [_prediction_row(t, p, model_hash) for t, p in zip(tracks, rec.predict_batch(items))]
    except Exception:  # noqa: BLE001 - isolate the culprit below
        if len(tracks) == 1:
            t = tracks[0]
            try:
                return [_prediction_row(t, rec.predict(*items[0][:2], sample_rate=items[0][2]), model_hash)]
            except Exception as e:  # noqa: BLE001
                return [error_row(t.path, model_hash, f"{type(e).__name__}: {e}", sha256=t.sha256, size_bytes=t.size_bytes,
                                  warning=_join(t.warnings))]
        return [row for t in tracks for row in predict_rows(rec, [t])]


def tag_row_file(row: dict[str, Any], model_hash: str, *, dry_run: bool, echo: Callable[[str], None]) -> bool:
    """Write a predicted row's mood into its file's tags (``dry_run``: print it); True when written.

    A failure turns the row into an error row (so a resumed run retries it). After writing, the
    row's hash and size are those of the tagged file, so a resumed run recognises it as done."""
    from .write_tags import TagWriteError, write_mood_tags

    if row["error"] is not None:
        return False
    try:
        frames = write_mood_tags(row["path"], row["label"], row["valence"], row["arousal"], model_hash, dry_run=dry_run)
    except TagWriteError as e:
        row["error"] = f"TagWriteError: {e}"
        return False
    if dry_run:
        echo(f"would write {row['path']}: " + ", ".join(f"{k}={v}" for k, v in frames.items()))
        return False
    row["sha256"], row["size_bytes"] = sha256_of(row["path"]), os.path.getsize(row["path"])
    return True


def check_extras(write_tags: bool, echo: Callable[[str], None]) -> None:
    """Fail before any work when ``write_tags`` cannot work; say once what a missing extra costs."""
    import importlib.util

    if importlib.util.find_spec("mutagen") is None:
        if write_tags:
            raise MersdkError('--write-tags needs mutagen: pip install "mersdk[tag]"')
        echo('mersdk tag: mutagen is not installed, so lyrics embedded in tags are not read (pip install "mersdk[tag]")')


def _count_in_background(paths: list[str], bar) -> threading.Thread:
    """Count the files in a second streaming walk so the progress bar can show an ETA early."""

    def count():
        n = sum(1 for _ in walk_audio(paths))
        bar.total = n
        bar.refresh()

    th = threading.Thread(target=count, name="mersdk-tag-count", daemon=True)
    th.start()
    return th


def tag_library(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    fmt: str | None = None,
    workers: int = 2,
    batch_size: int = 8,
    model: str | os.PathLike | None = None,
    backend: str = "auto",
    device: str = "auto",
    recognizer=None,
    num_threads: int | None = None,
    write_tags: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> TagSummary:
    """Tag every audio file under ``paths`` into ``out`` (see the module docstring).

    workers: decode threads. batch_size: tracks per ``predict_batch``. write_tags: also write the
    mood into each file's tags (``dry_run``: print what would be written instead). recognizer: an
    existing ``Recognizer`` (else one is made from model/backend/device). num_threads: the model's
    CPU threads; default: the cores left over by the decode threads (at least 1), because the
    decode threads run while the model does and PyTorch's OpenMP threads spin-wait badly when they
    share cores (measured on 2 cores: 1.7 tracks/s with 2 model threads, 4.0 with 1)."""
    import time

    from tqdm import tqdm

    from ..recognizer import Recognizer

    if workers < 1 or batch_size < 1:
        raise ValueError("workers and batch_size must be >= 1")
    echo = echo or (lambda s: print(s, file=sys.stderr))
    paths = [os.fspath(p) for p in paths]
    check_extras(write_tags, echo)
    if recognizer is None and num_threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        num_threads = max(1, cores - workers)
    rec = recognizer or Recognizer(model=model, backend=backend, device=device, num_threads=num_threads)
    model_hash = rec.checkpoint.model_hash
    rate = rec.config.frontend.sample_rate
    summary = TagSummary()
    t0 = time.perf_counter()
    with open_store(os.fspath(out), fmt) as store:
        done = store.done_keys(model_hash)
        bar = tqdm(total=None, unit="track", disable=not progress, dynamic_ncols=True, file=sys.stderr)
        if progress:
            _count_in_background(paths, bar)

        def emit(row: dict[str, Any]) -> None:
            if write_tags and tag_row_file(row, model_hash, dry_run=dry_run, echo=echo):
                summary.tags_written += 1
            store.write(row)
            if row["error"] is None:
                summary.predicted += 1
            else:
                summary.errors += 1
            bar.update(1)

        def on_problem(path: str, message: str) -> None:
            summary.problems.append((path, message))
            bar.write(f"mersdk tag: {path}: {message}", file=sys.stderr)

        found_files = walk_audio(paths, on_problem=on_problem)
        in_flight = workers * 2 + batch_size  # bounds memory: decoded audio waiting for the model
        batch: list[PreparedTrack] = []
        pending: dict[cf.Future, FoundFile] = {}
        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mersdk-decode")
        try:
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < in_flight:
                    f = next(found_files, None)
                    if f is None:
                        exhausted = True
                        break
                    summary.found += 1
                    pending[pool.submit(prepare_track, f, sample_rate=rate, model_hash=model_hash,
                                        max_duration_s=rec.max_duration_s, done=done)] = f
                finished = cf.wait(pending, return_when=cf.FIRST_COMPLETED).done if pending else set()
                for fut in finished:
                    found = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as e:  # noqa: BLE001 - one hostile file must not end a library run
                        result = error_row(found.path, model_hash, f"unexpected {type(e).__name__}: {e}")
                    if result is None:
                        summary.skipped += 1
                        bar.update(1)
                    elif isinstance(result, dict):
                        emit(result)
                    else:
                        batch.append(result)
                    if len(batch) >= batch_size:
                        for row in predict_rows(rec, batch):
                            emit(row)
                        batch = []
                if batch and exhausted and not pending:
                    for row in predict_rows(rec, batch):
                        emit(row)
                    batch = []
        finally:
            # on Ctrl-C, do not decode the files still queued; rows written so far are committed
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
