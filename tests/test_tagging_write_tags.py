"""``--write-tags``: the mood lands in each container's standard mood field (read back with mutagen
and with beets' mediafile), valence/arousal/model beside it, a user's own mood is kept unless
``overwrite_mood``, the audio stays bit-identical, ``--dry-run`` changes nothing, and a file that
cannot be written keeps its prediction and is reported."""

import os

import pytest
from conftest import DATA, needs_data
from tagging_helpers import (
    HAVE_AV,
    SOUNDFILE_CONTAINERS,
    decoded,
    needs_mutagen,
    permissions_enforced,
    write_clip,
    write_wma,
)

from mersdk.tagging import tag_library
from mersdk.tagging.store import open_store
from mersdk.tagging.write_tags import audio_digest, write_mood_tags

pytestmark = needs_mutagen

CONTAINERS = list(SOUNDFILE_CONTAINERS) + ["m4a-aac", "m4a-alac", "wma"]


def _ext(container):
    if container == "wma":
        return ".wma"
    return ".m4a" if container.startswith("m4a") else SOUNDFILE_CONTAINERS[container][0]


def _make(path, container, seed=0):
    return write_wma(path) if container == "wma" else write_clip(path, container, seed=seed)


def _read_back(path):
    """{what: value} from the file's tags as mutagen reads them: "mood" is the standard mood field
    (TMOO, TXXX:MOOD, MOOD, ----:com.apple.iTunes:MOOD, WM/Mood), the others mersdk's own fields."""
    import mutagen
    from mutagen.asf import ASFTags
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    tags = mutagen.File(path).tags
    keys = ("MERSDK_MOOD", "MERSDK_VALENCE", "MERSDK_AROUSAL", "MERSDK_MODEL")
    if isinstance(tags, ID3):
        got = {k: str(tags[f"TXXX:{k}"].text[0]) for k in keys}
        mood = tags.getall("TMOO") or tags.getall("TXXX:MOOD")
        got["mood"] = str(mood[0].text[0]) if mood else None
        got["version"] = tags.version[:2]
    elif isinstance(tags, MP4Tags):
        got = {k: bytes(tags[f"----:com.apple.iTunes:{k}"][0]).decode() for k in keys}
        mood = tags.get("----:com.apple.iTunes:MOOD")
        got["mood"] = bytes(mood[0]).decode() if mood else None
        assert not [k for k in tags.keys() if k.startswith("----:com.mersdk:")]
    else:
        mood_key = "WM/Mood" if isinstance(tags, ASFTags) else "MOOD"
        got = {k: str(tags[k][0]) for k in keys}
        got["mood"] = str(tags[mood_key][0]) if mood_key in tags else None
    return got


def _mediafile(path):
    """What beets' mediafile reads, with the mood fields a beets plugin registers (mediafile itself
    has no ``mood`` field): TMOO for ID3v2.4, TXXX:MOOD for v2.3, MOOD, the iTunes freeform MOOD, WM/Mood."""
    import mediafile
    from mediafile import (
        ASFStorageStyle,
        MediaField,
        MP3DescStorageStyle,
        MP3StorageStyle,
        MP4StorageStyle,
        StorageStyle,
    )

    def field(name, *mp3):
        return MediaField(
            *mp3,
            MP4StorageStyle(f"----:com.apple.iTunes:{name}"),
            StorageStyle(name),
            ASFStorageStyle("WM/Mood" if name == "MOOD" else name),
        )

    class MoodFile(mediafile.MediaFile):
        pass

    MoodFile.add_field("mood", field("MOOD", MP3StorageStyle("TMOO"), MP3DescStorageStyle("MOOD")))
    for name in ("VALENCE", "AROUSAL", "MODEL"):
        MoodFile.add_field(f"mersdk_{name.lower()}", field(f"MERSDK_{name}", MP3DescStorageStyle(f"MERSDK_{name}")))
    m = MoodFile(str(path))
    return {"mood": m.mood, "valence": m.mersdk_valence, "arousal": m.mersdk_arousal, "model": m.mersdk_model}


@pytest.mark.parametrize("container", CONTAINERS)
def test_tags_written_and_audio_untouched(tmp_path, container):
    pytest.importorskip("mediafile", reason="beets' mediafile is not installed (the test extra has it)")
    if (container.startswith("m4a") or container == "wma") and not HAVE_AV:
        pytest.skip('PyAV is not installed: no M4A/WMA file can be made or decoded (pip install "mersdk[decoders]")')
    f = _make(tmp_path / f"x{_ext(container)}", container)
    before = audio_digest(str(f))
    samples = decoded(f).tobytes() if container != "wma" else None  # mersdk does not decode WMA v2 here
    written = write_mood_tags(str(f), "happy", 0.51234, -0.25, "abc123def456")
    assert audio_digest(str(f)) == before  # same decoded samples (same audio packets for M4A/WMA)
    assert samples is None or decoded(f).tobytes() == samples
    got = _read_back(f)
    assert got["mood"] == got["MERSDK_MOOD"] == "happy" and written.kept_user_mood is None
    assert (got["MERSDK_VALENCE"], got["MERSDK_AROUSAL"], got["MERSDK_MODEL"]) == ("0.512", "-0.250", "abc123def456")
    if "version" in got:  # a new ID3 tag is v2.4, with TMOO
        assert got["version"] == (2, 4) and written.frames["TMOO"] == "happy"
    assert _mediafile(f) == {"mood": "happy", "valence": "0.512", "arousal": "-0.250", "model": "abc123def456"}
    # writing again replaces mersdk's own earlier mood rather than piling up values or keeping it
    write_mood_tags(str(f), "sad", -0.5, -0.5, "abc123def456")
    assert _read_back(f)["mood"] == "sad" and _mediafile(f)["mood"] == "sad" and audio_digest(str(f)) == before


@pytest.mark.parametrize("container", ["flac", "mp3", "ogg-opus", "m4a-aac", "wma"])
def test_user_mood_kept_unless_overwrite(tmp_path, container):
    import mutagen
    from mutagen.id3 import ID3, TMOO

    if (container.startswith("m4a") or container == "wma") and not HAVE_AV:
        pytest.skip('PyAV is not installed (pip install "mersdk[decoders]")')
    f = _make(tmp_path / f"x{_ext(container)}", container)
    m = mutagen.File(f)
    if m.tags is None:
        m.add_tags()
    if isinstance(m.tags, ID3):
        m.tags.add(TMOO(encoding=3, text=["Melancholic"]))
    elif container.startswith("m4a"):
        m.tags["----:com.apple.iTunes:MOOD"] = [b"Melancholic"]
    else:
        m.tags["WM/Mood" if container == "wma" else "MOOD"] = ["Melancholic"]
    m.save()
    dry = write_mood_tags(str(f), "happy", 0.5, 0.5, "m", dry_run=True)
    assert dry.kept_user_mood == "Melancholic" and "MERSDK_MOOD" in "".join(dry.frames)
    written = write_mood_tags(str(f), "happy", 0.5, 0.5, "m")
    got = _read_back(f)
    assert written.kept_user_mood == "Melancholic" and (got["mood"], got["MERSDK_MOOD"]) == ("Melancholic", "happy")
    write_mood_tags(str(f), "sad", 0.5, 0.5, "m", overwrite_mood=True)
    got = _read_back(f)
    assert (got["mood"], got["MERSDK_MOOD"]) == ("sad", "sad")
    # from now on the mood is mersdk's own, so a later run may replace it without the flag
    write_mood_tags(str(f), "calm", 0.5, 0.5, "m")
    assert _read_back(f)["mood"] == "calm"


def test_id3v23_tag_stays_v23_with_txxx_mood(tmp_path):
    pytest.importorskip("mediafile", reason="beets' mediafile is not installed (the test extra has it)")
    from mutagen.id3 import ID3, TIT2

    f = write_clip(tmp_path / "x.mp3", "mp3")
    tags = ID3()
    tags.add(TIT2(encoding=1, text=["a title"]))
    tags.save(f, v2_version=3)
    written = write_mood_tags(str(f), "calm", 0.1, -0.1, "m")
    assert "TMOO" not in written.frames and written.frames["TXXX:MOOD"] == "calm"
    assert ID3(f).version[:2] == (2, 3) and str(ID3(f)["TIT2"]) == "a title" and str(ID3(f)["TXXX:MOOD"]) == "calm"
    assert _mediafile(f)["mood"] == "calm"


def test_old_mersdk_names_are_replaced(tmp_path):
    """Files tagged by an earlier mersdk (``----:com.mersdk:*`` atoms; Vorbis MOOD without
    MERSDK_MOOD) are updated, their old mood counted as mersdk's own."""
    import mutagen

    f = write_clip(tmp_path / "x.flac", "flac")
    m = mutagen.File(f)
    if m.tags is None:
        m.add_tags()
    m.tags["MOOD"], m.tags["MERSDK_MODEL"] = ["sad"], ["old"]
    m.save()
    assert write_mood_tags(str(f), "happy", 0.1, 0.1, "new").kept_user_mood is None
    assert _read_back(f)["mood"] == "happy"
    if HAVE_AV:
        g = write_clip(tmp_path / "x.m4a", "m4a-aac")
        m = mutagen.File(g)
        if m.tags is None:
            m.add_tags()
        m.tags["----:com.mersdk:mood"] = [b"sad"]
        m.save()
        write_mood_tags(str(g), "happy", 0.1, 0.1, "new")
        assert _read_back(g)["mood"] == "happy"  # _read_back also checks no com.mersdk atom is left


def test_write_tags_run_dry_run_and_read_only(tmp_path, recognizer, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    files = [write_clip(lib / f"t{i}{_ext(c)}", c, seed=i) for i, c in enumerate(["flac", "mp3", "ogg-vorbis"])]
    originals = [f.read_bytes() for f in files]
    echoed = []
    s = tag_library(
        [lib],
        tmp_path / "dry.sqlite",
        recognizer=recognizer,
        progress=False,
        write_tags=True,
        dry_run=True,
        echo=echoed.append,
    )
    assert s.tags_written == 0 and [f.read_bytes() for f in files] == originals
    assert len(echoed) == 3 and all(line.startswith("would write ") and "VALENCE" in line.upper() for line in echoed)

    if not permissions_enforced(tmp_path):
        # root writes through chmod 444 (BYPASS_REASON): make the write check see what a user would
        from mersdk.tagging import write_tags

        monkeypatch.setattr(write_tags, "writable", lambda path: not path.endswith("t1.mp3"))
    files[1].chmod(0o444)
    echoed = []
    try:
        out = tmp_path / "tagged.sqlite"
        s = tag_library([lib], out, recognizer=recognizer, progress=False, write_tags=True, echo=echoed.append)
    finally:
        files[1].chmod(0o644)
    assert (s.predicted, s.tags_written, s.tag_errors, s.errors) == (3, 2, 1, 0)
    assert [line for line in echoed if "t1.mp3" in line and "tags not written" in line and "Permission denied" in line]
    with open_store(str(out)) as store:
        rows = {os.path.basename(r["path"]): r for r in store.rows()}
    # the prediction is kept; the failed write is the row's warning, and it is not marked tagged
    assert rows["t1.mp3"]["error"] is None and rows["t1.mp3"]["label"]
    assert "tags not written" in rows["t1.mp3"]["warning"] and rows["t1.mp3"]["tagged_at"] is None
    assert files[1].read_bytes() == originals[1] and not [p for p in os.listdir(lib) if p.startswith(".")]
    for i in (0, 2):
        assert _read_back(files[i])["mood"] == rows[files[i].name]["label"] and rows[files[i].name]["tagged_at"]
    # the next --write-tags run predicts nothing again and only writes the missing tags
    monkeypatch.undo()
    again = tag_library([lib], out, recognizer=recognizer, progress=False, write_tags=True)
    assert (again.predicted, again.skipped, again.tags_written, again.tag_errors) == (0, 3, 1, 0)
    with open_store(str(out)) as store:
        row = next(r for r in store.rows() if r["path"].endswith("t1.mp3"))
    assert row["tagged_at"] and not row["warning"] and _read_back(files[1])["mood"] == row["label"]


@needs_data
@pytest.mark.data
def test_real_clips_tagged_in_place(tmp_path, recognizer):
    """Copies of two real Ogg Opus clips (and one's lyrics) in tmp_path: tagged, audio unchanged."""
    import shutil

    src = DATA / "mirex_mm"
    lib = tmp_path / "lib"
    lib.mkdir()
    for clip_id in ("001", "003"):
        shutil.copy(src / "audio" / f"{clip_id}.opus", lib)
    shutil.copy(src / "lyrics" / "003.txt", lib)
    before = {f.name: decoded(f) for f in lib.glob("*.opus")}
    s = tag_library([lib], tmp_path / "o.sqlite", recognizer=recognizer, progress=False, write_tags=True)
    assert (s.predicted, s.tags_written) == (2, 2)
    with open_store(str(tmp_path / "o.sqlite")) as store:
        rows = {os.path.basename(r["path"]): r for r in store.rows()}
    assert rows["003.opus"]["lyrics_source"] == "sidecar:txt" and rows["001.opus"]["lyrics_used"] is False
    for name, samples in before.items():
        assert decoded(lib / name).tobytes() == samples.tobytes()
        assert _read_back(lib / name)["mood"] == rows[name]["label"]


def test_cli_tells_the_user_when_a_write_failed(tmp_path, capsys, monkeypatch):
    from mersdk.cli import main as cli_main
    from mersdk.tagging import write_tags

    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "a.flac", "flac")
    write_clip(lib / "b.flac", "flac", seed=1)
    monkeypatch.setattr(write_tags, "writable", lambda path: not path.endswith("b.flac"))  # as if chmod 444
    out = str(tmp_path / "o.sqlite")
    assert cli_main(["tag", str(lib), "--out", out, "--no-progress", "--write-tags", "--backend", "torch"]) == 1
    err = capsys.readouterr().err
    assert "b.flac: tags not written (Permission denied" in err
    assert "2 predicted, 0 errors, 0 already done; 1 tagged, 1 tag writes FAILED" in err
