"""Mood playlists (mersdk/playlist.py, `mersdk playlist`) from a real `mersdk tag` SQLite store."""

from __future__ import annotations

import math
import os

import pytest
from tagging_helpers import needs_mutagen, write_clip

from mersdk.cli import main
from mersdk.playlist import QUADRANT_POINTS, PlaylistError, Track, make_playlist, path_between, read_library, write_m3u8
from mersdk.tagging.store import SqliteStore


def row(path, label, v, a, dur=30.0, error=None, at="2026-11-29T10:00:00", model="m1"):
    return {
        "path": str(path),
        "sha256": "x",
        "model_hash": model,
        "label": label,
        "valence": v,
        "arousal": a,
        "duration_s": dur,
        "error": error,
        "processed_at": at,
        "probabilities": "{}",
    }


@pytest.fixture
def grid_library(tmp_path):
    """25 tracks on a 5x5 grid of the VA plane, labelled by quadrant (calm/happy/sad/angry)."""
    db = tmp_path / "lib.sqlite"
    with SqliteStore(str(db)) as store:
        for i in range(5):
            for j in range(5):
                v, a = round(-0.8 + 0.4 * i, 2), round(-0.8 + 0.4 * j, 2)
                label = {(True, True): "happy", (False, True): "angry", (False, False): "sad", (True, False): "calm"}[
                    (v >= 0, a >= 0)
                ]
                store.write(row(tmp_path / f"t{i}{j}.flac", label, v, a))
        store.write(row(tmp_path / "broken.flac", None, None, None, error="AudioDecodeError: bad"))
    return db


def test_read_library_skips_errors_and_keeps_newest(tmp_path):
    db = tmp_path / "lib.sqlite"
    with SqliteStore(str(db)) as store:
        store.write(row("/m/a.flac", "sad", -0.5, -0.5, at="2026-01-01T00:00:00", model="old"))
        store.write(row("/m/a.flac", "happy", 0.5, 0.5, at="2026-02-01T00:00:00", model="new"))
        store.write(row("/m/b.flac", None, None, None, error="x"))
    tracks = read_library(str(db))
    assert tracks == [Track("/m/a.flac", "happy", 0.5, 0.5, 30.0)]
    with pytest.raises(PlaylistError, match="no such library"):
        read_library(str(tmp_path / "missing.sqlite"))
    (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(PlaylistError, match="not a mersdk tag library"):
        read_library(str(tmp_path / "junk.sqlite"))


def test_mood_near_and_path(grid_library):
    tracks = read_library(str(grid_library))
    assert len(tracks) == 25
    calm = make_playlist(tracks, mood="calm", n=50)
    assert {t.label for t in calm} == {"calm"} and len(calm) == 6  # v in {0, .4, .8} x a in {-.8, -.4}
    centre = (sum(t.valence for t in calm) / 6, sum(t.arousal for t in calm) / 6)
    dist = [math.hypot(t.valence - centre[0], t.arousal - centre[1]) for t in calm]
    assert all(d1 <= d2 + 1e-9 for d1, d2 in zip(dist, dist[1:]))  # ties in either order
    near = make_playlist(tracks, near_point="0.35,0.45", n=3)
    assert (round(near[0].valence, 2), round(near[0].arousal, 2)) == (0.4, 0.4)
    d = [math.hypot(t.valence - 0.35, t.arousal - 0.45) for t in near]
    rest = min(math.hypot(t.valence - 0.35, t.arousal - 0.45) for t in tracks if t not in near)
    assert all(d1 <= d2 + 1e-9 for d1, d2 in zip(d, d[1:])) and d[-1] <= rest
    # the corner-to-corner path takes the diagonal, in order
    diag = path_between(tracks, (-0.8, -0.8), (0.8, 0.8), n=5)
    got = [(round(t.valence, 2), round(t.arousal, 2)) for t in diag]
    assert got == [(round(-0.8 + 0.4 * k, 2),) * 2 for k in range(5)]
    # from a mood to a mood: starts among sad tracks, ends among happy ones, no repeats
    walk = make_playlist(tracks, path_from="sad", path_to="happy", n=7)
    assert walk[0].label == "sad" and walk[-1].label == "happy" and len({t.path for t in walk}) == 7
    with pytest.raises(PlaylistError, match="the library has: angry, calm, happy, sad"):
        make_playlist(tracks, mood="euphoric")
    with pytest.raises(PlaylistError, match="exactly one"):
        make_playlist(tracks, mood="calm", near_point="0,0")
    with pytest.raises(PlaylistError, match="VALENCE,AROUSAL"):
        make_playlist(tracks, near_point="north")
    assert set(QUADRANT_POINTS) == {"happy", "angry", "sad", "calm"}


@needs_mutagen
def test_m3u8_titles_durations_atomic(tmp_path):
    import mutagen

    tagged = write_clip(tmp_path / "tagged.flac", "flac", seconds=2.0)
    f = mutagen.File(tagged, easy=True)
    f["title"], f["artist"] = "Blue Hour", "Nobody"
    f.save()
    bare = write_clip(tmp_path / "bare.ogg", "ogg-vorbis", seconds=3.0, seed=1)
    tracks = [
        Track(str(tagged), "calm", 0.1, -0.2, None),
        Track(str(bare), "sad", -0.3, -0.3, 184.6),
        Track(str(tmp_path / "gone.mp3"), "sad", -0.4, -0.4, None),
    ]
    out = tmp_path / "list.m3u8"
    out.write_text("old contents\n")
    assert write_m3u8(tracks, str(out)) == 3
    assert out.read_text().splitlines() == [
        "#EXTM3U",
        "#EXTINF:2,Nobody - Blue Hour",
        str(tagged),  # length from the file, title from its tags
        "#EXTINF:185,bare",
        str(bare),  # length from the library, title from the name
        "#EXTINF:-1,gone",
        str(tmp_path / "gone.mp3"),  # unknown length: -1, as the format says
    ]
    assert sorted(os.listdir(tmp_path)) == ["bare.ogg", "list.m3u8", "tagged.flac"]  # no temporary left


def test_cli_playlist_and_plot(grid_library, tmp_path, capsys):
    import matplotlib

    backend = matplotlib.get_backend()
    out, png = tmp_path / "calm.m3u8", tmp_path / "va.png"
    assert (
        main(
            [
                "playlist",
                str(grid_library),
                "--path-from",
                "calm",
                "--to",
                "angry",
                "--n",
                "6",
                "--out",
                str(out),
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 13 and all(x.startswith("#EXTINF:30,") for x in lines[1::2])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend  # the plot used a Figure: no global backend change
    assert main(["playlist", str(grid_library), "--mood", "happy", "--n", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all("happy" in x for x in printed)
    assert main(["playlist", str(grid_library), "--mood", "euphoric"]) == 2
    assert "no track is labelled 'euphoric'" in capsys.readouterr().err
