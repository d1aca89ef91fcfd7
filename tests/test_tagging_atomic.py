"""Tag writing is atomic: a writer killed (SIGKILL, SIGINT) at random moments leaves every file
decoding to its original audio, with its old tags or its new ones; failures leave the file as it was
and remove the temporary copy; owner, mode and times are kept as documented."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tagging_helpers import HAVE_AV, needs_mutagen, write_clip

from mersdk.tagging.write_tags import TEMP_MARK, TagWriteError, is_temp_file, write_mood_tags

pytestmark = needs_mutagen
ROOT = Path(__file__).resolve().parents[1]

# the writer: tags every file over and over with values of varying length (so a FLAC without a
# padding block must be rewritten whole each time), until it is killed
WRITER = r"""
import importlib.util, random, sys
import mutagen, mutagen.asf, mutagen.id3, mutagen.mp4, soundfile  # imported before "ready": kills land in writes
if importlib.util.find_spec("av"):
    import av
from mersdk.tagging.write_tags import write_mood_tags
files = sys.argv[1:]
rng = random.Random()
print("ready", flush=True)
while True:
    for f in files:
        write_mood_tags(f, rng.choice(["happy", "sad", "calm", "angry"]), rng.uniform(-1, 1), rng.uniform(-1, 1),
                        "m" * rng.randint(1, 4000))
"""


def exact_samples(path: Path) -> np.ndarray:
    """Every decoded sample at the file's own rate: libsndfile, or FFmpeg (PyAV) for M4A."""
    if path.suffix == ".m4a":
        import av

        with av.open(str(path)) as c:
            return np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    import soundfile as sf

    return sf.read(path, dtype="float64", always_2d=True)[0]


def flac_without_padding(path: Path) -> Path:
    """Drop every PADDING metadata block (mutagen always keeps one), so any bigger tag forces the
    whole file, audio included, to be rewritten: the case that broke files when written in place."""
    data = path.read_bytes()
    assert data[:4] == b"fLaC"
    pos, blocks = 4, []
    while True:
        head = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if head & 0x7F != 1:
            blocks.append(bytearray(data[pos : pos + 4 + length]))
        pos += 4 + length
        if head & 0x80:
            break
    for b in blocks:
        b[0] &= 0x7F
    blocks[-1][0] |= 0x80
    path.write_bytes(b"fLaC" + b"".join(blocks) + data[pos:])
    from mutagen.flac import FLAC

    assert not any(b.code == 1 for b in FLAC(path).metadata_blocks), "a PADDING block is still there"
    return path


def make_library(folder: Path, seconds: float = 1.0) -> list[Path]:
    folder.mkdir()
    files = [
        flac_without_padding(write_clip(folder / "a.flac", "flac", seconds=seconds)),
        write_clip(folder / "b.mp3", "mp3", seconds=seconds, seed=1),
        write_clip(folder / "c.opus", "ogg-opus", seconds=seconds, seed=2),
    ]
    if HAVE_AV:
        files.append(write_clip(folder / "d.m4a", "m4a-aac-faststart", seconds=seconds, seed=3))
    return files


def test_random_kills_never_break_a_file(tmp_path):
    import mutagen

    files = make_library(tmp_path / "lib")
    original = {f: exact_samples(f) for f in files}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random(1234)
    kills, tags_changed, temps_left, tag_states = {"SIGKILL": 0, "SIGINT": 0}, 0, 0, set()
    temps_before: set[str] = set()
    for k in range(60):
        sig = signal.SIGKILL if k % 2 == 0 else signal.SIGINT
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, *map(str, files)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(sig)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        kills[sig.name] += 1
        for f in files:
            got = exact_samples(f)
            assert got.shape == original[f].shape and np.array_equal(got, original[f]), (k, sig.name, f.name)
            tags = mutagen.File(f).tags  # old or new tags (none before the first write), readable either way
            state = (
                f.name,
                None
                if tags is None
                else str(
                    tags.get("MERSDK_MODEL")
                    or tags.get("TXXX:MERSDK_MODEL")
                    or tags.get("----:com.apple.iTunes:MERSDK_MODEL")
                ),
            )
            tags_changed += state not in tag_states
            tag_states.add(state)
        left = {p.name for p in (tmp_path / "lib").iterdir() if is_temp_file(p.name)}
        temps_left += len(left - temps_before)
        if sig == signal.SIGINT:  # Ctrl-C runs the clean-up: no new copy left behind
            assert not left - temps_before, left - temps_before
        temps_before = left
    print(f"\nkills survived: {kills}; tag versions seen: {tags_changed}; temp copies left by SIGKILL: {temps_left}")
    assert sum(kills.values()) >= 50
    # the kills really interrupted a writer that was writing: tags changed, and SIGKILLs left copies mid-write
    assert tags_changed > len(files) and temps_left >= 1
    # the next write of a file removes a copy a SIGKILL left behind
    for f in files:
        write_mood_tags(f, "calm", 0.0, 0.0, "final")
    assert not [p for p in (tmp_path / "lib").iterdir() if is_temp_file(p.name)]


# dies in the middle of mutagen's byte move (the audio data shifted to make room for a bigger tag):
# the moment a kill broke files when tags were written in place
DYING_WRITER = r"""
import os, signal, sys
import mutagen, mutagen._util as util
real_move = util.move_bytes

def dying_move(fobj, dest, src, count, *args, **kwargs):
    # a move towards the end copies backwards: by the kill, the last 3/4 of the audio are moved
    done = count - count // 4 if dest > src else count // 2
    start = count - done if dest > src else 0
    real_move(fobj, dest + start, src + start, done, *args, **kwargs)
    fobj.flush()
    os.kill(os.getpid(), signal.SIGKILL)

util.move_bytes = dying_move
mode, path = sys.argv[1:]
if mode == "atomic":
    from mersdk.tagging.write_tags import write_mood_tags
    write_mood_tags(path, "happy", 0.5, 0.5, "m" * 3000)
else:  # in place, as mutagen does by itself: the control that shows this test can see a broken file
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    from mutagen.id3 import ID3, TXXX
    from mutagen.mp4 import MP4Tags
    if isinstance(f.tags, ID3):
        f.tags.add(TXXX(encoding=3, desc="X", text=["m" * 3000]))
    elif isinstance(f.tags, MP4Tags):
        f.tags["----:com.apple.iTunes:X"] = [b"m" * 3000]
    else:
        f.tags["X"] = ["m" * 3000]
    f.save()
print("not killed")
"""


@pytest.mark.parametrize("name", ["a.flac", "b.mp3", "c.opus", "d.m4a"])
def test_kill_inside_the_byte_move(tmp_path, name):
    files = {f.name: f for f in make_library(tmp_path / "lib", seconds=4.0)}  # audio much bigger than the tag
    if name not in files:
        pytest.skip('PyAV is not installed: no M4A file can be made or decoded (pip install "mersdk[decoders]")')
    f = files[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    original, original_bytes = exact_samples(f), f.read_bytes()
    for mode in ("atomic", "in-place"):
        f.write_bytes(original_bytes)
        proc = subprocess.run(
            [sys.executable, "-c", DYING_WRITER, mode, str(f)], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == -signal.SIGKILL, (mode, proc.returncode, proc.stderr[-2000:])
        try:
            same = np.array_equal(exact_samples(f), original)
        except Exception:
            same = False
        if mode == "atomic":
            assert same and f.read_bytes() == original_bytes, "the original was touched"
        else:
            assert not same, "the control (in-place write) did not break the audio"


def test_failed_write_leaves_file_and_no_temp(tmp_path, monkeypatch):
    import mutagen
    from mutagen.flac import FLAC

    f = flac_without_padding(write_clip(tmp_path / "x.flac", "flac"))
    before = f.read_bytes()

    def broken_save(self, *a, **kw):
        raise mutagen.MutagenError(OSError(28, "No space left on device"))

    monkeypatch.setattr(FLAC, "save", broken_save)
    with pytest.raises(TagWriteError, match="No space left"):
        write_mood_tags(f, "happy", 0.1, 0.2, "m")
    assert f.read_bytes() == before and os.listdir(tmp_path) == ["x.flac"]


def test_copy_that_decodes_differently_is_not_installed(tmp_path, monkeypatch):
    """The check after writing compares the audio: a copy whose audio differs is thrown away."""
    from mersdk.tagging import write_tags

    f = write_clip(tmp_path / "x.mp3", "mp3")
    before = f.read_bytes()
    real_digest = write_tags.audio_digest
    calls = []

    def digest(path, **kw):
        calls.append((TEMP_MARK in path, kw.get("exact_bytes", True)))
        return real_digest(path, **kw) + ("x" if TEMP_MARK in path else "")

    monkeypatch.setattr(write_tags, "audio_digest", digest)
    with pytest.raises(TagWriteError, match="does not hold the same audio"):
        write_mood_tags(f, "happy", 0.1, 0.2, "m")
    assert f.read_bytes() == before and os.listdir(tmp_path) == ["x.mp3"]
    # the bytes of the audio first, then (as they differ) the decoded samples of both
    assert sorted(calls) == [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize("container, ext", [("flac", ".flac"), ("mp3", ".mp3"), ("wav", ".wav")])
def test_audio_bytes_check_sees_a_changed_sample(tmp_path, container, ext):
    """The cheap check (the bytes of the audio) changes when one byte of audio does, and not when
    only the tags do."""
    from mersdk.tagging.write_tags import audio_digest

    f = write_clip(tmp_path / f"x{ext}", container, seconds=2.0)
    before = audio_digest(str(f))
    assert audio_digest(str(f), exact_bytes=False) != before  # the bytes, not the decoded samples
    write_mood_tags(f, "happy", 0.1, 0.2, "m" * 3000)
    assert audio_digest(str(f)) == before
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the audio (the tags are a few KB at one end)
    f.write_bytes(bytes(data))
    assert audio_digest(str(f)) != before


def test_audio_that_does_not_decode_to_the_end(tmp_path):
    """A FLAC cut mid-stream keeps its audio bytes exactly; an Ogg cut mid-stream (checked by
    decoding) is refused and left as it was."""
    from mersdk.tagging.write_tags import audio_digest

    good = write_clip(tmp_path / "g.flac", "flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(good[: len(good) // 2])
    before = audio_digest(str(cut))
    write_mood_tags(cut, "happy", 0.1, 0.2, "m")
    assert audio_digest(str(cut)) == before
    ogg = write_clip(tmp_path / "g.ogg", "ogg-vorbis", seconds=3.0).read_bytes()
    cut_ogg = tmp_path / "cut.ogg"
    cut_ogg.write_bytes(ogg[: len(ogg) // 2] + os.urandom(2000))
    damaged = cut_ogg.read_bytes()
    try:
        samples = audio_digest(str(cut_ogg), exact_bytes=False)
    except TagWriteError:
        samples = None
    if samples is None:  # libsndfile stops at the garbage: a copy could not be checked, so no write
        with pytest.raises(TagWriteError, match="does not decode to the end"):
            write_mood_tags(cut_ogg, "happy", 0.1, 0.2, "m")
        assert cut_ogg.read_bytes() == damaged
    else:  # it decodes what it can: the same samples after the write
        write_mood_tags(cut_ogg, "happy", 0.1, 0.2, "m")
        assert audio_digest(str(cut_ogg), exact_bytes=False) == samples
    assert not [p for p in os.listdir(tmp_path) if is_temp_file(p)]


def test_mode_times_owner_symlink_and_hard_links(tmp_path):
    f = write_clip(tmp_path / "x.ogg", "ogg-vorbis")
    f.chmod(0o640)
    os.utime(f, ns=(1_600_000_000_000_000_000, 1_500_000_000_000_000_000))
    st = f.stat()
    t0 = time.time_ns()
    write_mood_tags(f, "happy", 0.1, 0.2, "m")
    new = f.stat()
    assert new.st_ino != st.st_ino  # replaced, not rewritten in place
    assert (new.st_mode, new.st_uid, new.st_gid, new.st_atime_ns) == (st.st_mode, st.st_uid, st.st_gid, st.st_atime_ns)
    assert new.st_mtime_ns >= t0 - 10_000_000  # the modification time is the write's (documented)
    write_mood_tags(f, "sad", 0.1, 0.2, "m", keep_mtime=True)
    assert f.stat().st_mtime_ns == new.st_mtime_ns and f.stat().st_atime_ns == st.st_atime_ns

    link = tmp_path / "link.ogg"
    link.symlink_to(f)
    write_mood_tags(link, "calm", 0.1, 0.2, "m")
    assert link.is_symlink() and str(__import__("mutagen").File(f).tags["MOOD"][0]) == "calm"

    hard = tmp_path / "hard.ogg"
    os.link(f, hard)
    before = f.read_bytes()
    with pytest.raises(TagWriteError, match="hard links"):
        write_mood_tags(f, "angry", 0.1, 0.2, "m")
    assert f.read_bytes() == before == hard.read_bytes()


def test_not_a_regular_file_and_read_only_folder(tmp_path):
    fifo = tmp_path / "pipe.flac"
    os.mkfifo(fifo)
    with pytest.raises(TagWriteError, match="not a regular file"):
        write_mood_tags(fifo, "happy", 0.1, 0.2, "m")
    zero = tmp_path / "zero.mp3"
    zero.symlink_to("/dev/zero")
    with pytest.raises(TagWriteError, match="not a regular file"):
        write_mood_tags(zero, "happy", 0.1, 0.2, "m")


def test_walk_skips_temp_copies(tmp_path):
    from mersdk.tagging import walk_audio

    write_clip(tmp_path / "x.flac", "flac")
    (tmp_path / f".x.flac.abc123{TEMP_MARK}.flac").write_bytes(b"left by a kill")
    problems = []
    found = [f.path for f in walk_audio([tmp_path], on_problem=lambda p, m: problems.append(m))]
    assert [os.path.basename(p) for p in found] == ["x.flac"] and "interrupted tag write" in problems[0]
