"""The beets plugin (beetsplug/mersdk.py) in a real beets library in a temp dir: `beet import -A`
with `auto: yes`, `beet mersdk -w`, `beet ls` queries on the declared types, `beet mersdk-playlist`.
Stored values are compared with a direct `Recognizer.predict` of the same file and lyrics (the plugin
rounds to 4 decimals: tolerance 1e-3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_AUDIO, EXAMPLE_LYRICS, ROOT
from tagging_helpers import write_clip

pytest.importorskip("beets", reason='needs the [beets] extra (pip install "mersdk[beets]")')
mutagen = pytest.importorskip("mutagen", reason="needs mutagen")

TOL = 1e-3


def beet(home: Path, *args: str, timeout: float = 300) -> str:
    env = dict(
        os.environ,
        BEETSDIR=str(home),
        HOME=str(home),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    p = subprocess.run(
        [sys.executable, "-m", "beets", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"beet {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def tag(path: Path, **values) -> Path:
    f = mutagen.File(path, easy=True)
    if f.tags is None:
        f.add_tags()
    for k, v in values.items():
        f[k] = v
    f.save()
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A beets home with four imported items (FLAC with lyrics, MP3, Ogg, WAV), analysed at import."""
    home = tmp_path_factory.mktemp("beets")
    src = home / "incoming"
    src.mkdir()
    shutil.copy(EXAMPLE_AUDIO, src / "sunny.flac")
    f = mutagen.File(src / "sunny.flac")
    f["title"], f["artist"], f["lyrics"] = "Sunny Day", "Example", EXAMPLE_LYRICS.read_text()
    f.save()
    tag(write_clip(src / "low.mp3", "mp3", seconds=4.0, seed=1), title="Low", artist="Tone")
    tag(write_clip(src / "mid.ogg", "ogg-vorbis", seconds=4.0, seed=2), title="Mid", artist="Tone")
    write_clip(src / "plain.flac", "flac", seconds=4.0, seed=3)
    (home / "config.yaml").write_text(
        f"directory: {home / 'music'}\nlibrary: {home / 'library.db'}\nplugins: [mersdk]\n"
        "import:\n  copy: no\n  write: no\n  resume: no\n"
        "mersdk:\n  backend: torch\n  auto: yes\n"
    )
    beet(home, "import", "-A", "-q", str(src))
    return home, src


def items(home: Path, *query: str) -> dict[str, dict]:
    out = beet(home, "ls", "-f", "$path\t$mood\t$mood_valence\t$mood_arousal\t$mood_model", *query)
    rows = {}
    for line in out.splitlines():
        path, mood, v, a, model = line.split("\t")
        rows[Path(path).name] = {"mood": mood, "valence": float(v), "arousal": float(a), "model": model}
    return rows


def test_import_auto_stores_mood_like_direct_predict(library, recognizer):
    home, src = library
    rows = items(home)
    assert set(rows) == {"sunny.flac", "low.mp3", "mid.ogg", "plain.flac"}
    for name, row in rows.items():
        lyrics = EXAMPLE_LYRICS.read_text().encode() if name == "sunny.flac" else None
        want = recognizer.predict(src / name, lyrics)
        assert row["mood"] == want.label and row["model"] == want.model
        assert abs(row["valence"] - want.valence) <= TOL and abs(row["arousal"] - want.arousal) <= TOL
    # the lyrics beets stored were used: without them the sunny clip's prediction differs
    no_lyrics = recognizer.predict(src / "sunny.flac")
    assert abs(no_lyrics.valence - rows["sunny.flac"]["valence"]) > TOL or no_lyrics.label != rows["sunny.flac"]["mood"]


def test_queries_on_declared_types(library):
    home, _ = library
    rows = items(home)
    label = rows["sunny.flac"]["mood"]
    assert set(items(home, f"mood:{label}")) == {n for n, r in rows.items() if r["mood"] == label}
    values = sorted(r["valence"] for r in rows.values())
    cut = (values[1] + values[2]) / 2  # two above, two below: a float range query, not a string match
    above = items(home, f"mood_valence:{cut:.4f}..")
    assert set(above) == {n for n, r in rows.items() if r["valence"] >= cut} and len(above) == 2
    below = items(home, f"mood_valence:..{cut:.4f}")
    assert set(below) == {n for n, r in rows.items() if r["valence"] <= cut}


def test_command_writes_standard_mood_tags(library):
    home, src = library
    beet(home, "mersdk", "-f", "-w")
    rows = items(home)
    flac = mutagen.File(src / "sunny.flac")
    assert flac["MOOD"] == [rows["sunny.flac"]["mood"]]
    assert abs(float(flac["MERSDK_VALENCE"][0]) - rows["sunny.flac"]["valence"]) <= TOL
    mp3 = mutagen.File(src / "low.mp3")
    assert str(mp3.tags["TMOO"]) == str(mp3.tags["TXXX:MOOD"]) == rows["low.mp3"]["mood"]
    mp3.tags.update_to_v23()  # what a v2.3 tagger does (beets' id3v23): TMOO does not exist there
    mp3.save(v2_version=3)
    assert "TMOO" not in mutagen.File(src / "low.mp3").tags
    assert str(mutagen.File(src / "low.mp3").tags["TXXX:MOOD"]) == rows["low.mp3"]["mood"]
    assert abs(float(str(mp3.tags["TXXX:MERSDK_AROUSAL"])) - rows["low.mp3"]["arousal"]) <= TOL
    ogg = mutagen.File(src / "mid.ogg")
    assert ogg["MOOD"] == [rows["mid.ogg"]["mood"]] and ogg["MERSDK_MODEL"] == [rows["mid.ogg"]["model"]]
    import mediafile

    assert (
        abs(
            float(mediafile.MediaFile(str(src / "plain.flac")).mgfile["MERSDK_AROUSAL"][0])
            - rows["plain.flac"]["arousal"]
        )
        <= TOL
    )


def test_playlist_from_beets(library, tmp_path):
    home, _ = library
    rows = items(home)
    out = tmp_path / "near.m3u8"
    beet(home, "mersdk-playlist", "--near", "0,0", "--n", "3", "--out", str(out), "--plot", str(tmp_path / "va.png"))
    lines = out.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 1 + 2 * 3
    names = [Path(p).name for p in lines[2::2]]
    by_distance = sorted(rows, key=lambda n: (rows[n]["valence"] ** 2 + rows[n]["arousal"] ** 2, n))
    assert names == by_distance[:3]
    if "sunny.flac" in names:
        i = names.index("sunny.flac")
        assert lines[1 + 2 * i] == "#EXTINF:16,Example - Sunny Day"
    assert (tmp_path / "va.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    env = dict(os.environ, BEETSDIR=str(home), HOME=str(home), PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-m", "beets", "mersdk-playlist", "--mood", "nonesuch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0 and "no track is labelled 'nonesuch'" in p.stderr
