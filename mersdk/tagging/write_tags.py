"""Write the predicted mood into a file's own tags, atomically, where players and taggers read it.

What is written (values are text; valence/arousal with 3 decimals, in [-1, 1]):

=================  ==========================  ===============================================
tag system         the mood (standard field)    mersdk's own fields beside it
=================  ==========================  ===============================================
ID3v2.4 (MP3,      ``TMOO``                     ``TXXX:MERSDK_MOOD``, ``TXXX:MERSDK_VALENCE``,
WAV, AIFF)                                      ``TXXX:MERSDK_AROUSAL``, ``TXXX:MERSDK_MODEL``
ID3v2.3            ``TXXX:MOOD``                the same ``TXXX:MERSDK_*`` frames
Vorbis comments    ``MOOD``                     ``MERSDK_MOOD``, ``MERSDK_VALENCE``,
(FLAC, Ogg, Opus)                               ``MERSDK_AROUSAL``, ``MERSDK_MODEL``
MP4/M4A            ``----:com.apple.iTunes:``   ``----:com.apple.iTunes:MERSDK_MOOD`` (and
                   ``MOOD``                     ``_VALENCE``, ``_AROUSAL``, ``_MODEL``)
ASF/WMA            ``WM/Mood``                  ``MERSDK_MOOD``, ``MERSDK_VALENCE``, ...
=================  ==========================  ===============================================

The standard field is the one Picard, beets/mediafile-based tools and players read. A mood already
there that mersdk did not write (it differs from the file's ``MERSDK_MOOD``) is the user's and is
kept unless ``overwrite_mood=True``; ``MERSDK_MOOD`` always holds mersdk's prediction. A v2.3 ID3
tag stays v2.3; any other ID3 tag is saved as v2.4.

Atomic: the file is copied to a hidden temporary file in the same folder (``.NAME.PID-XXXX.mersdk-tmp.EXT``),
the tags are written into the copy with mutagen, the copy is fsynced and checked to hold the same
audio as the original, then ``os.replace``d over it (and the folder fsynced). An interrupted run
(Ctrl-C, kill, power loss) leaves the old file or the new one, never a broken one; at worst a
temporary file, which ``walk_audio`` skips and the next write of that file removes once the process
that left it has ended. The check
(``audio_digest``): FLAC, MP3 and WAV must keep the very bytes of their audio (FLAC frames and
STREAMINFO, the MPEG frames between ID3v2 and ID3v1, the WAV ``fmt``/``data`` chunks), which costs a
fifteenth of decoding (0.16 s against 2.5 s per check of a 43 MB FLAC); when those bytes differ, or for the other
formats libsndfile reads (Ogg Vorbis/Opus, whose pages mutagen renumbers; AIFF), both files must
decode to the same samples; MP4/M4A and ASF/WMA (decoded through FFmpeg, the costly part) must demux
to the same compressed audio packets. Kept: owner and group (a file whose owner cannot be kept is
not written), mode, extended attributes, access time; the modification time becomes the time of the
write (so backup tools, ``rsync`` and beets see the change) unless ``keep_mtime=True``. Files with
several hard links are refused (a replace would split them), and so are files in a folder this user
cannot write (the copy must live there); a symlink's target is written, the link stays.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from dataclasses import dataclass, field

from ..errors import MersdkError
from ..files import atomic_path, remove_stale_temps

TEMP_MARK = ".mersdk-tmp"
MOOD_FIELDS = {
    "id3v2.4": "TMOO",
    "id3v2.3": "TXXX:MOOD",
    "vorbis": "MOOD",
    "mp4": "----:com.apple.iTunes:MOOD",
    "asf": "WM/Mood",
}
_MP4_PREFIX = "----:com.apple.iTunes:"
_OLD_MP4_PREFIX = "----:com.mersdk:"  # written by mersdk before the standard names; removed on rewrite


class TagWriteError(MersdkError):
    """The file's tags could not be written (read-only file, unsupported container, broken tags);
    the file is left as it was."""


@dataclass(frozen=True)
class TagWrite:
    """What was (or with ``dry_run`` would be) written: {frame name: value}, and the user's own mood
    left in place (None when the standard mood field got mersdk's label)."""

    frames: dict[str, str] = field(default_factory=dict)
    kept_user_mood: str | None = None


def is_temp_file(name: str) -> bool:
    """Whether a file name is one of the temporary copies this module makes."""
    base = os.path.basename(name)
    return base.startswith(".") and TEMP_MARK in base


def mood_values(label: str, valence: float, arousal: float, model_hash: str) -> dict[str, str]:
    return {"mood": label, "valence": f"{valence:.3f}", "arousal": f"{arousal:.3f}", "model": model_hash}


def _first(values) -> str | None:
    for v in values or ():
        text = str(v).strip()
        if text:
            return text
    return None


def _is_user_mood(existing: str | None, ours_before: str | None, written_by_old_mersdk: bool) -> bool:
    return existing is not None and existing != ours_before and not written_by_old_mersdk


def _set_id3(tags, values: dict[str, str], overwrite_mood: bool) -> tuple[dict[str, str], str | None, dict]:
    from mutagen.id3 import TMOO, TXXX

    v23 = tags.version[:2] == (2, 3)  # new tags and v2.2 (which mutagen upgrades) are saved as v2.4
    existing = _first(f for fr in tags.getall("TMOO") for f in fr.text) or _first(
        f for fr in tags.getall("TXXX:MOOD") for f in fr.text
    )
    ours_before = _first(f for fr in tags.getall("TXXX:MERSDK_MOOD") for f in fr.text)
    frames = {}
    for key, value in values.items():
        name = f"MERSDK_{key.upper()}"
        tags.setall(f"TXXX:{name}", [TXXX(encoding=3, desc=name, text=[value])])
        frames[f"TXXX:{name}"] = value
    kept = existing if _is_user_mood(existing, ours_before, False) and not overwrite_mood else None
    if kept is None:
        tags.delall("TMOO")
        tags.delall("TXXX:MOOD")
        if v23:
            tags.setall("TXXX:MOOD", [TXXX(encoding=1, desc="MOOD", text=[values["mood"]])])
            frames["TXXX:MOOD"] = values["mood"]
        else:
            tags.setall("TMOO", [TMOO(encoding=3, text=[values["mood"]])])
            frames["TMOO"] = values["mood"]
    return frames, kept, {"v2_version": 3 if v23 else 4}


def _set_mp4(tags, values: dict[str, str], overwrite_mood: bool) -> tuple[dict[str, str], str | None, dict]:
    from mutagen.mp4 import AtomDataType, MP4FreeForm

    def text(key):
        return _first(bytes(v).decode("utf-8", "replace") for v in tags.get(key, []))

    def put(key, value):
        tags[key] = [MP4FreeForm(value.encode("utf-8"), dataformat=AtomDataType.UTF8)]
        frames[key] = value

    mood_key = MOOD_FIELDS["mp4"]
    existing, ours_before = text(mood_key), text(_MP4_PREFIX + "MERSDK_MOOD")
    for key in [k for k in tags.keys() if k.startswith(_OLD_MP4_PREFIX)]:
        del tags[key]
    frames: dict[str, str] = {}
    for key, value in values.items():
        put(f"{_MP4_PREFIX}MERSDK_{key.upper()}", value)
    kept = existing if _is_user_mood(existing, ours_before, False) and not overwrite_mood else None
    if kept is None:
        put(mood_key, values["mood"])
    return frames, kept, {}


def _set_keyed(
    tags, values: dict[str, str], overwrite_mood: bool, mood_key: str
) -> tuple[dict[str, str], str | None, dict]:
    """Vorbis comments (case-insensitive keys) and ASF attributes: key -> [values]."""

    def get(key):
        try:
            return _first(tags[key]) if key in tags else None
        except (KeyError, ValueError):
            return None

    existing, ours_before = get(mood_key), get("MERSDK_MOOD")
    # mersdk before MERSDK_MOOD existed wrote MOOD itself, beside MERSDK_MODEL
    old_mersdk = ours_before is None and get("MERSDK_MODEL") is not None
    frames = {}
    for key, value in values.items():
        tags[f"MERSDK_{key.upper()}"] = [value]
        frames[f"MERSDK_{key.upper()}"] = value
    kept = existing if _is_user_mood(existing, ours_before, old_mersdk) and not overwrite_mood else None
    if kept is None:
        tags[mood_key] = [values["mood"]]
        frames[mood_key] = values["mood"]
    return frames, kept, {}


def _open_mutagen(path: str):
    import mutagen

    try:
        f = mutagen.File(path)
    except Exception as e:
        raise TagWriteError(f"{path}: tags unreadable ({type(e).__name__}: {e})") from None
    if f is None:
        raise TagWriteError(f"{path}: mutagen does not know this container; tags not written")
    if f.tags is None:
        try:
            f.add_tags()
        except Exception as e:
            raise TagWriteError(f"{path}: cannot add a tag block to this container ({e})") from None
    return f


def _apply(f, path: str, values: dict[str, str], overwrite_mood: bool) -> tuple[dict[str, str], str | None, dict]:
    from mutagen.asf import ASFTags
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    tags = f.tags
    if isinstance(tags, ID3):
        return _set_id3(tags, values, overwrite_mood)
    if isinstance(tags, MP4Tags):
        return _set_mp4(tags, values, overwrite_mood)
    if isinstance(tags, ASFTags):
        return _set_keyed(tags, values, overwrite_mood, MOOD_FIELDS["asf"])
    if hasattr(tags, "__setitem__") and hasattr(tags, "__contains__"):  # Vorbis comments
        return _set_keyed(tags, values, overwrite_mood, MOOD_FIELDS["vorbis"])
    raise TagWriteError(f"{path}: tag type {type(tags).__name__} is not supported for writing")


def _hash_range(f, h, start: int, end: int) -> None:
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(1 << 20, left))
        if not chunk:
            raise EOFError
        h.update(chunk)
        left -= len(chunk)


def _flac_frames(f, h, size: int) -> bool:
    if f.read(4) != b"fLaC":
        return False
    while True:
        head = f.read(4)
        if len(head) < 4:
            return False
        length = int.from_bytes(head[1:], "big")
        if head[0] & 0x7F == 0:  # STREAMINFO: how the frames decode
            h.update(f.read(length))
        else:
            f.seek(length, os.SEEK_CUR)
        if f.tell() > size:
            return False
        if head[0] & 0x80:
            break
    _hash_range(f, h, f.tell(), size)
    return True


def _mp3_frames(f, h, size: int) -> bool:
    head = f.read(10)
    start = 0
    if head[:3] == b"ID3" and len(head) == 10:
        start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10])) + (10 if head[5] & 0x10 else 0)
    end = size
    if size - start >= 128:
        f.seek(size - 128)
        if f.read(3) == b"TAG":  # ID3v1 at the end, which mutagen updates
            end = size - 128
    if end <= start:
        return False
    _hash_range(f, h, start, end)
    return True


def _wav_chunks(f, h, size: int) -> bool:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    seen = set()
    while f.tell() + 8 <= size:
        chunk = f.read(8)
        name, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
        body = f.tell()
        if name in (b"fmt ", b"data"):
            if body + length > size:
                return False
            h.update(name)
            _hash_range(f, h, body, body + length)
            seen.add(name)
        f.seek(body + length + (length & 1))
    return seen == {b"fmt ", b"data"}


_BYTE_CHECKS = {".flac": _flac_frames, ".mp3": _mp3_frames, ".wav": _wav_chunks}


def audio_digest(path: str, *, exact_bytes: bool = True) -> str:
    """A digest of a file's audio, which a tag write must leave unchanged. ``exact_bytes``: for FLAC,
    MP3 and WAV, the bytes of the audio itself (FLAC frames and STREAMINFO, MPEG frames between the
    ID3v2 and ID3v1 tags, WAV ``fmt``/``data`` chunks), a fraction of decoding's cost. Otherwise (or
    when such a file does not parse) its decoded samples where libsndfile reads it, else its demuxed
    compressed audio packets (PyAV)."""
    import soundfile as sf

    h = hashlib.sha256()
    check = _BYTE_CHECKS.get(os.path.splitext(path)[1].lower()) if exact_bytes else None
    if check is not None:
        try:
            with open(path, "rb") as f:
                h.update(f"bytes {check.__name__} ".encode())
                if check(f, h, os.fstat(f.fileno()).st_size):
                    return h.hexdigest()
        except (OSError, EOFError):
            pass
        h = hashlib.sha256()  # did not parse: decode instead
    try:
        sfile = sf.SoundFile(path)
    except Exception:
        sfile = None
    if sfile is not None:
        try:
            with sfile:
                h.update(f"samples {sfile.samplerate} {sfile.channels} ".encode())
                for block in sfile.blocks(blocksize=1 << 16, dtype="float64"):
                    h.update(block.tobytes())
        except Exception as e:
            raise TagWriteError(
                f"{path}: its audio does not decode to the end ({e}), so a write could not be checked; tags not written"
            ) from None
        return h.hexdigest()
    try:
        import av
    except ImportError:
        raise TagWriteError(
            f"{path}: the audio cannot be checked after writing without PyAV "
            '(pip install "mersdk[decoders]"); tags not written'
        ) from None
    try:
        with av.open(path, metadata_errors="replace") as container:
            stream = next(s for s in container.streams if s.type == "audio")
            h.update(f"packets {stream.codec_context.name} ".encode())
            for packet in container.demux(stream):
                if packet.size:
                    h.update(f"{packet.pts} {packet.size} ".encode())
                    h.update(bytes(packet))
    except (StopIteration, av.error.FFmpegError) as e:
        raise TagWriteError(f"{path}: its audio cannot be read to check the write ({e}); tags not written") from None
    return h.hexdigest()


def _same_audio(original: str, copy: str, original_digest: str) -> bool:
    """The copy holds the original's audio: the same bytes of audio, or else the same decoded samples
    (a tag write that moved bytes around, as an Ogg page renumbering does, is judged by decoding)."""
    if audio_digest(copy) == original_digest:
        return True
    return audio_digest(copy, exact_bytes=False) == audio_digest(original, exact_bytes=False)


def writable(path: str) -> bool:
    """Whether this process may write ``path`` (its mode, as the kernel would judge it)."""
    return os.access(path, os.W_OK)


def _same_file_state(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


def _write_atomically(
    real: str, st: os.stat_result, values: dict[str, str], overwrite_mood: bool, keep_mtime: bool
) -> TagWrite:
    folder, base = os.path.split(real)
    suffix = TEMP_MARK + os.path.splitext(base)[1]  # the extension last: mutagen and FFmpeg go by it
    remove_stale_temps(folder, base, suffix)
    before = audio_digest(real)
    started = False
    try:
        # atomic_path: the copy is fsynced, then replaces the original, and the folder is fsynced; on
        # any exception (Ctrl-C included) the copy is removed and the original left as it was
        with atomic_path(real, suffix) as tmp:
            started = True
            with open(real, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            own = os.stat(tmp)
            if (own.st_uid, own.st_gid) != (st.st_uid, st.st_gid):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except PermissionError:
                    raise TagWriteError(
                        f"{real}: its owner/group cannot be kept by this user; tags not written"
                    ) from None
            shutil.copystat(real, tmp)  # mode, extended attributes (after chown, which may clear set-id bits)
            f = _open_mutagen(str(tmp))
            frames, kept, save_kwargs = _apply(f, real, values, overwrite_mood)
            try:
                f.save(**save_kwargs)
            except Exception as e:
                raise TagWriteError(f"{real}: tags not written ({getattr(e, 'strerror', None) or e})") from None
            if not _same_audio(real, str(tmp), before):
                raise TagWriteError(f"{real}: the tagged copy does not hold the same audio; original left as it was")
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns if keep_mtime else time.time_ns()))
            if not _same_file_state(os.stat(real), st):
                raise TagWriteError(f"{real}: the file changed while its tags were written; left as it is")
    except OSError as e:
        what = "tags not written" if started else "cannot create a temporary file in its folder"
        raise TagWriteError(f"{real}: {what} ({e.strerror or e})") from None
    return TagWrite(frames, kept)


def write_mood_tags(
    path: str | os.PathLike,
    label: str,
    valence: float,
    arousal: float,
    model_hash: str,
    *,
    dry_run: bool = False,
    overwrite_mood: bool = False,
    keep_mtime: bool = False,
) -> TagWrite:
    """Write (with ``dry_run``: only compute) the mood tags of ``path`` atomically (module docstring).

    Raises ``TagWriteError`` when the file cannot be tagged; the file is then left as it was."""
    try:
        import mutagen  # noqa: F401
    except ImportError:
        raise TagWriteError('writing tags needs mutagen: pip install "mersdk[tag]"') from None
    path = os.fspath(path)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as e:
        raise TagWriteError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(f"{path}: not a regular file; tags not written")
    values = mood_values(label, valence, arousal, model_hash)
    if dry_run:
        frames, kept, _ = _apply(_open_mutagen(real), path, values, overwrite_mood)
        return TagWrite(frames, kept)
    if st.st_nlink > 1:
        raise TagWriteError(f"{path}: has {st.st_nlink} hard links, which replacing it would split; tags not written")
    if not writable(real):
        raise TagWriteError(f"{path}: tags not written (Permission denied: the file is read-only)")
    return _write_atomically(real, st, values, overwrite_mood, keep_mtime)
