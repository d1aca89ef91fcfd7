"""``--write-tags``: mood, valence and arousal land in each container's own tag frames, the audio
data stays bit-identical, ``--dry-run`` changes nothing, and a read-only file is one error row."""

import os

import pytest

from mersdk.tagging import tag_library
from mersdk.tagging.store import open_store
from mersdk.tagging.write_tags import write_mood_tags

from conftest import DATA, needs_data
from tagging_helpers import HAVE_AV, SOUNDFILE_CONTAINERS, decoded, needs_mutagen, permissions_enforced, write_clip

pytestmark = needs_mutagen

CONTAINERS = list(SOUNDFILE_CONTAINERS) + ["m4a-aac", "m4a-alac"]


def _ext(container):
    return ".m4a" if container.startswith("m4a") else SOUNDFILE_CONTAINERS[container][0]


def _read_back(path):
    """{what: value} from the file's tags, whichever tag system it uses."""
    import mutagen
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    tags = mutagen.File(path).tags
    if isinstance(tags, ID3):
        got = {k: str(tags[f"TXXX:MERSDK_{k.upper()}"].text[0]) for k in ("mood", "valence", "arousal", "model")}
        got["TMOO"] = str(tags["TMOO"].text[0]) if "TMOO" in tags else None
        return got
    if isinstance(tags, MP4Tags):
        return {k: bytes(tags[f"----:com.mersdk:{k}"][0]).decode() for k in ("mood", "valence", "arousal", "model")}
    return {"mood": tags["MOOD"][0], "valence": tags["MERSDK_VALENCE"][0], "arousal": tags["MERSDK_AROUSAL"][0],
            "model": tags["MERSDK_MODEL"][0]}


@pytest.mark.parametrize("container", CONTAINERS)
def test_tags_written_and_audio_untouched(tmp_path, container):
    if container.startswith("m4a") and not HAVE_AV:
        pytest.skip('PyAV is not installed: no M4A file can be made or decoded (pip install "mersdk[decoders]")')
    f = write_clip(tmp_path / f"x{_ext(container)}", container)
    before = decoded(f)
    frames = write_mood_tags(str(f), "happy", 0.51234, -0.25, "abc123def456")
    assert decoded(f).tobytes() == before.tobytes()  # bit-identical samples
    got = _read_back(f)
    assert (got["mood"], got["valence"], got["arousal"], got["model"]) == ("happy", "0.512", "-0.250", "abc123def456")
    if "TMOO" in got:  # a new ID3 tag is v2.4, where TMOO exists
        assert got["TMOO"] == "happy" and frames["TMOO"] == "happy"
    # writing again replaces rather than piles up values
    write_mood_tags(str(f), "sad", -0.5, -0.5, "abc123def456")
    assert _read_back(f)["mood"] == "sad" and decoded(f).tobytes() == before.tobytes()


def test_id3v23_tag_stays_v23_without_tmoo(tmp_path):
    from mutagen.id3 import ID3, TIT2

    f = write_clip(tmp_path / "x.mp3", "mp3")
    tags = ID3()
    tags.add(TIT2(encoding=1, text=["a title"]))
    tags.save(f, v2_version=3)
    frames = write_mood_tags(str(f), "calm", 0.1, -0.1, "m")
    assert "TMOO" not in frames
    assert ID3(f).version[:2] == (2, 3) and str(ID3(f)["TIT2"]) == "a title"


def test_write_tags_run_dry_run_and_read_only(tmp_path, recognizer, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    files = [write_clip(lib / f"t{i}{_ext(c)}", c, seed=i) for i, c in enumerate(["flac", "mp3", "ogg-vorbis"])]
    originals = [f.read_bytes() for f in files]
    echoed = []
    s = tag_library([lib], tmp_path / "dry.sqlite", recognizer=recognizer, progress=False, write_tags=True, dry_run=True,
                    echo=echoed.append)
    assert s.tags_written == 0 and [f.read_bytes() for f in files] == originals
    assert len(echoed) == 3 and all(line.startswith("would write ") and "VALENCE" in line.upper() for line in echoed)

    if not permissions_enforced(tmp_path):
        # root writes through chmod 444 (BYPASS_REASON), so simulate what mutagen meets on a read-only file
        import mutagen

        real_save = mutagen.FileType.save

        def save(self, *a, **kw):
            if os.path.basename(self.filename) == "t1.mp3":
                raise mutagen.MutagenError(PermissionError(13, "Permission denied"))
            return real_save(self, *a, **kw)

        patch = pytest.MonkeyPatch()
        patch.setattr(mutagen.FileType, "save", save)
    else:
        patch = None
    files[1].chmod(0o444)
    try:
        out = tmp_path / "tagged.sqlite"
        s = tag_library([lib], out, recognizer=recognizer, progress=False, write_tags=True)
    finally:
        files[1].chmod(0o644)
        if patch:
            patch.undo()
    assert (s.tags_written, s.errors) == (2, 1)
    with open_store(str(out)) as store:
        rows = {os.path.basename(r["path"]): r for r in store.rows()}
    assert "TagWriteError" in rows["t1.mp3"]["error"] and "Permission denied" in rows["t1.mp3"]["error"]
    assert files[1].read_bytes() == originals[1]
    for i in (0, 2):
        assert _read_back(files[i])["mood"] == rows[files[i].name]["label"]
    # the tagged files are recognised as done (their rows carry the post-tagging hash); the
    # read-only one is retried
    again = tag_library([lib], out, recognizer=recognizer, progress=False, write_tags=True)
    assert (again.skipped, again.tags_written) == (2, 1)


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
