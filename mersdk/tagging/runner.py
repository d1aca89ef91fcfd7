"""``tag_library``: predict every audio file under some folders and store one row per track.

Pipeline: ``walk_audio`` streams file paths -> a pool of decode threads (hash the file, skip it when
already done, decode + resample, find lyrics) with a bounded number of files in flight -> the main
thread groups decoded tracks into batches for one ``Recognizer.predict_batch`` -> rows are written
(and tags, with ``write_tags``) as each batch finishes. Threads suffice for decoding: libsndfile,
soxr, FFmpeg and hashlib release the GIL while they work. A file that fails anywhere becomes a row
with ``error`` set and the run goes on.

The same ``prepare_track`` / ``predict_rows`` functions run inside the Ray actors (``ray_runner``),
so both paths give the same rows.

Resume without reading: a file whose path, size and modification time match the last good row of
the same model is skipped before any byte of it is read; with changed size or mtime it is hashed,
and only a changed hash redoes it. With ``write_tags``, a file analysed by an earlier run whose tags
mersdk has not written yet (``tagged_at`` empty) gets its tags from the stored row, without
predicting again. Only regular files are opened (a FIFO or a device named ``*.wav`` becomes an
error row), and a file is hashed only up to the size it had when it was checked.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..audio import PYAV_EXTRA_HINT, Audio, load_audio
from ..errors import MersdkError
from ..files import sha256_file as sha256_of
from ..lyrics import Lyrics
from .lyrics_tags import find_lyrics
from .store import Done, not_regular_reason, open_store
from .walk import FoundFile, walk_audio

# a file modified this recently may change again within its mtime's resolution (2 s on FAT) without
# the mtime moving: its mtime is not recorded, so the next run hashes it rather than trusting stat
_RACY_MTIME_NS = 2_000_000_000


class TagOptionError(MersdkError, ValueError):
    """An option of ``tag_library`` is out of range (a ValueError too, as it was before)."""


@dataclass
class PreparedTrack:
    path: str
    sha256: str
    size_bytes: int
    audio: Audio
    lyrics: Lyrics | None
    lyrics_source: str | None
    warnings: list[str] = field(default_factory=list)
    mtime_ns: int | None = None


@dataclass
class Retag:
    """An unchanged file analysed by an earlier run whose tags mersdk has not written yet: its stored
    row (brought up to date with the file's current hash, size and mtime) gets written into its tags."""

    row: dict[str, Any]


@dataclass
class TagSummary:
    """found: audio files seen; predicted / errors: rows written; skipped: already done (unchanged);
    tags_written: files whose tags were written; tag_errors: files whose tags could not be written
    (each also told through ``echo`` and kept in ``problems``); interrupted: stopped early."""

    found: int = 0
    predicted: int = 0
    errors: int = 0
    skipped: int = 0
    tags_written: int = 0
    tag_errors: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def tracks_per_s(self) -> float:
        return (self.predicted + self.errors) / self.seconds if self.seconds else 0.0


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def recorded_mtime(st: os.stat_result) -> int | None:
    """The mtime to store for a file just read (None when too recent to trust; see _RACY_MTIME_NS)."""
    return st.st_mtime_ns if time.time_ns() - st.st_mtime_ns >= _RACY_MTIME_NS else None


def error_row(
    path: str,
    model_hash: str,
    error: str,
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    warning: str | None = None,
) -> dict[str, Any]:
    return {
        "path": path,
        "sha256": sha256,
        "size_bytes": size_bytes,
        "model_hash": model_hash,
        "label": None,
        "probabilities": None,
        "valence": None,
        "arousal": None,
        "fusion_weight": None,
        "lyrics_used": None,
        "lyrics_source": None,
        "duration_s": None,
        "error": error,
        "warning": warning,
        "processed_at": now_iso(),
        "mtime_ns": None,
        "tagged_at": None,
    }


def _join(warnings: list[str]) -> str | None:
    return "; ".join(warnings) if warnings else None


def prepare_track(
    found: FoundFile,
    *,
    sample_rate: int,
    model_hash: str,
    max_duration_s: float | None,
    done: Mapping[str, Done] = {},
    retag: bool = False,
) -> PreparedTrack | Retag | dict[str, Any] | None:
    """Check, hash, decode and find lyrics for one file: a ``PreparedTrack``, an error row, None when
    ``done`` says this model already did this unchanged file, or (with ``retag``) a ``Retag`` when it
    did but mersdk has not written its tags yet."""
    path = found.path
    try:
        st = os.stat(path)
    except OSError as e:
        return error_row(path, model_hash, f"cannot read file ({e.strerror or e})")
    reason = not_regular_reason(st)
    if reason:
        return error_row(path, model_hash, f"{reason}, not a regular file; skipped")
    previous = done.get(path)
    unchanged = (
        previous is not None
        and previous.mtime_ns is not None
        and (previous.size_bytes, previous.mtime_ns) == (st.st_size, st.st_mtime_ns)
    )
    sha = previous.sha256 if previous is not None and unchanged else None
    if not unchanged:
        try:
            sha = sha256_of(path, st.st_size)
        except OSError as e:
            return error_row(path, model_hash, f"cannot read file ({e.strerror or e})")
        unchanged = previous is not None and previous.sha256 == sha
    if unchanged:
        assert previous is not None  # unchanged is only ever True with a previous row
        if retag and previous.tagged_at is None and previous.row is not None:
            return Retag({**previous.row, "sha256": sha, "size_bytes": st.st_size, "mtime_ns": recorded_mtime(st)})
        return None
    assert sha is not None  # hashed above: only an unchanged file (returned above) keeps the recorded one
    size = st.st_size
    if found.kind == "needs-decoders":
        return error_row(
            path, model_hash, f"{os.path.splitext(path)[1]} files: {PYAV_EXTRA_HINT}", sha256=sha, size_bytes=size
        )
    if found.kind == "protected":
        return error_row(
            path,
            model_hash,
            "an .m4p file is a DRM-protected (FairPlay) iTunes track; it cannot be decoded",
            sha256=sha,
            size_bytes=size,
        )
    try:
        audio = load_audio(path, sample_rate, max_duration_s=max_duration_s)
    except MersdkError as e:
        return error_row(path, model_hash, f"{type(e).__name__}: {e}", sha256=sha, size_bytes=size)
    except Exception as e:
        return error_row(
            path, model_hash, f"unexpected {type(e).__name__} while decoding: {e}", sha256=sha, size_bytes=size
        )
    lyr = find_lyrics(path)
    return PreparedTrack(path, sha, size, audio, lyr.lyrics, lyr.source, list(lyr.warnings), recorded_mtime(st))


def _prediction_row(t: PreparedTrack, p, model_hash: str) -> dict[str, Any]:
    return {
        "path": t.path,
        "sha256": t.sha256,
        "size_bytes": t.size_bytes,
        "model_hash": model_hash,
        "label": p.label,
        "probabilities": json.dumps(p.probabilities),
        "valence": p.valence,
        "arousal": p.arousal,
        "fusion_weight": p.fusion_weight,
        "lyrics_used": p.lyrics_used,
        "lyrics_source": t.lyrics_source if p.lyrics_used else None,
        "duration_s": p.duration_s,
        "error": None,
        "warning": _join(t.warnings),
        "processed_at": now_iso(),
        "mtime_ns": t.mtime_ns,
        "tagged_at": None,
    }


def predict_rows(rec, tracks: list[PreparedTrack]) -> list[dict[str, Any]]:
    """One ``predict_batch`` for the tracks; if the batch fails, each track alone, so one bad
    track becomes one error row."""
    if not tracks:
        return []
    model_hash = rec.checkpoint.model_hash
    items = [(t.audio.samples, t.lyrics, t.audio.sample_rate) for t in tracks]
    try:
        return [_prediction_row(t, p, model_hash) for t, p in zip(tracks, rec.predict_batch(items))]
    except Exception:
        if len(tracks) == 1:
            t = tracks[0]
            try:
                return [_prediction_row(t, rec.predict(*items[0][:2], sample_rate=items[0][2]), model_hash)]
            except Exception as e:
                return [
                    error_row(
                        t.path,
                        model_hash,
                        f"{type(e).__name__}: {e}",
                        sha256=t.sha256,
                        size_bytes=t.size_bytes,
                        warning=_join(t.warnings),
                    )
                ]
        return [row for t in tracks for row in predict_rows(rec, [t])]


def tag_row_file(
    row: dict[str, Any],
    model_hash: str,
    *,
    dry_run: bool,
    echo: Callable[[str], None],
    overwrite_mood: bool = False,
    keep_mtime: bool = False,
) -> str:
    """Write a predicted row's mood into its file's tags (``dry_run``: print what would be written).

    Returns "written", "dry-run", "failed" or "no-prediction" (an error row). After a write the row
    records the tagged file's hash, size and mtime and ``tagged_at``, so a resumed run knows it; a
    failed write is told through ``echo`` and kept as the row's ``warning``, with the prediction (a
    later ``--write-tags`` run tries the tags again)."""
    from .write_tags import TagWriteError, write_mood_tags

    if row["error"] is not None:
        return "no-prediction"
    try:
        written = write_mood_tags(
            row["path"],
            row["label"],
            row["valence"],
            row["arousal"],
            model_hash,
            dry_run=dry_run,
            overwrite_mood=overwrite_mood,
            keep_mtime=keep_mtime,
        )
    except TagWriteError as e:
        echo(f"mersdk tag: tags not written: {e}")
        row["warning"] = _join([w for w in (row.get("warning"), f"tags not written: {e}") if w])
        return "failed"
    kept = (
        f" (the file's own mood {written.kept_user_mood!r} kept; --overwrite-mood replaces it)"
        if written.kept_user_mood
        else ""
    )
    if dry_run:
        echo(f"would write {row['path']}: " + ", ".join(f"{k}={v}" for k, v in written.frames.items()) + kept)
        return "dry-run"
    st = os.stat(row["path"])
    row["sha256"], row["size_bytes"], row["mtime_ns"] = sha256_of(row["path"]), st.st_size, recorded_mtime(st)
    row["tagged_at"] = now_iso()
    if row.get("warning"):  # a failure of an earlier attempt no longer holds
        row["warning"] = _join([w for w in row["warning"].split("; ") if not w.startswith("tags not written")])
    return "written"


def check_extras(write_tags: bool, echo: Callable[[str], None]) -> None:
    """Fail before any work when ``write_tags`` cannot work; say once what a missing extra costs."""
    import importlib.util

    if importlib.util.find_spec("mutagen") is None:
        if write_tags:
            raise MersdkError('--write-tags needs mutagen: pip install "mersdk[tag]"')
        echo(
            'mersdk tag: mutagen is not installed, so lyrics embedded in tags are not read (pip install "mersdk[tag]")'
        )


def _count_in_background(paths: list[str | os.PathLike], bar) -> threading.Thread:
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
    overwrite_mood: bool = False,
    keep_mtime: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> TagSummary:
    """Tag every audio file under ``paths`` into ``out`` (see the module docstring).

    workers: decode threads. batch_size: tracks per ``predict_batch``. write_tags: also write the
    mood into each file's tags (``dry_run``: print what would be written instead; ``overwrite_mood``:
    replace a mood the user already has; ``keep_mtime``: keep the files' modification times; see
    ``write_tags``). recognizer: an existing ``Recognizer`` (else one is made from
    model/backend/device). num_threads: the model's CPU threads; default: the cores left over by the
    decode threads (at least 1), because the decode threads run while the model does and PyTorch's
    OpenMP threads spin-wait badly when they share cores (measured on 2 cores: 1.7 tracks/s with 2
    model threads, 4.0 with 1). stop: when set (from another thread), the run stops at the next file
    or batch, keeps the rows written, and returns with ``interrupted`` set."""
    from tqdm import tqdm

    from ..recognizer import Recognizer

    if workers < 1 or batch_size < 1:
        raise TagOptionError(f"workers and batch_size must be >= 1 (got workers={workers}, batch_size={batch_size})")
    own_echo = echo is not None
    echo = echo or (lambda s: print(s, file=sys.stderr))
    stop = stop or threading.Event()
    paths = [os.fspath(p) for p in paths]
    check_extras(write_tags, echo)
    summary = TagSummary()
    t0 = time.perf_counter()
    with open_store(os.fspath(out), fmt) as store:  # a bad --out fails here, before the model loads
        if recognizer is None and num_threads is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            num_threads = max(1, cores - workers)
        rec = recognizer or Recognizer(model=model, backend=backend, device=device, num_threads=num_threads)
        model_hash = rec.checkpoint.model_hash
        rate = rec.config.frontend.sample_rate
        done = store.done_map(model_hash, with_untagged_rows=write_tags)
        bar = tqdm(total=None, unit="track", disable=not progress, dynamic_ncols=True, file=sys.stderr)
        if progress:
            _count_in_background(paths, bar)

        # above the progress bar unless the caller chose where messages go
        tag_echo = echo if own_echo or not progress else (lambda s: bar.write(s, file=sys.stderr))

        def write_tags_of(row: dict[str, Any]) -> None:
            status = tag_row_file(
                row, model_hash, dry_run=dry_run, echo=tag_echo, overwrite_mood=overwrite_mood, keep_mtime=keep_mtime
            )
            if status == "written":
                summary.tags_written += 1
            elif status == "failed":
                summary.tag_errors += 1
                summary.problems.append((row["path"], row["warning"]))

        def emit(row: dict[str, Any]) -> None:
            if write_tags and not stop.is_set():
                write_tags_of(row)
            store.write(row)
            if row["error"] is None:
                summary.predicted += 1
            else:
                summary.errors += 1
            bar.update(1)

        def retag(row: dict[str, Any]) -> None:
            summary.skipped += 1
            if not stop.is_set():
                write_tags_of(row)
                if not dry_run:
                    store.write(row)
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
            while (pending or not exhausted) and not stop.is_set():
                while not exhausted and len(pending) < in_flight:
                    f = next(found_files, None)
                    if f is None:
                        exhausted = True
                        break
                    summary.found += 1
                    pending[
                        pool.submit(
                            prepare_track,
                            f,
                            sample_rate=rate,
                            model_hash=model_hash,
                            max_duration_s=rec.max_duration_s,
                            done=done,
                            retag=write_tags,
                        )
                    ] = f
                # a timeout, so that ``stop`` is seen while every worker is busy
                finished = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED).done if pending else set()
                for fut in finished:
                    found = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as e:
                        result = error_row(found.path, model_hash, f"unexpected {type(e).__name__}: {e}")
                    if result is None:
                        summary.skipped += 1
                        bar.update(1)
                    elif isinstance(result, Retag):
                        retag(result.row)
                    elif isinstance(result, dict):
                        emit(result)
                    else:
                        batch.append(result)
                    if len(batch) >= batch_size and not stop.is_set():
                        for row in predict_rows(rec, batch):
                            emit(row)
                        batch = []
                if batch and exhausted and not pending and not stop.is_set():
                    for row in predict_rows(rec, batch):
                        emit(row)
                    batch = []
            summary.interrupted = stop.is_set()
        finally:
            # on Ctrl-C or an error, neither wait for nor start the files still queued (a worker may
            # be stuck on a slow disk); rows written so far are committed
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
