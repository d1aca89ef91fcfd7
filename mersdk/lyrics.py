"""Lyrics input: plain text or LRC, from a string, a file (``pathlib.Path``), or bytes.

Text or path, the rule (``load_lyrics``): an ``os.PathLike`` is always a file and a ``str`` is
text, with one exception kept from earlier releases: a single-line str ending in ``.txt``/``.lrc``
that names an existing file is read as that file. A str ending in ``.txt``/``.lrc`` with no
whitespace that names no file is refused as a mistyped path; ``parse_lyrics_text`` and
``read_lyrics_file`` say which one explicitly. Files: only regular files are read (FIFOs, devices,
directories and symlink loops are refused by name) and at most ``MAX_LYRICS_BYTES``.

``load_lyrics`` returns ``Lyrics``: the text the language model reads (timestamps and LRC tags
removed, one lyric line per line) and, for LRC, the timed lines, which timelines use to align lines
with the audio. None, empty or whitespace-only lyrics give ``None``: the model then runs on audio
alone (its fusion gate is zero). Bytes that are not UTF-8 are decoded as UTF-16 when they carry a
BOM, else as Windows-1252 (which maps every byte), so a lyric file never fails on its encoding.
LRC lines with malformed timestamps are kept as untimed text; timed lines are sorted by time.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from .errors import LyricsError
from .files import open_regular_file

log = logging.getLogger("mersdk.lyrics")

# Longer lyrics are refused rather than read into memory without bound (50,000 characters, a long
# song several times over, is well inside the limit).
MAX_LYRICS_CHARS = 200_000
# A lyrics file is read only up to this many bytes: 4 per character covers UTF-8 and UTF-16.
MAX_LYRICS_BYTES = 4 * MAX_LYRICS_CHARS
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
        # a UTF-16 BOM then bytes that are not UTF-16 (odd length, lone surrogates): keep what reads
        return b.decode("utf-16", errors="replace")
    try:
        return b.decode("utf-8-sig")
    except UnicodeDecodeError:
        return b.decode("cp1252", errors="replace")


def time_key(line: LyricLine) -> float:
    """Sort key of a timed line (untimed lines are kept apart, never sorted by time)."""
    assert line.time_s is not None, "only timed lines are sorted by time"
    return line.time_s


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
    timed.sort(key=time_key)
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


def parse_lyrics_text(text: str) -> Lyrics | None:
    """Lyric text (plain or LRC) -> ``Lyrics``, never read as a file name; None when empty."""
    if not isinstance(text, str):
        raise LyricsError(f"lyrics text must be a str, not {type(text).__name__}")
    return _from_text(text)


def read_lyrics_file(path) -> Lyrics | None:
    """Read a lyrics file (plain or LRC, any encoding ``decode_bytes`` handles). Only a regular
    file is read (a FIFO, device, directory or symlink loop raises ``LyricsError`` naming it), and
    at most ``MAX_LYRICS_BYTES``: a larger file is refused, not read."""
    path = os.fspath(path)
    try:
        f, st = open_regular_file(path, error=LyricsError)
    except LyricsError as e:
        raise LyricsError(f"cannot read lyrics file {e}") from None
    with f:
        if st.st_size > MAX_LYRICS_BYTES:
            raise LyricsError(f"{path}: {st.st_size} bytes is over the lyrics file limit ({MAX_LYRICS_BYTES} bytes)")
        try:
            data = f.read(MAX_LYRICS_BYTES + 1)  # bounded even if the file grows meanwhile
        except OSError as e:
            raise LyricsError(f"{path}: cannot read lyrics file ({e.strerror})") from None
    if len(data) > MAX_LYRICS_BYTES:
        raise LyricsError(f"{path}: over the lyrics file limit ({MAX_LYRICS_BYTES} bytes)")
    try:
        return _from_text(decode_bytes(data))
    except LyricsError as e:
        raise LyricsError(f"{path}: {e}") from None


def _names_a_file(s: str) -> bool:
    """The documented rule for a str: one line ending in .txt/.lrc that names an existing entry
    (a symlink too, even a broken one or a loop, so that it gets the file's error, not text)."""
    return (
        len(s) < 4096
        and "\n" not in s
        and "\x00" not in s
        and s.lower().endswith(_LYRICS_SUFFIXES)
        and os.path.lexists(s)
    )


def _probably_a_missing_path(s: str) -> bool:
    """One "word" ending in .txt/.lrc (no whitespace): surely meant as a file name, not as lyrics."""
    return (
        len(s) < 4096 and "\x00" not in s and s.lower().endswith(_LYRICS_SUFFIXES) and not any(c.isspace() for c in s)
    )


def load_lyrics(lyrics) -> Lyrics | None:
    """Lyrics from any accepted form (see the module docs for the rule that tells text from a path):

    - ``None`` / a ``Lyrics``: returned as is; ``bytes``: decoded text;
    - ``os.PathLike`` (``pathlib.Path``): always a file; a missing one raises ``LyricsError``;
    - ``str``: text, except a single line ending in ``.txt``/``.lrc`` (any case) that names an
      existing file, which is read as that file (kept from earlier releases; prefer ``Path``).
      A str ending in ``.txt``/``.lrc`` without any whitespace that names no file raises
      ``LyricsError`` (a mistyped path, not lyrics); with whitespace it is text.
    """
    if lyrics is None or isinstance(lyrics, Lyrics):
        return lyrics
    if isinstance(lyrics, (bytes, bytearray)):
        return _from_text(decode_bytes(bytes(lyrics)))
    if isinstance(lyrics, os.PathLike):
        return read_lyrics_file(lyrics)
    if isinstance(lyrics, str):
        if _names_a_file(lyrics):
            return read_lyrics_file(lyrics)
        if _probably_a_missing_path(lyrics):
            raise LyricsError(
                f"cannot read lyrics file {lyrics}: no such file (to use this string as lyric text, pass "
                f"it to mersdk.lyrics.parse_lyrics_text or as bytes)"
            )
        if "\n" not in lyrics and len(lyrics) < 4096 and os.path.isfile(lyrics):
            log.warning(
                "lyrics %r name an existing file but do not end in .txt/.lrc: used as text; "
                "pass pathlib.Path(...) to read the file",
                lyrics,
            )
        return _from_text(lyrics)
    raise LyricsError(f"lyrics must be a string, a path (os.PathLike), bytes or None, not {type(lyrics).__name__}")
