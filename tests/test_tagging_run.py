"""``tag_library`` / ``mersdk tag`` end to end on tiny files: rows, formats, resume, bad input."""

import json
import os
import tracemalloc

import pytest
from tagging_helpers import HAVE_AV, HAVE_PYARROW, SOUNDFILE_CONTAINERS, permissions_enforced, write_clip

from mersdk.cli import main as cli_main
from mersdk.tagging import tag_library, walk_audio
from mersdk.tagging.store import COLUMNS, open_store


def _rows(out, fmt=None):
    with open_store(str(out), fmt) as store:
        return {os.path.basename(r["path"]): r for r in store.rows()}


def _library(root, n=3):
    root.mkdir(parents=True, exist_ok=True)
    for i, container in enumerate(list(SOUNDFILE_CONTAINERS)[:n]):
        write_clip(root / f"t{i}{SOUNDFILE_CONTAINERS[container][0]}", container, seed=i)
    return root


def test_rows_for_every_track(tmp_path, recognizer):
    lib = _library(tmp_path / "lib", n=len(SOUNDFILE_CONTAINERS))
    (lib / "t0.lrc").write_text("[00:00.20]sunny sunny day\n[00:01.00]we sing\n")
    out = tmp_path / "out.sqlite"
    s = tag_library([lib], out, recognizer=recognizer, progress=False, batch_size=2)
    assert (s.found, s.predicted, s.errors) == (len(SOUNDFILE_CONTAINERS), len(SOUNDFILE_CONTAINERS), 0)
    rows = _rows(out)
    assert set(rows) == {f"t{i}{v[0]}" for i, v in enumerate(SOUNDFILE_CONTAINERS.values())}
    for name, r in rows.items():
        assert set(r) == set(COLUMNS)
        assert r["error"] is None and r["model_hash"] == recognizer.checkpoint.model_hash
        probs = json.loads(r["probabilities"])
        assert r["label"] == max(probs, key=probs.get) and abs(sum(probs.values()) - 1) < 1e-6
        assert len(r["sha256"]) == 64 and r["size_bytes"] == (lib / name).stat().st_size
        assert -1 <= r["valence"] <= 1 and 1.4 < r["duration_s"] < 1.7
    assert rows["t0.wav"]["lyrics_used"] and rows["t0.wav"]["lyrics_source"] == "sidecar:lrc"
    assert rows["t1.flac"]["lyrics_used"] is False and rows["t1.flac"]["fusion_weight"] == 0
    # the same numbers as predicting the file directly
    direct = recognizer.predict(lib / "t1.flac")
    assert rows["t1.flac"]["label"] == direct.label
    assert all(abs(json.loads(rows["t1.flac"]["probabilities"])[k] - v) < 1e-5 for k, v in direct.probabilities.items())


@pytest.mark.parametrize("name", ["out.sqlite", "out.jsonl", "out.csv", "out.parquet"])
def test_formats_and_resume(tmp_path, recognizer, name):
    if name.endswith(".parquet") and not HAVE_PYARROW:
        pytest.skip('pyarrow is not installed (pip install "mersdk[ray]")')
    lib = _library(tmp_path / "lib")
    out = tmp_path / name
    first = tag_library([lib], out, recognizer=recognizer, progress=False)
    assert first.predicted == 3
    write_clip(lib / "new.wav", "wav", seed=7)
    second = tag_library([lib], out, recognizer=recognizer, progress=False)
    assert (second.skipped, second.predicted) == (3, 1)
    rows = _rows(out)
    assert len(rows) == 4 and all(r["error"] is None for r in rows.values())
    assert isinstance(rows["t0.wav"]["valence"], float) and rows["t0.wav"]["lyrics_used"] is False


def test_interrupted_run_keeps_its_rows_and_resumes(tmp_path, recognizer):
    lib = _library(tmp_path / "lib")
    out = tmp_path / "out.jsonl"

    class Interrupting:
        """Wraps the Recognizer and raises KeyboardInterrupt at the second batch, like Ctrl-C."""

        def __init__(self, rec):
            self.rec, self.calls = rec, 0

        def __getattr__(self, name):
            return getattr(self.rec, name)

        def predict_batch(self, items, **kw):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.rec.predict_batch(items, **kw)

    with pytest.raises(KeyboardInterrupt):
        tag_library([lib], out, recognizer=Interrupting(recognizer), batch_size=1, workers=1, progress=False)
    assert len(_rows(out)) == 1
    with open(out, "a") as f:
        f.write('{"path": "half a line')  # a kill in the middle of a write
    s = tag_library([lib], out, recognizer=recognizer, progress=False)
    assert (s.skipped, s.predicted) == (1, 2)
    assert len(_rows(out)) == 3


def test_bad_files_become_error_rows_and_the_run_goes_on(tmp_path, recognizer):
    lib = _library(tmp_path / "lib", n=2)
    good = (lib / "t1.flac").read_bytes()
    (lib / "zero.wav").write_bytes(b"")
    (lib / "header_only.flac").write_bytes(good[:200])  # truncated inside the metadata
    (lib / "cut.flac").write_bytes(good[: len(good) // 2])  # cut mid-stream: what decodes is used (README)
    (lib / "garbage.flac").write_bytes(b"fLaC" + os.urandom(3000))  # valid magic, then garbage
    (lib / "text.wav").write_text("RIFF but not really\n" * 50)
    (lib / "flac_named.mp3").write_bytes(good)  # wrong extension: libsndfile goes by the content
    (lib / "fake.m4p").write_bytes(b"\x00\x00\x00\x20ftypM4P " + b"\x00" * 64)  # protected iTunes track
    (lib / "short.wav").write_bytes((lib / "t0.wav").read_bytes()[:2000])  # 0.06 s of audio
    enforced = permissions_enforced(tmp_path)
    locked = write_clip(lib / "locked.wav", "wav")
    locked.chmod(0)
    out = tmp_path / "out.sqlite"
    try:
        s = tag_library([lib], out, recognizer=recognizer, progress=False, batch_size=3)
    finally:
        locked.chmod(0o644)
    rows = _rows(out)
    assert s.found == len(rows) == 11
    ok = {n for n, r in rows.items() if r["error"] is None}
    assert {"t0.wav", "t1.flac", "flac_named.mp3", "cut.flac"} <= ok
    for name, needle in [
        ("zero.wav", "empty"),
        ("header_only.flac", "AudioDecodeError"),
        ("garbage.flac", "AudioDecodeError"),
        ("text.wav", "not a readable audio file"),
        ("fake.m4p", "DRM"),
        ("short.wav", "AudioTooShortError"),
    ]:
        assert rows[name]["error"] and needle in rows[name]["error"], (name, rows[name]["error"])
        assert rows[name]["label"] is None
    if enforced:
        assert "Permission denied" in rows["locked.wav"]["error"]
    else:  # root reads a chmod-000 file: it is simply predicted (BYPASS_REASON)
        assert rows["locked.wav"]["error"] is None
    # error rows are retried on the next run (the unlocked file now succeeds); good rows are not
    again = tag_library([lib], out, recognizer=recognizer, progress=False)
    assert again.skipped == len(ok)
    assert (again.predicted, again.errors) == ((1, 10 - len(ok)) if enforced else (0, 11 - len(ok)))


def test_m4a_without_the_decoders_extra_is_an_error_row(tmp_path, recognizer, monkeypatch):
    import sys

    lib = _library(tmp_path / "lib", n=1)
    (lib / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "av", None)
    tag_library([lib], tmp_path / "o.sqlite", recognizer=recognizer, progress=False)
    rows = _rows(tmp_path / "o.sqlite")
    assert 'pip install "mersdk[decoders]"' in rows["song.m4a"]["error"] and rows["t0.wav"]["error"] is None


@pytest.mark.skipif(not HAVE_AV, reason='PyAV is not installed (pip install "mersdk[decoders]")')
def test_m4a_with_the_decoders_extra(tmp_path, recognizer):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "a.m4a", "m4a-aac")
    write_clip(lib / "b.m4a", "m4a-alac", seed=1)
    s = tag_library([lib], tmp_path / "o.sqlite", recognizer=recognizer, progress=False)
    assert s.predicted == 2


def test_folder_with_100000_entries(tmp_path, recognizer):
    """100,000 empty non-audio files and 3 clips: the walk streams (small memory) and the run ends."""
    big = tmp_path / "big"
    big.mkdir()
    for i in range(100_000):
        os.close(os.open(big / f"f{i:06d}.dat", os.O_CREAT | os.O_WRONLY))
    _library(big)
    tracemalloc.start()
    walker = walk_audio([big])
    first = next(walker)
    rest = list(walker)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(rest) + 1 == 3 and first.kind == "audio"
    assert peak < 2_000_000, peak  # the 100,000 names alone would take several MB as a list
    s = tag_library([big], tmp_path / "o.sqlite", recognizer=recognizer, progress=False)
    assert (s.found, s.predicted) == (3, 3)


def test_cli_reports_missing_extras(tmp_path, capsys, monkeypatch):
    import sys

    lib = _library(tmp_path / "lib", n=1)
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert cli_main(["tag", str(lib), "--out", str(tmp_path / "o.sqlite"), "--ray"]) == 2
    assert 'pip install "mersdk[ray]"' in capsys.readouterr().err
    assert cli_main(["tag", str(lib), "--out", str(tmp_path / "o.parquet"), "--no-progress"]) == 2
    assert "Parquet output needs pyarrow" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mutagen", None)
    assert cli_main(["tag", str(lib), "--out", str(tmp_path / "o.sqlite"), "--write-tags", "--no-progress"]) == 2
    assert 'needs mutagen: pip install "mersdk[tag]"' in capsys.readouterr().err
    assert cli_main(["tag", str(lib), "--out", str(tmp_path / "o.sqlite"), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("mutagen is not installed") == 1


def test_cli_tag(tmp_path, capsys):
    lib = _library(tmp_path / "lib", n=2)
    out = tmp_path / "o.data"
    assert cli_main(["tag", str(lib), "--out", str(out), "--format", "jsonl", "--no-progress", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "2 audio files: 2 predicted, 0 errors" in err
    assert len(_rows(out, "jsonl")) == 2
    assert cli_main(["tag", str(lib), "--out", str(out), "--format", "jsonl", "--no-progress"]) == 0
    assert "2 already done" in capsys.readouterr().err
