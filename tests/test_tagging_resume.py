"""Resume by ``(size, mtime_ns)``: a second run over an unchanged library reads no audio byte; a
changed file is redone, a touched but unchanged one is hashed and kept; and the README's sequence
(analyse, ``--write-tags --dry-run``, ``--write-tags``) tags the files an earlier run analysed."""

import os
import time

import pytest
from tagging_helpers import needs_mutagen, write_clip

from mersdk.cli import main as cli_main
from mersdk.tagging import runner, tag_library
from mersdk.tagging.store import open_store

DAY_NS = 86_400 * 10**9


def _library(root, n=6, seconds=5.0):
    root.mkdir()
    files = [write_clip(root / f"t{i}.wav", "wav", seconds=seconds, seed=i) for i in range(n)]
    old = time.time_ns() - DAY_NS
    for f in files:  # an old mtime: one recorded right after a write would be too recent to trust
        os.utime(f, ns=(old, old))
    return files


def _read_chars() -> int | None:
    try:
        with open("/proc/self/io") as f:
            return int(next(line for line in f if line.startswith("rchar:")).split()[1])
    except (OSError, StopIteration):
        return None


class Counting:
    """Counts the calls that read a file's bytes, passing them through."""

    def __init__(self, monkeypatch):
        self.calls = {"sha256_of": 0, "load_audio": 0, "find_lyrics": 0}
        for name in self.calls:
            real = getattr(runner, name)

            def wrapper(*a, _name=name, _real=real, **kw):
                self.calls[_name] += 1
                return _real(*a, **kw)

            monkeypatch.setattr(runner, name, wrapper)


@pytest.mark.parametrize("name", ["out.sqlite", "out.jsonl", "out.csv"])
def test_unchanged_library_reads_no_audio(tmp_path, recognizer, monkeypatch, name):
    files = _library(tmp_path / "lib")
    library_bytes = sum(f.stat().st_size for f in files)
    out = tmp_path / name
    first = tag_library([tmp_path / "lib"], out, recognizer=recognizer, progress=False)
    assert first.predicted == len(files)

    counting = Counting(monkeypatch)
    before = _read_chars()
    second = tag_library([tmp_path / "lib"], out, recognizer=recognizer, progress=False)
    read = None if before is None else _read_chars() - before
    assert (second.skipped, second.predicted) == (len(files), 0)
    assert counting.calls == {"sha256_of": 0, "load_audio": 0, "find_lyrics": 0}
    if read is not None:  # everything this process read (the store included) is far below the audio
        assert read < library_bytes / 10, (read, library_bytes)

    # touched, same bytes: hashed (the stat changed), found unchanged, not predicted again
    os.utime(files[0], ns=(time.time_ns() - DAY_NS // 2,) * 2)
    # changed content (same name and size, older mtime kept): redone
    write_clip(files[1], "wav", seconds=5.0, seed=99)
    os.utime(files[1], ns=(time.time_ns() - DAY_NS // 3,) * 2)
    third = tag_library([tmp_path / "lib"], out, recognizer=recognizer, progress=False)
    assert (third.skipped, third.predicted) == (len(files) - 1, 1)
    assert counting.calls["sha256_of"] == 2 and counting.calls["load_audio"] == 1
    with open_store(str(out)) as store:
        rows = {}
        for r in store.rows():
            rows[os.path.basename(r["path"])] = r  # the last row per path (JSONL/CSV append)
    assert rows["t1.wav"]["mtime_ns"] == files[1].stat().st_mtime_ns
    assert rows["t2.wav"]["mtime_ns"] == files[2].stat().st_mtime_ns


def test_recent_mtime_is_not_trusted(tmp_path, recognizer, monkeypatch):
    """A file written moments before it was read may change again within the mtime's resolution:
    its mtime is not recorded, so the next run hashes it (and, unchanged, skips it)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "new.wav", "wav")
    out = tmp_path / "o.sqlite"
    tag_library([lib], out, recognizer=recognizer, progress=False)
    with open_store(str(out)) as store:
        assert next(store.rows())["mtime_ns"] is None
    counting = Counting(monkeypatch)
    again = tag_library([lib], out, recognizer=recognizer, progress=False)
    assert again.skipped == 1 and counting.calls["sha256_of"] == 1 and counting.calls["load_audio"] == 0


@needs_mutagen
def test_readme_sequence_tags_analysed_files(tmp_path, capsys):
    import mutagen

    lib = tmp_path / "lib"
    lib.mkdir()
    files = [
        write_clip(lib / "a.flac", "flac"),
        write_clip(lib / "b.mp3", "mp3", seed=1),
        write_clip(lib / "c.opus", "ogg-opus", seed=2),
    ]
    out = str(tmp_path / "library.sqlite")
    base = ["tag", str(lib), "--out", out, "--no-progress", "--backend", "torch"]
    assert cli_main(base) == 0
    assert "3 audio files: 3 predicted" in capsys.readouterr().err
    originals = [f.read_bytes() for f in files]

    assert cli_main(base + ["--write-tags", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.count("would write ") == 3 and "3 already done; 0 tagged" in err
    assert [f.read_bytes() for f in files] == originals

    assert cli_main(base + ["--write-tags"]) == 0
    assert "0 predicted, 0 errors, 3 already done; 3 tagged" in capsys.readouterr().err
    with open_store(out) as store:
        rows = {os.path.basename(r["path"]): r for r in store.rows()}
    for f in files:
        tags = mutagen.File(f).tags
        mood = tags.get("TMOO") or tags.get("MOOD")
        assert str(mood[0] if isinstance(mood, list) else mood.text[0]) == rows[f.name]["label"]
        assert rows[f.name]["tagged_at"] and rows[f.name]["size_bytes"] == f.stat().st_size

    assert cli_main(base + ["--write-tags"]) == 0
    assert "3 already done; 0 tagged" in capsys.readouterr().err


def test_stores_from_an_earlier_version(tmp_path):
    """A SQLite store without the new columns gains them; an old CSV keeps its header and still resumes
    (by hash, having no mtime)."""
    import csv
    import sqlite3

    from mersdk.tagging.store import COLUMNS

    old_columns = [c for c in COLUMNS if c not in ("mtime_ns", "tagged_at")]
    row = dict.fromkeys(old_columns) | {
        "path": "/m/a.flac",
        "sha256": "ab" * 32,
        "size_bytes": 10,
        "model_hash": "m1",
        "label": "calm",
    }
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.execute(f"CREATE TABLE tracks ({', '.join(old_columns)}, PRIMARY KEY (path, model_hash))")
    db.execute(f"INSERT INTO tracks VALUES ({', '.join('?' * len(old_columns))})", [row[c] for c in old_columns])
    db.commit()
    db.close()
    with open_store(str(tmp_path / "old.sqlite")) as store:
        done = store.done_map("m1", with_untagged_rows=True)
        assert done["/m/a.flac"].sha256 == "ab" * 32 and done["/m/a.flac"].mtime_ns is None
        assert done["/m/a.flac"].row["label"] == "calm"
        store.write({**row, "path": "/m/b.flac", "mtime_ns": 5, "tagged_at": "now"})
        assert store.done_map("m1")["/m/b.flac"].mtime_ns == 5

    with open(tmp_path / "old.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=old_columns)
        w.writeheader()
        w.writerow(row)
    with open_store(str(tmp_path / "old.csv")) as store:
        store.write({**row, "path": "/m/b.flac", "mtime_ns": 5})
        assert set(store.done_map("m1")) == {"/m/a.flac", "/m/b.flac"}
    with open(tmp_path / "old.csv", newline="") as f:
        assert [len(r) for r in csv.reader(f)] == [len(old_columns)] * 3
