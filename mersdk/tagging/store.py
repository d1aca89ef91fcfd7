"""Where ``mersdk tag`` puts its rows: SQLite (default), JSON Lines, CSV or Parquet, one row per track.

Every row has the columns in ``COLUMNS``. Rows are written as they are produced and made durable at
once (SQLite commits each row, JSONL/CSV flush each line), so an interrupted run keeps everything
already written; Parquet is the exception: a file is only readable once closed, so use it for
runs that finish (the Ray path) and SQLite/JSONL for resumable ones.

Resuming: ``done_map(model_hash)`` gives, per path, what the last good row of that model recorded:
its SHA-256, size and modification time (``mtime_ns``), and whether mersdk wrote its tags
(``tagged_at``); the runner skips a file whose size and mtime are unchanged without reading it,
hashes it when they changed (same hash: still done), and redoes it otherwise. Error rows are retried
on the next run. SQLite keeps one row per (path, model_hash) (a retry replaces it); JSONL and CSV
are append-only, so a reader keeps the last row for a path.

The output must be a regular file (or not exist yet, in an existing folder): a FIFO, a device
(``/dev/stdout``, ``/dev/full``) or a folder is refused with ``StoreError`` before any work, and so
is a file that is not a store of the chosen format; a write that fails (disk full, file size limit)
raises ``StoreError`` and ends the run, keeping the rows already written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import MersdkError
from ..files import fsync_dir, fsync_file, kind_of, temp_sibling

COLUMNS = (
    "path",
    "sha256",
    "size_bytes",
    "model_hash",
    "label",
    "probabilities",
    "valence",
    "arousal",
    "fusion_weight",
    "lyrics_used",
    "lyrics_source",
    "duration_s",
    "error",
    "warning",
    "processed_at",
    "mtime_ns",
    "tagged_at",
)
FORMATS = ("sqlite", "jsonl", "csv", "parquet")
_EXTENSIONS = {
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
    ".db": "sqlite",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}


def format_for(path: str, fmt: str | None) -> str:
    """The explicit ``fmt``, else the one the extension names, else SQLite."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower(), "sqlite")


class StoreError(MersdkError):
    """The output file cannot be used or written (not a regular file, not a store, disk full)."""


def not_regular_reason(st: os.stat_result) -> str | None:
    """None for a regular file, else what the file is ("a FIFO (named pipe)", ...)."""
    return None if stat.S_ISREG(st.st_mode) else kind_of(st.st_mode)


def check_output_path(path: str) -> None:
    """Refuse an output that is not a regular file, or whose folder does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise StoreError(f"--out {path}: the folder {folder} does not exist") from None
        return
    except OSError as e:
        raise StoreError(f"--out {path}: cannot use it ({e.strerror or e})") from None
    reason = not_regular_reason(st)
    if reason:
        raise StoreError(f"--out {path} is {reason}, not a regular file; give a file path such as library.sqlite")


def open_store(path: str, fmt: str | None = None) -> ResultStore:
    kind = format_for(path, fmt)
    check_output_path(path)
    return {"sqlite": SqliteStore, "jsonl": JsonlStore, "csv": CsvStore, "parquet": ParquetStore}[kind](path)


@dataclass(frozen=True)
class Done:
    """What the last good row of a path recorded; ``row`` is the whole row, kept only when the
    caller asked for rows whose tags mersdk has not written yet (``with_untagged_rows``)."""

    sha256: str | None
    size_bytes: int | None
    mtime_ns: int | None
    tagged_at: str | None
    row: dict[str, Any] | None = None


def _done_entry(row: dict[str, Any], with_untagged_rows: bool) -> Done:
    mtime = row.get("mtime_ns")
    return Done(
        row.get("sha256"),
        row.get("size_bytes"),
        int(mtime) if mtime not in (None, "") else None,
        row.get("tagged_at"),
        dict(row) if with_untagged_rows and not row.get("tagged_at") else None,
    )


class ResultStore:
    path: str

    def done_map(self, model_hash: str, with_untagged_rows: bool = False) -> dict[str, Done]:
        """{path: Done} for the paths whose last row by ``model_hash`` has no error."""
        done: dict[str, Done] = {}
        for r in self.rows():
            if r.get("model_hash") != model_hash:
                continue
            if r.get("error"):
                done.pop(r["path"], None)
            else:
                done[r["path"]] = _done_entry(r, with_untagged_rows)
        return done

    def done_keys(self, model_hash: str) -> set[tuple[str, str | None]]:
        """The (path, sha256) pairs done without error by ``model_hash`` (see ``done_map``)."""
        return {(p, d.sha256) for p, d in self.done_map(model_hash).items()}

    def rows(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def write(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SqliteStore(ResultStore):
    """Table ``tracks``; probabilities as JSON text; one row per (path, model_hash)."""

    _TYPES: ClassVar[dict[str, str]] = {
        "size_bytes": "INTEGER",
        "valence": "REAL",
        "arousal": "REAL",
        "fusion_weight": "REAL",
        "lyrics_used": "INTEGER",
        "duration_s": "REAL",
        "mtime_ns": "INTEGER",
    }

    def __init__(self, path: str):
        self.path = path
        self.db = None
        try:
            self.db = sqlite3.connect(path, check_same_thread=False)  # the CLI runs the job in a thread
            # WAL: each commit is one append, cheap enough to commit every row (a crash loses nothing)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            cols = ", ".join(f"{c} {self._TYPES.get(c, 'TEXT')}" for c in COLUMNS)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS tracks ({cols}, PRIMARY KEY (path, model_hash))")
            have = {r[1] for r in self.db.execute("PRAGMA table_info(tracks)")}
            if not {"path", "model_hash"} <= have:
                raise StoreError(f"--out {path}: its 'tracks' table was not made by mersdk tag")
            for c in COLUMNS:  # a store from an older mersdk: add the new columns
                if c not in have:
                    self.db.execute(f"ALTER TABLE tracks ADD COLUMN {c} {self._TYPES.get(c, 'TEXT')}")
            self.db.commit()
        except sqlite3.Error as e:
            self.close()
            raise StoreError(f"--out {path}: not a usable SQLite database ({e})") from None
        except StoreError:
            self.close()
            raise

    def done_map(self, model_hash: str, with_untagged_rows: bool = False) -> dict[str, Done]:
        cols = COLUMNS if with_untagged_rows else ("path", "sha256", "size_bytes", "mtime_ns", "tagged_at")
        assert self.db is not None, "the store is closed"
        try:
            cur = self.db.execute(
                f"SELECT {', '.join(cols)} FROM tracks WHERE model_hash = ? AND error IS NULL", (model_hash,)
            )
            return {row["path"]: _done_entry(row, with_untagged_rows) for row in (self._row(cols, v) for v in cur)}
        except sqlite3.Error as e:
            raise StoreError(f"cannot read {self.path} ({e})") from None

    @staticmethod
    def _row(cols, values) -> dict[str, Any]:
        row = dict(zip(cols, values))
        if row.get("lyrics_used") is not None:
            row["lyrics_used"] = bool(row["lyrics_used"])
        return row

    def rows(self) -> Iterator[dict[str, Any]]:
        assert self.db is not None, "the store is closed"
        try:
            for values in self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM tracks"):
                yield self._row(COLUMNS, values)
        except sqlite3.Error as e:
            raise StoreError(f"cannot read {self.path} ({e})") from None

    def write(self, row: dict[str, Any]) -> None:
        values = [row.get(c) for c in COLUMNS]
        assert self.db is not None, "the store is closed"
        try:
            self.db.execute(
                f"INSERT OR REPLACE INTO tracks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", values
            )
            self.db.commit()
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to {self.path} ({e}); the rows before this one are kept") from None

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = None


def _truncate_partial_line(path: str) -> None:
    """A run killed mid-write leaves half a line; cut it so the next append starts clean."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        size = f.seek(0, os.SEEK_END)
        pos = size
        while pos > 0:
            step = min(1 << 16, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                f.truncate(pos - step + nl + 1)
                return
            pos -= step
        f.truncate(0)


class _LineStore(ResultStore):
    """Append-only text stores (JSONL, CSV), written unbuffered one whole line at a time: a write that
    fails (disk full, file size limit) is cut back to the last whole line and raises StoreError."""

    def _open_append(self, path: str):
        self.path, self.f = path, None
        try:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    first = f.readline(1 << 16)
                if first and not self._is_own_first_line(first):  # checked before anything is cut
                    raise StoreError(
                        f"--out {path}: not a {type(self).__name__[:-5].upper()} file written by "
                        "mersdk tag; left as it is"
                    )
            _truncate_partial_line(path)
            self.f = open(path, "ab", buffering=0)  # noqa: SIM115 - held open for the run; close() closes it
        except OSError as e:
            raise StoreError(f"--out {path}: cannot open it for writing ({e.strerror or e})") from None

    @staticmethod
    def _is_own_first_line(line: bytes) -> bool:
        raise NotImplementedError

    def _append(self, text: str) -> None:
        assert self.f is not None, "the store is closed"
        data = memoryview(text.encode("utf-8"))
        end = os.fstat(self.f.fileno()).st_size
        try:
            while data:
                data = data[self.f.write(data) :]
        except OSError as e:  # ENOSPC, EFBIG (file size limit), EIO
            try:
                os.ftruncate(self.f.fileno(), end)
            except OSError:
                pass  # the next open cuts the partial line
            raise StoreError(
                f"cannot write to {self.path} ({e.strerror or e}); the rows before this one are kept"
            ) from None

    def _lines(self):
        try:
            with open(self.path, encoding="utf-8", newline="") as f:
                yield from f
        except UnicodeDecodeError:
            raise StoreError(f"--out {self.path} is not a text file written by mersdk tag") from None
        except OSError as e:
            raise StoreError(f"cannot read {self.path} ({e.strerror or e})") from None

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


class JsonlStore(_LineStore):
    """One JSON object per line; probabilities as a JSON object (not a string)."""

    def __init__(self, path: str):
        self._open_append(path)

    @staticmethod
    def _is_own_first_line(line: bytes) -> bool:
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError (a half line cut by a kill included)
            return line.lstrip().startswith(b'{"path": ')
        return isinstance(row, dict) and "path" in row

    def rows(self) -> Iterator[dict[str, Any]]:
        for n, line in enumerate(self._lines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise StoreError(f"--out {self.path}: line {n} is not JSON; not a JSONL file from mersdk tag") from None
            if not isinstance(row, dict) or "path" not in row:
                raise StoreError(f"--out {self.path}: line {n} is not a mersdk tag row")
            if isinstance(row.get("probabilities"), dict):
                row["probabilities"] = json.dumps(row["probabilities"])
            yield row

    def write(self, row: dict[str, Any]) -> None:
        out = {c: row.get(c) for c in COLUMNS}
        if isinstance(out["probabilities"], str):
            out["probabilities"] = json.loads(out["probabilities"])
        self._append(json.dumps(out, ensure_ascii=False) + "\n")


class CsvStore(_LineStore):
    """Header + one line per track; probabilities as JSON text; empty cells for null. A file from an
    older mersdk keeps its header (columns it lacks are not written to it)."""

    def __init__(self, path: str):
        self._open_append(path)
        self.fields = list(COLUMNS)
        lines = self._lines()
        try:
            header = next(csv.reader(lines), None)
        except csv.Error:
            header = []
        finally:
            lines.close()
        if header is not None:
            if "path" not in header:
                self.close()
                raise StoreError(f"--out {path}: its first line is not a mersdk tag CSV header")
            self.fields = header
        if header is None:
            self._append(self._format(None))

    @staticmethod
    def _is_own_first_line(line: bytes) -> bool:
        try:
            return "path" in next(csv.reader([line.decode("utf-8")]), [])
        except (UnicodeDecodeError, csv.Error):
            return False

    def _format(self, row: dict[str, Any] | None) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
        writer.writeheader() if row is None else writer.writerow({c: row.get(c) for c in COLUMNS})
        return buf.getvalue()

    def rows(self) -> Iterator[dict[str, Any]]:
        try:
            for row in csv.DictReader(self._lines()):
                row = {k: (v if v != "" else None) for k, v in row.items()}
                for k in ("valence", "arousal", "fusion_weight", "duration_s"):
                    row[k] = float(row[k]) if row.get(k) is not None else None
                for k in ("size_bytes", "mtime_ns"):
                    row[k] = int(row[k]) if row.get(k) is not None else None
                row["lyrics_used"] = row["lyrics_used"] == "True" if row.get("lyrics_used") is not None else None
                yield row
        except (ValueError, csv.Error):
            raise StoreError(f"--out {self.path}: a row is malformed; not a CSV from mersdk tag") from None

    def write(self, row: dict[str, Any]) -> None:
        self._append(self._format(row))


class ParquetStore(ResultStore):
    """Rows are buffered and written as row groups of ``row_group_size``; readable once closed."""

    def __init__(self, path: str, row_group_size: int = 1024):
        try:
            import pyarrow  # noqa: F401 - fail early, before any work is done
        except ImportError:
            raise MersdkError('Parquet output needs pyarrow: pip install "mersdk[ray]" (or pyarrow)') from None

        self.path, self.row_group_size = path, row_group_size
        self.pending: list[dict[str, Any]] = []
        self.writer: Any = None  # a pyarrow.parquet.ParquetWriter from the first row group on
        self._tmp = path  # until the first row group: then a temporary file beside it, renamed on close
        self.previous: list[dict[str, Any]] = []
        if os.path.exists(path):  # keep an earlier run's rows: read them and rewrite them first
            import pyarrow.parquet as pq

            try:
                self.previous = pq.read_table(path).to_pylist()
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise StoreError(f"--out {path}: not a readable Parquet file ({e})") from None
            self.pending.extend(self.previous)

    @staticmethod
    def schema():
        import pyarrow as pa

        types = {
            "size_bytes": pa.int64(),
            "valence": pa.float64(),
            "arousal": pa.float64(),
            "fusion_weight": pa.float64(),
            "lyrics_used": pa.bool_(),
            "duration_s": pa.float64(),
            "mtime_ns": pa.int64(),
        }
        return pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])

    def rows(self) -> Iterator[dict[str, Any]]:
        yield from self.previous

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        if self.writer is None:
            self._tmp = str(temp_sibling(self.path))
            self.writer = pq.ParquetWriter(self._tmp, self.schema())
        self.writer.write_table(
            pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in self.pending], schema=self.schema())
        )
        self.pending = []

    def write(self, row: dict[str, Any]) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.row_group_size:
            try:
                self._flush()
            except OSError as e:
                raise StoreError(f"cannot write to {self._tmp} ({e.strerror or e})") from None

    def close(self) -> None:
        try:
            self._flush()
            if self.writer is not None:
                self.writer.close()
                self.writer = None
                fsync_file(self._tmp)
                os.replace(self._tmp, self.path)
                fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        except OSError as e:
            raise StoreError(f"cannot write to {self.path} ({e.strerror or e})") from None
