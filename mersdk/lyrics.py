"""Lyrics input: plain text or LRC, from a string, a .txt/.lrc path, or bytes.

``load_lyrics`` returns ``Lyrics``: the text the language model reads (timestamps and LRC tags
removed, one lyric line per line) and, for LRC, the timed lines, which timelines use to align lines
with the audio. None, empty or whitespace-only lyrics give ``None``: the model then runs on audio
alone (its fusion gate is zero). Bytes that are not UTF-8 are decoded as UTF-16 when they carry a
BOM, else as Windows-1252 (which maps every byte), so a lyric file never fails on its encoding.
LRC lines with malformed timestamps are kept as untimed text; timed lines are sorted by time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import LyricsError

# Longer lyrics are refused rather than read into memory without bound (50,000 characters, a long
# song several times over, is well inside the limit).
MAX_LYRICS_CHARS = 200_000
_LYRICS_SUFFIXES = (".txt", ".lrc")
_TIMESTAMP = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_LRC_TAG = re.compile(r"^\[(ar|ti|al|au|by|length|offset|re|ve|#):.*\]\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LyricLine:
    time_s: float | None  # None for untimed lines
    text: str


@dataclass(frozen=True)
class Lyrics:
    text: str
    lines: tuple[LyricLine, ...]

    @property
    def timed(self) -> bool:
        return any(line.time_s is not None for line in self.lines)


def decode_bytes(b: bytes) -> str:
    if b.startswith((b"\xff\xfe", b"\xfe\xff")):
        return b.decode("utf-16")
    try:
        return b.decode("utf-8-sig")
    except UnicodeDecodeError:
        return b.decode("cp1252", errors="replace")


def parse_lrc(text: str) -> tuple[LyricLine, ...]:
    timed: list[LyricLine] = []
    untimed: list[LyricLine] = []
    for raw in text.splitlines():
        if _LRC_TAG.match(raw.strip()):
            continue
        stamps = _TIMESTAMP.findall(raw)
        body = _TIMESTAMP.sub("", raw).strip()
        if not body:
            continue
        if not stamps:
            untimed.append(LyricLine(None, body))
            continue
        for mm, ss in stamps:  # one line may carry several timestamps (a repeated chorus)
            timed.append(LyricLine(int(mm) * 60 + float(ss.replace(":", ".")), body))
    timed.sort(key=lambda line: line.time_s)
    return tuple(timed) + tuple(untimed)


def _from_text(text: str) -> Lyrics | None:
    if len(text) > MAX_LYRICS_CHARS:
        raise LyricsError(f"lyrics have {len(text)} characters; the limit is {MAX_LYRICS_CHARS}")
    text = text.replace("\x00", "")
    if _TIMESTAMP.search(text):
        lines = parse_lrc(text)
    else:
        lines = tuple(LyricLine(None, s.strip()) for s in text.splitlines() if s.strip())
    if not lines:
        return None
    return Lyrics(text="\n".join(line.text for line in lines), lines=lines)


def _looks_like_path(s: str) -> bool:
    return len(s) < 4096 and "\n" not in s and s.lower().endswith(_LYRICS_SUFFIXES)


def load_lyrics(lyrics) -> Lyrics | None:
    """str (text, or a path ending in .txt/.lrc), os.PathLike, bytes, a Lyrics, or None."""
    if lyrics is None or isinstance(lyrics, Lyrics):
        return lyrics
    if isinstance(lyrics, (bytes, bytearray)):
        return _from_text(decode_bytes(bytes(lyrics)))
    if isinstance(lyrics, os.PathLike) or (isinstance(lyrics, str) and _looks_like_path(lyrics)):
        path = os.fspath(lyrics)
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise LyricsError(f"{path}: cannot read lyrics file ({e.strerror})") from None
        if size > 4 * MAX_LYRICS_CHARS:
            raise LyricsError(f"{path}: {size} bytes is over the lyrics limit ({MAX_LYRICS_CHARS} characters)")
        try:
            with open(path, "rb") as f:
                return _from_text(decode_bytes(f.read()))
        except OSError as e:
            raise LyricsError(f"{path}: cannot read lyrics file ({e.strerror})") from None
    if isinstance(lyrics, str):
        return _from_text(lyrics)
    raise LyricsError(f"lyrics must be a string, a .txt/.lrc path, bytes or None, not {type(lyrics).__name__}")
