"""mersdk.files, the one place that reads regular files, hashes them and replaces them atomically
(checkpoints, exports, tags, playlists and result stores all go through it)."""

from __future__ import annotations

import hashlib
import importlib
import os
import sys

import pytest

from mersdk.errors import CheckpointError
from mersdk.files import atomic_path, read_bounded, remove_stale_temps, sha256_file, temp_sibling, write_text_atomic


def test_atomic_path_replaces_on_success_and_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["out.txt"]


def test_temp_sibling_names_and_stale_temps(tmp_path):
    tmp = temp_sibling(tmp_path / "x.flac", ".mersdk-tmp.flac")
    assert tmp.parent == tmp_path and tmp.name.startswith(f".x.flac.{os.getpid()}-") and tmp.name.endswith(".flac")
    dead = tmp_path / ".x.flac.999999999-0123abcd.mersdk-tmp.flac"  # no such pid: a killed writer's
    other = tmp_path / ".y.flac.999999999-0123abcd.mersdk-tmp.flac"  # another file's: not asked about
    dead.write_bytes(b"")
    other.write_bytes(b"")
    remove_stale_temps(tmp_path, "x.flac", ".mersdk-tmp.flac")
    assert not dead.exists() and tmp.exists() and other.exists()
    remove_stale_temps(tmp_path, suffix=".mersdk-tmp.flac")
    assert not other.exists() and tmp.exists()


def test_sha256_file_prefix_and_non_regular_files(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abcdef" * 1000)
    assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert sha256_file(f, 6) == hashlib.sha256(b"abcdef").hexdigest()
    os.mkfifo(tmp_path / "p")
    with pytest.raises(OSError, match="FIFO.*not a regular file"):
        sha256_file(tmp_path / "p")


def test_read_bounded_names_what_it_read(tmp_path):
    f = tmp_path / "config.json"
    f.write_bytes(b"x" * 100)
    assert read_bounded(f, 100, "config") == b"x" * 100
    with pytest.raises(CheckpointError, match="the config is 100 bytes; at most 99"):
        read_bounded(f, 99, "config", error=CheckpointError)
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(CheckpointError, match="the config is a FIFO"):
        read_bounded(tmp_path / "fifo.json", 100, "config", error=CheckpointError)


def test_export_cli_moved_with_a_deprecated_alias():
    from mersdk.export import cli

    sys.modules.pop("mersdk.export_cli", None)
    with pytest.warns(DeprecationWarning, match="mersdk.export.cli"):
        old = importlib.import_module("mersdk.export_cli")
    assert old.register is cli.register and set(old.STAGES) == {"onnx", "engine", "compare"}
