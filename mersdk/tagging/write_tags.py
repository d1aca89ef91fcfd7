"""Write the predicted mood into a file's own tags with mutagen, never touching its audio data.

What is written (values are text; valence/arousal with 3 decimals, in [-1, 1]):
- ID3 (MP3, WAV ``id3 `` chunk, AIFF): ``TXXX:MERSDK_MOOD``, ``TXXX:MERSDK_VALENCE``,
  ``TXXX:MERSDK_AROUSAL``, ``TXXX:MERSDK_MODEL``, and ``TMOO`` (the standard mood frame) when the
  tag is ID3v2.4 (TMOO does not exist in v2.3, so a v2.3 tag stays v2.3 without it).
- Vorbis comments (FLAC, Ogg Vorbis, Ogg Opus): ``MOOD``, ``MERSDK_VALENCE``, ``MERSDK_AROUSAL``,
  ``MERSDK_MODEL``.
- MP4/M4A: freeform atoms ``----:com.mersdk:mood``, ``...:valence``, ``...:arousal``, ``...:model``.
mutagen rewrites only the tag blocks (FLAC metadata blocks, Ogg comment packets, ID3 chunks, MP4
``moov/udta``); tests check that the decoded samples are identical before and after.
"""

from __future__ import annotations

from ..errors import MersdkError


class TagWriteError(MersdkError):
    """The file's tags could not be written (read-only file, unsupported container, broken tags)."""


def mood_values(label: str, valence: float, arousal: float, model_hash: str) -> dict[str, str]:
    return {"mood": label, "valence": f"{valence:.3f}", "arousal": f"{arousal:.3f}", "model": model_hash}


def write_mood_tags(path: str, label: str, valence: float, arousal: float, model_hash: str,
                    *, dry_run: bool = False) -> dict[str, str]:
    """Write (or with ``dry_run`` only compute) the frames; returns {frame name: value}."""
    try:
        import mutagen
        from mutagen.id3 import ID3, TMOO, TXXX
        from mutagen.mp4 import MP4FreeForm, MP4Tags, AtomDataType
    except ImportError:
        raise TagWriteError('writing tags needs mutagen: pip install "mersdk[tag]"') from None
    values = mood_values(label, valence, arousal, model_hash)
    try:
        f = mutagen.File(path)
    except Exception as e:  # noqa: BLE001 - mutagen raises many types on broken files
        raise TagWriteError(f"{path}: tags unreadable ({type(e).__name__}: {e})") from None
    if f is None:
        raise TagWriteError(f"{path}: mutagen does not know this container; tags not written")
    if f.tags is None:
        try:
            f.add_tags()
        except Exception as e:  # noqa: BLE001
            raise TagWriteError(f"{path}: cannot add a tag block to this container ({e})") from None
    tags = f.tags
    frames: dict[str, str] = {}
    save_kwargs = {}
    if isinstance(tags, ID3):
        v24 = tags.version[:2] != (2, 3)  # new tags and v2.2 (which mutagen upgrades) are saved as v2.4
        for key, value in values.items():
            name = f"MERSDK_{key.upper()}"
            tags.setall(f"TXXX:{name}", [TXXX(encoding=3, desc=name, text=[value])])
            frames[f"TXXX:{name}"] = value
        if v24:
            tags.setall("TMOO", [TMOO(encoding=3, text=[label])])
            frames["TMOO"] = label
        save_kwargs["v2_version"] = 4 if v24 else 3
    elif isinstance(tags, MP4Tags):
        for key, value in values.items():
            name = f"----:com.mersdk:{key}"
            tags[name] = [MP4FreeForm(value.encode("utf-8"), dataformat=AtomDataType.UTF8)]
            frames[name] = value
    elif hasattr(tags, "set") or hasattr(tags, "__setitem__"):  # Vorbis comments
        names = {"mood": "MOOD", "valence": "MERSDK_VALENCE", "arousal": "MERSDK_AROUSAL", "model": "MERSDK_MODEL"}
        for key, value in values.items():
            tags[names[key]] = [value]
            frames[names[key]] = value
    else:
        raise TagWriteError(f"{path}: tag type {type(tags).__name__} is not supported for writing")
    if not dry_run:
        try:
            f.save(**save_kwargs)
        except Exception as e:  # noqa: BLE001 - PermissionError arrives wrapped in MutagenError
            reason = getattr(e, "strerror", None) or str(e)
            raise TagWriteError(f"{path}: tags not written ({reason})") from None
    return frames
