"""Find a track's lyrics: sidecar ``.lrc``/``.txt`` files and lyrics embedded in its tags.

Order of preference (the first source that gives usable lyrics wins; ``lyrics_source`` says which):
``sidecar:lrc`` (timed) > ``embedded:SYLT`` (ID3 synchronised lyrics, timed) > ``sidecar:txt`` >
other embedded lyrics (``embedded:USLT`` for ID3, ``embedded:LYRICS`` / ``embedded:UNSYNCEDLYRICS``
for Vorbis comments in FLAC/Ogg, ``embedded:\xa9lyr`` for MP4). A source that is present but unusable
(over ``MAX_LYRICS_CHARS``, unreadable) adds a warning and the next source is tried; with none the
track is predicted from audio alone. Tags are read with ``mutagen`` (the ``mersdk[tag]`` extra);
without it only sidecars are used (``tag_library`` says so once).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import LyricsError
from ..lyrics import MAX_LYRICS_CHARS, LyricLine, Lyrics, load_lyrics, time_key

_VORBIS_KEYS = ("LYRICS", "UNSYNCEDLYRICS")
_MP4_KEY = "\xa9lyr"
_SYLT_MILLISECONDS = 2  # ID3 SYLT timestamp format 2: absolute time in ms (1 is MPEG frames)


@dataclass
class FoundLyrics:
    lyrics: Lyrics | None = None
    source: str | None = None
    warnings: list[str] = field(default_factory=list)


def _sylt_to_lyrics(frame) -> Lyrics | None:
    timed: list[LyricLine] = []
    untimed: list[LyricLine] = []
    total = 0
    for text, t in frame.text:
        text = (text or "").replace("\x00", "").strip()
        if not text:
            continue
        total += len(text) + 1
        if total > MAX_LYRICS_CHARS:
            raise LyricsError(f"SYLT lyrics are over the limit of {MAX_LYRICS_CHARS} characters")
        if frame.format == _SYLT_MILLISECONDS:
            timed.append(LyricLine(t / 1000.0, text))
        else:  # MPEG-frame timestamps need the frame rate: keep the words, drop the times
            untimed.append(LyricLine(None, text))
    timed.sort(key=time_key)
    lines = tuple(timed) + tuple(untimed)
    if not lines:
        return None
    return Lyrics(text="\n".join(line.text for line in lines), lines=lines)


def embedded_lyrics(
    path: str, warnings: list[str]
) -> tuple[list[tuple[str, Lyrics | None]], list[tuple[str, Lyrics | None]]]:
    """(timed sources, untimed sources) found in the file's tags, each a list of (source, Lyrics)."""
    try:
        import mutagen
    except ImportError:  # said once per run by the runner, not on every row
        return [], []
    try:
        f = mutagen.File(path)
    except Exception as e:
        warnings.append(f"tags unreadable, embedded lyrics ignored ({type(e).__name__}: {e})")
        return [], []
    tags = getattr(f, "tags", None) if f is not None else None
    if not tags:
        return [], []
    timed: list[tuple[str, Lyrics | None]] = []
    untimed: list[tuple[str, Lyrics | None]] = []

    def add(bucket, source, make):
        try:
            bucket.append((source, make()))
        except LyricsError as e:
            warnings.append(f"{source} lyrics not used: {e}")

    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    if isinstance(tags, ID3):
        for frame in tags.getall("SYLT"):
            add(timed, "embedded:SYLT", lambda frame=frame: _sylt_to_lyrics(frame))
        for frame in tags.getall("USLT"):
            add(untimed, "embedded:USLT", lambda frame=frame: load_lyrics(str(frame.text)))
    elif isinstance(tags, MP4Tags):
        for value in tags.get(_MP4_KEY, []):
            add(untimed, f"embedded:{_MP4_KEY}", lambda value=value: load_lyrics(str(value)))
    else:  # Vorbis comments (FLAC, Ogg Vorbis/Opus) and other key -> [values] tags
        for key in _VORBIS_KEYS:
            try:
                values = tags.get(key) or []
            except (KeyError, ValueError, TypeError):
                values = []
            for value in values:
                add(untimed, f"embedded:{key}", lambda value=value: load_lyrics(str(value)))
    return timed, untimed


def find_lyrics(audio_path: str, *, read_tags: bool = True) -> FoundLyrics:
    """The best lyrics for ``audio_path`` (see the module docstring for the order)."""
    found = FoundLyrics()
    stem = os.path.splitext(audio_path)[0]

    def sidecar(ext: str) -> list[tuple[str, Lyrics | None]]:
        for candidate in (stem + ext, stem + ext.upper()):
            if os.path.isfile(candidate):
                try:
                    return [(f"sidecar:{ext[1:]}", load_lyrics(os.path.abspath(candidate)))]
                except LyricsError as e:
                    found.warnings.append(f"sidecar:{ext[1:]} lyrics not used: {e}")
                    return []
        return []

    timed_tags, untimed_tags = embedded_lyrics(audio_path, found.warnings) if read_tags else ([], [])
    for source, lyrics in sidecar(".lrc") + timed_tags + sidecar(".txt") + untimed_tags:
        if lyrics is not None:
            found.lyrics, found.source = lyrics, source
            break
    if found.lyrics is None and any("lyrics not used" in w for w in found.warnings):
        found.warnings.append("no usable lyrics: predicted from audio alone")
    return found
