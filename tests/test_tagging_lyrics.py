"""Lyrics for a track: sidecars and embedded tags, their order of preference, and bad lyrics."""

import pytest
from tagging_helpers import needs_mutagen, write_clip

from mersdk.lyrics import MAX_LYRICS_CHARS
from mersdk.tagging.lyrics_tags import find_lyrics


def _id3(path, *frames):
    from mutagen.id3 import ID3

    tags = ID3()
    for frame in frames:
        tags.add(frame)
    tags.save(path)


@needs_mutagen
def test_preference_lrc_then_sylt_then_txt_then_uslt(tmp_path):
    from mutagen.id3 import SYLT, USLT

    mp3 = write_clip(tmp_path / "song.mp3", "mp3")
    _id3(
        mp3,
        USLT(encoding=3, lang="eng", desc="", text="unsynced words"),
        SYLT(encoding=3, lang="eng", format=2, type=1, text=[("second line", 2000), ("first line", 500)]),
    )
    (tmp_path / "song.txt").write_text("sidecar text words")
    (tmp_path / "song.lrc").write_text("[00:01.00]lrc line\n")
    got = find_lyrics(str(mp3))
    assert got.source == "sidecar:lrc" and got.lyrics.lines[0].time_s == 1.0
    (tmp_path / "song.lrc").unlink()
    got = find_lyrics(str(mp3))
    assert got.source == "embedded:SYLT"
    assert [(line.time_s, line.text) for line in got.lyrics.lines] == [(0.5, "first line"), (2.0, "second line")]
    _id3(mp3, USLT(encoding=3, lang="eng", desc="", text="unsynced words"))
    assert find_lyrics(str(mp3)).source == "sidecar:txt"
    (tmp_path / "song.txt").unlink()
    got = find_lyrics(str(mp3))
    assert got.source == "embedded:USLT" and got.lyrics.text == "unsynced words"


@needs_mutagen
@pytest.mark.parametrize(
    "container,key", [("flac", "LYRICS"), ("ogg-vorbis", "UNSYNCEDLYRICS"), ("ogg-opus", "LYRICS")]
)
def test_vorbis_comment_lyrics(tmp_path, container, key):
    import mutagen
    from tagging_helpers import SOUNDFILE_CONTAINERS

    f = write_clip(tmp_path / f"x{SOUNDFILE_CONTAINERS[container][0]}", container)
    m = mutagen.File(f)
    if m.tags is None:
        m.add_tags()
    m.tags[key] = ["la la la\nsecond line"]
    m.save()
    got = find_lyrics(str(f))
    assert got.source == f"embedded:{key}" and got.lyrics.text == "la la la\nsecond line"


@needs_mutagen
def test_mp4_lyrics_atom(tmp_path):
    pytest.importorskip("av", reason="PyAV is needed to create an M4A file")
    from mutagen.mp4 import MP4

    f = write_clip(tmp_path / "x.m4a", "m4a-aac")
    m = MP4(f)
    m["\xa9lyr"] = ["mp4 words"]
    m.save()
    got = find_lyrics(str(f))
    assert got.source == "embedded:\xa9lyr" and got.lyrics.text == "mp4 words"


@needs_mutagen
def test_enormous_uslt_is_refused_with_a_warning(tmp_path):
    from mutagen.id3 import USLT

    mp3 = write_clip(tmp_path / "big.mp3", "mp3")
    _id3(mp3, USLT(encoding=3, lang="eng", desc="", text="word " * (1 << 20)))  # 5 MB of lyrics
    assert mp3.stat().st_size > 5_000_000
    got = find_lyrics(str(mp3))
    assert got.lyrics is None and got.source is None
    assert any(str(MAX_LYRICS_CHARS) in w for w in got.warnings)
    assert got.warnings[-1] == "no usable lyrics: predicted from audio alone"


@needs_mutagen
def test_broken_tag_is_a_warning(tmp_path):
    mp3 = write_clip(tmp_path / "x.mp3", "mp3")
    # an ID3v2.4 header that promises 100 kB of frames, followed by garbage
    mp3.write_bytes(b"ID3\x04\x00\x00\x00\x06\x1a\x20" + b"\xff" * 64 + mp3.read_bytes())
    got = find_lyrics(str(mp3))
    assert got.lyrics is None


def test_lrc_with_malformed_and_unordered_timestamps(tmp_path):
    f = write_clip(tmp_path / "x.wav", "wav")
    (tmp_path / "x.lrc").write_text(
        "[ar:someone]\n[00:20.00]third\n[00:05.00]first\n[xx:yy]odd line\n[00:10.5]second\n[00:9"
    )
    got = find_lyrics(str(f))
    assert got.source == "sidecar:lrc"
    timed = [(line.time_s, line.text) for line in got.lyrics.lines if line.time_s is not None]
    assert timed == [(5.0, "first"), (10.5, "second"), (20.0, "third")]
    assert any(line.time_s is None for line in got.lyrics.lines)  # malformed lines kept as untimed text


def test_non_utf8_sidecar(tmp_path):
    f = write_clip(tmp_path / "x.wav", "wav")
    (tmp_path / "x.txt").write_bytes("caf\u00e9 con le\u00f1a, d\u00e9j\u00e0 vu\n".encode("cp1252"))
    got = find_lyrics(str(f))
    assert got.source == "sidecar:txt" and got.lyrics.text == "caf\u00e9 con le\u00f1a, d\u00e9j\u00e0 vu"
    (tmp_path / "x.txt").write_bytes("\u00e9t\u00e9\n".encode("utf-16"))
    assert find_lyrics(str(f)).lyrics.text == "\u00e9t\u00e9"


def test_oversized_sidecar_falls_back_to_the_next_source(tmp_path):
    f = write_clip(tmp_path / "x.wav", "wav")
    (tmp_path / "x.lrc").write_text("[00:01.00]" + "a" * (MAX_LYRICS_CHARS * 5))
    (tmp_path / "x.txt").write_text("plain words")
    got = find_lyrics(str(f))
    assert got.source == "sidecar:txt" and got.lyrics.text == "plain words"
    assert any(w.startswith("sidecar:lrc lyrics not used") for w in got.warnings)


@needs_mutagen
def test_analyze_cli_aligns_embedded_sylt(tmp_path):
    """`mersdk analyze song.mp3` without --lyrics reads ID3 SYLT and aligns its lines to segments:
    a line sung at 1 s reaches the first segments, not the last; --no-auto-lyrics turns it off."""
    import json
    import subprocess
    import sys
    import tempfile

    from mutagen.id3 import SYLT

    mp3 = write_clip(tmp_path / "song.mp3", "mp3", seconds=24.0)
    _id3(mp3, SYLT(encoding=3, lang="eng", format=2, type=1, text=[("sunshine all day long", 1000)]))

    def analyze(*extra):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mersdk",
                "analyze",
                str(mp3),
                "--window-s",
                "5",
                "--hop-s",
                "5",
                "--smooth",
                "1",
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tempfile.gettempdir(),
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["timeline"]

    timeline = analyze()
    assert timeline[0]["lyric_lines"] == ["sunshine all day long"] and timeline[0]["fusion_weight"] > 0
    assert timeline[-1]["lyric_lines"] == [] and timeline[-1]["fusion_weight"] == 0
    assert all(seg["lyric_lines"] == [] for seg in analyze("--no-auto-lyrics"))
