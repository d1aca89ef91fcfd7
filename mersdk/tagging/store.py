"""Where ``mersdk tag`` puts its rows: SQLite (default), JSON Lines, CSV or Parquet, one row per track.

Every row has the columns in ``COLUMNS``. Rows are written as they are produced and made durable at
once (SQLite commits each row, JSONL/CSV flush each line), so an interrupted run keeps everything
already written; Parquet is the exception: a file is only readable once closed, so use it for
runs that finish (the Ray path) and SQLite/JSONL for resumable ones.

Resuming: ``done_keys(model_hash)`` gives the ``(path, sha256)`` pairs already done without error by
that model; the runner skips those. Error rows are retried on the next run. SQLite keeps one row
per (path, model_hash) (a retry replaces it); JSONL and CSV are append-only, so a reader keeps the
last row for a path.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from typing import Any, Iterator

from ..errors import MersdkError

COLUMNS = (
    "path", "sha256", "size_bytes", "model_hash", "label", "probabilities", "valence", "arousal",
    "fusion_weight", "lyrics_used", "lyrics_source", "duration_s", "error", "warning", "processed_at",
)
FORMATS = ("sqlite", "jsonl", "csv", "parquet")
_EXTENSIONS = {".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def format_for(path: str, fmt: str | None) -> str:
    """The explicit ``fmt``, else the one the extension names, else SQLite."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower(), "sqlite")


def open_store(path: str, fmt: str | None = None) -> "ResultStore":
    kind = format_for(path, fmt)
    return {"sqlite": SqliteStore, "jsonl": JsonlStore, "csv": CsvStore, "parquet": ParquetStore}[kind](path)


class ResultStore:
    def done_keys(self, model_hash: str) -> set[tuple[str, str]]:
        return {(r["path"], r["sha256"]) for r in self.rows() if r["model_hash"] == model_hash and not r["error"]}

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

    _TYPES = {"size_bytes": "INTEGER", "valence": "REAL", "arousal": "REAL", "fusion_weight": "REAL",
              "lyrics_used": "INTEGER", "duration_s": "REAL"}

    def __init__(self, path: str):
        self.path = path
        self.db = sqlite3.connect(path)
        # WAL: each commit is one append, cheap enough to commit every row (a crash loses nothing)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{c} {self._TYPES.get(c, 'TEXT')}" for c in COLUMNS)
        self.db.execute(f"CREATE TABLE IF NOT EXISTS tracks ({cols}, PRIMARY KEY (path, model_hash))")
        self.db.commit()

    def done_keys(self, model_hash: str) -> set[tuple[str, str]]:
        cur = self.db.execute("SELECT path, sha256 FROM tracks WHERE model_hash = ? AND error IS NULL", (model_hash,))
        return {(p, h) for p, h in cur}

    def rows(self) -> Iterator[dict[str, Any]]:
        cur = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM tracks")
        for values in cur:
            row = dict(zip(COLUMNS, values))
            if row["lyrics_used"] is not None:
                row["lyrics_used"] = bool(row["lyrics_used"])
            yield row

    def write(self, row: dict[str, Any]) -> None:
        values = [row.get(c) for c in COLUMNS]
        self.db.execute(f"INSERT OR REPLACE INTO tracks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", values)
        self.db.commit()

    def close(self) -> None:
        self.db.close()


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


class JsonlStore(ResultStore):
    """One JSON object per line; probabilities as a JSON object (not a string)."""

    def __init__(self, path: str):
        self.path = path
        _truncate_partial_line(path)
        self.f = open(path, "a", encoding="utf-8")

    def rows(self) -> Iterator[dict[str, Any]]:
        self.f.flush()
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if isinstance(row.get("probabilities"), dict):
                        row["probabilities"] = json.dumps(row["probabilities"])
                    yield row

    def write(self, row: dict[str, Any]) -> None:
        out = {c: row.get(c) for c in COLUMNS}
        if isinstance(out["probabilities"], str):
            out["probabilities"] = json.loads(out["probabilities"])
        self.f.write(json.dumps(out, ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class CsvStore(ResultStore):
    """Header + one line per track; probabilities as JSON text; empty cells for null."""

    def __init__(self, path: str):
        self.path = path
        _truncate_partial_line(path)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.f = open(path, "a", encoding="utf-8", newline="")
        self.writer = csv.DictWriter(self.f, fieldnames=COLUMNS)
        if new:
            self.writer.writeheader()
            self.f.flush()

    def rows(self) -> Iterator[dict[str, Any]]:
        self.f.flush()
        with open(self.path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                row = {k: (v if v != "" else None) for k, v in row.items()}
                for k in ("valence", "arousal", "fusion_weight", "duration_s"):
                    row[k] = float(row[k]) if row[k] is not None else None
                row["size_bytes"] = int(row["size_bytes"]) if row["size_bytes"] is not None else None
                row["lyrics_used"] = row["lyrics_used"] == "True" if row["lyrics_used"] is not None else None
                yield row

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({c: row.get(c) for c in COLUMNS})
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class ParquetStore(ResultStore):
    """Rows are buffered and written as row groups of ``row_group_size``; readable once closed."""

    def __init__(self, path: str, row_group_size: int = 1024):
        try:
            import pyarrow  # noqa: F401 - fail early, before any work is done
        except ImportError:
            raise MersdkError('Parquet output needs pyarrow: pip install "mersdk[ray]" (or pyarrow)') from None

        self.path, self.row_group_size = path, row_group_size
        self.pending: list[dict[str, Any]] = []
        self.writer = None
        self.previous: list[dict[str, Any]] = []
        if os.path.exists(path):  # keep an earlier run's rows: read them and rewrite them first
            import pyarrow.parquet as pq

            self.previous = pq.read_table(path).to_pylist()
            self.pending.extend(self.previous)

    @staticmethod
    def schema():
        import pyarrow as pa

        types = {"size_bytes": pa.int64(), "valence": pa.float64(), "arousal": pa.float64(),
                 "fusion_weight": pa.float64(), "lyrics_used": pa.bool_(), "duration_s": pa.float64()}
        return pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])

    def rows(self) -> Iterator[dict[str, Any]]:
        yield from self.previous

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        if self.writer is None:
            self._tmp = self.path + ".partial"
            self.writer = pq.ParquetWriter(self._tmp, self.schema())
        self.writer.write_table(pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in self.pending], schema=self.schema()))
        self.pending = []

    def write(self, row: dict[str, Any]) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.row_group_size:
            self._flush()

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
            os.replace(self._tmp, self.path)
