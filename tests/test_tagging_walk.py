"""The library walker: a generator over os.scandir that survives huge folders and symlink loops."""

import os
import types

import pytest
from tagging_helpers import BYPASS_REASON, permissions_enforced, write_clip

from mersdk.tagging.walk import walk_audio


def test_walker_is_a_generator_and_finds_nested_audio(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    write_clip(tmp_path / "a" / "b" / "x.flac", "flac")
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    (tmp_path / "a" / "cover.jpg").write_bytes(b"\xff\xd8")
    walker = walk_audio([tmp_path])
    assert isinstance(walker, types.GeneratorType)
    assert [f.path for f in walker] == [str(tmp_path / "a" / "b" / "x.flac")]


def test_symlink_loops_are_visited_once(tmp_path):
    (tmp_path / "music").mkdir()
    write_clip(tmp_path / "music" / "x.wav", "wav")
    os.symlink(tmp_path, tmp_path / "music" / "up")  # music/up -> .. : a loop
    os.symlink(tmp_path / "music", tmp_path / "again")  # a second link to the same folder
    problems = []
    found = [f.path for f in walk_audio([tmp_path], on_problem=lambda p, m: problems.append((p, m)))]
    assert len(found) == 1
    assert any("symlink loop" in m for _, m in problems)


def test_files_given_directly_and_missing_roots(tmp_path):
    f = write_clip(tmp_path / "x.wav", "wav")
    problems = []
    found = list(walk_audio([f, tmp_path / "missing", tmp_path / "x.doc"], on_problem=lambda p, m: problems.append(m)))
    assert [x.path for x in found] == [str(f)]
    assert len(problems) == 2


def test_unlistable_folder_is_reported(tmp_path):
    if not permissions_enforced(tmp_path):
        pytest.skip(BYPASS_REASON)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        problems = []
        assert list(walk_audio([tmp_path], on_problem=lambda p, m: problems.append(m))) == []
        assert problems and "cannot list" in problems[0]
    finally:
        locked.chmod(0o755)


def test_extensions_needing_the_decoders_extra_are_flagged(tmp_path):
    (tmp_path / "a.m4a").write_bytes(b"x")
    (tmp_path / "b.m4p").write_bytes(b"x")
    kinds = {os.path.basename(f.path): f.kind for f in walk_audio([tmp_path], with_pyav=False)}
    assert kinds == {"a.m4a": "needs-decoders", "b.m4p": "protected"}
    kinds = {os.path.basename(f.path): f.kind for f in walk_audio([tmp_path], with_pyav=True)}
    assert kinds["a.m4a"] == "audio"
