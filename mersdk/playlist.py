"""Mood playlists from a tagged library: ``mersdk playlist library.sqlite --mood calm --out calm.m3u8``.

Tracks are points in the valence/arousal plane (what ``mersdk tag`` stored, or what the beets plugin
stored). Three ways to choose them, all by Euclidean distance in that plane:
- ``mood``: the tracks labelled with that mood, the most typical first (nearest the mood's point);
- ``near``: the ``n`` tracks nearest a (valence, arousal) point, nearest first;
- ``path``: a smooth walk from one mood or point to another: ``n`` evenly spaced waypoints on the
  straight line between them, each taking the nearest track not yet used.
A mood's point is the mean of the library's tracks with that label; a Russell quadrant name the library
lacks (happy, angry, sad, calm) falls back to the middle of its quadrant.

The playlist is an extended M3U8 (UTF-8): ``#EXTINF:<seconds>,<artist> - <title>`` before each path,
titles from the file's tags (mutagen) when present, else the file name. Files are written atomically.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import MersdkError
from .files import atomic_path

log = logging.getLogger("mersdk.playlist")

# middle of each Russell quadrant: valence, arousal in [-1, 1]
QUADRANT_POINTS = {"happy": (0.5, 0.5), "angry": (-0.5, 0.5), "sad": (-0.5, -0.5), "calm": (0.5, -0.5)}


class PlaylistError(MersdkError, ValueError):
    """The library or the request cannot make a playlist (no such mood, unreadable library, ...)."""


@dataclass(frozen=True)
class Track:
    path: str
    label: str
    valence: float
    arousal: float
    duration_s: float | None = None


def read_library(path: str) -> list[Track]:
    """Tracks from a ``mersdk tag`` SQLite file: rows without an error, the newest row per path."""
    if not os.path.isfile(path):
        raise PlaylistError(f"{path}: no such library file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cur = db.execute(
                "SELECT path, label, valence, arousal, duration_s, processed_at FROM tracks "
                "WHERE error IS NULL AND valence IS NOT NULL AND arousal IS NOT NULL"
            )
            rows = cur.fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise PlaylistError(f"{path}: not a mersdk tag library ({e})") from None
    newest: dict[str, tuple] = {}
    for p, label, v, a, dur, at in rows:
        if p not in newest or (at or "") >= (newest[p][5] or ""):
            newest[p] = (p, label, v, a, dur, at)
    return [Track(p, label, float(v), float(a), dur) for p, label, v, a, dur, _ in newest.values()]


def parse_point(text: str) -> tuple[float, float]:
    """``"V,A"`` -> (valence, arousal), each in [-1, 1]."""
    try:
        v, a = (float(x) for x in text.split(","))
    except ValueError:
        raise PlaylistError(f"{text!r}: a point is VALENCE,AROUSAL, e.g. 0.5,-0.3") from None
    if not (-1 <= v <= 1 and -1 <= a <= 1):
        raise PlaylistError(f"{text!r}: valence and arousal are in [-1, 1]")
    return v, a


def mood_point(tracks: Sequence[Track], mood: str) -> tuple[float, float]:
    """The mean point of the tracks labelled ``mood``, else a quadrant's middle; a "V,A" text is a point."""
    if "," in mood:
        return parse_point(mood)
    mine = [t for t in tracks if t.label == mood]
    if mine:
        return sum(t.valence for t in mine) / len(mine), sum(t.arousal for t in mine) / len(mine)
    if mood in QUADRANT_POINTS:
        return QUADRANT_POINTS[mood]
    labels = sorted({t.label for t in tracks})
    raise PlaylistError(f"no track is labelled {mood!r}; the library has: {', '.join(labels) or 'no tracks'}")


def _distance(t: Track, point: tuple[float, float]) -> float:
    return math.hypot(t.valence - point[0], t.arousal - point[1])


def by_mood(tracks: Sequence[Track], mood: str, n: int | None = None) -> list[Track]:
    mine = [t for t in tracks if t.label == mood]
    if not mine:
        labels = sorted({t.label for t in tracks})
        raise PlaylistError(f"no track is labelled {mood!r}; the library has: {', '.join(labels) or 'no tracks'}")
    point = mood_point(tracks, mood)
    return sorted(mine, key=lambda t: (_distance(t, point), t.path))[:n]


def near(tracks: Sequence[Track], point: tuple[float, float], n: int | None = 50) -> list[Track]:
    return sorted(tracks, key=lambda t: (_distance(t, point), t.path))[:n]


def path_between(
    tracks: Sequence[Track], start: tuple[float, float], end: tuple[float, float], n: int = 50
) -> list[Track]:
    """``n`` tracks (fewer when the library is smaller) following the line from ``start`` to ``end``."""
    n = min(n, len(tracks))
    left = sorted(tracks, key=lambda t: t.path)
    out = []
    for i in range(n):
        f = i / (n - 1) if n > 1 else 0.0
        way = (start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]))
        best = min(left, key=lambda t: _distance(t, way))
        left.remove(best)
        out.append(best)
    return out


def _title_and_length(path: str) -> tuple[str | None, float | None]:
    """("artist - title" or "title" from the tags, length in seconds); Nones when unreadable."""
    try:
        import mutagen
    except ImportError:
        return None, None
    try:
        f = mutagen.File(path, easy=True)
    except Exception:
        return None, None
    if f is None:
        return None, None
    length = getattr(f.info, "length", None)
    tags = f.tags or {}
    title = (tags.get("title") or [None])[0] if hasattr(tags, "get") else None
    artist = (tags.get("artist") or [None])[0] if hasattr(tags, "get") else None
    if title and artist:
        return f"{artist} - {title}", length
    return title, length


def write_m3u8(tracks: Iterable[Track], out: str) -> int:
    """Extended M3U8 of ``tracks``, in order; returns how many entries were written."""
    entries = []
    for t in tracks:
        title, length = _title_and_length(t.path)
        seconds = t.duration_s if t.duration_s is not None else length
        title = (title or os.path.splitext(os.path.basename(t.path))[0]).replace("\n", " ")
        entries.append((-1 if seconds is None else int(round(seconds)), title, t))
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("#EXTM3U\n")
        for seconds, title, t in entries:
            f.write(f"#EXTINF:{seconds},{title}\n")
            f.write(f"{t.path}\n")
    return len(entries)


def plot_library(tracks: Sequence[Track], out: str, highlight: Sequence[Track] = (), title: str = "") -> None:
    """The library in the valence/arousal plane (the playlist's tracks joined in order), as PNG/SVG/PDF.
    Uses a matplotlib ``Figure`` directly: no pyplot, the host's backend is left alone."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "mersdk[plot]"') from None
    fig = Figure(figsize=(6.4, 6.0))
    ax = fig.subplots()
    labels = sorted({t.label for t in tracks})
    for i, label in enumerate(labels):
        mine = [t for t in tracks if t.label == label]
        ax.scatter(
            [t.valence for t in mine],
            [t.arousal for t in mine],
            s=10,
            alpha=0.6,
            color=f"C{i}",
            label=f"{label} ({len(mine)})",
        )
    if highlight:
        ax.plot(
            [t.valence for t in highlight],
            [t.arousal for t in highlight],
            "-o",
            color="black",
            ms=3,
            lw=0.8,
            label=f"playlist ({len(highlight)})",
        )
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(title or f"{len(tracks)} tracks", fontsize=9)
    fig.tight_layout()
    ext = os.path.splitext(out)[1] or ".png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=130, format=ext.lstrip(".").lower())


def make_playlist(
    tracks: Sequence[Track],
    *,
    mood: str | None = None,
    near_point: str | None = None,
    path_from: str | None = None,
    path_to: str | None = None,
    n: int = 50,
) -> list[Track]:
    """One of the three selections (exactly one of mood / near_point / path_from+path_to)."""
    if n < 1:
        raise PlaylistError("n must be >= 1")
    chosen = [x is not None for x in (mood, near_point, path_from)]
    if sum(chosen) != 1 or (path_from is None) != (path_to is None):
        raise PlaylistError("give exactly one of --mood, --near, or --path-from with --to")
    if not tracks:
        raise PlaylistError("the library has no tagged tracks")
    if mood is not None:
        return by_mood(tracks, mood, n)
    if near_point is not None:
        return near(tracks, parse_point(near_point), n)
    assert path_from is not None and path_to is not None  # the check above: --path-from comes with --to
    return path_between(tracks, mood_point(tracks, path_from), mood_point(tracks, path_to), n)


# ----------------------------------------------------------------------------------------------
def add_selection_arguments(p) -> None:
    """The selection options, shared by ``mersdk playlist`` and ``beet mersdk-playlist``."""
    g = p.add_argument_group("selection (one of)")
    g.add_argument("--mood", help="tracks labelled with this mood, most typical first (e.g. calm)")
    g.add_argument("--near", metavar="V,A", help="tracks nearest this valence,arousal point, e.g. 0.5,-0.4")
    g.add_argument("--path-from", metavar="MOOD|V,A", help="a smooth path from this mood or point ...")
    g.add_argument("--to", metavar="MOOD|V,A", help="... to this one")
    p.add_argument("--n", type=int, default=50, help="playlist length (default 50)")
    p.add_argument("--out", help="the .m3u8 to write (default: print the paths)")
    p.add_argument("--plot", metavar="PNG", help="also plot the library in the valence/arousal plane")


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def run_selection(tracks: Sequence[Track], args, emit=print, note=_note) -> list[Track]:
    """Choose, write or print (``emit``: one line per track), plot; ``note`` says what was written."""
    chosen = make_playlist(
        tracks, mood=args.mood, near_point=args.near, path_from=args.path_from, path_to=args.to, n=args.n
    )
    if args.out:
        write_m3u8(chosen, args.out)
        note(f"{len(chosen)} tracks -> {args.out}")
    else:
        for t in chosen:
            emit(f"{t.valence:+.2f} {t.arousal:+.2f}  {t.label:<10} {t.path}")
    if args.plot:
        plot_library(tracks, args.plot, highlight=chosen)
        note(f"plot -> {args.plot}")
    return chosen


def cmd_playlist(args) -> int:
    run_selection(read_library(args.library), args)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("playlist", help="mood playlist (M3U8) from a `mersdk tag` SQLite library")
    p.add_argument("library", help="the .sqlite file `mersdk tag --out` wrote")
    add_selection_arguments(p)
    p.set_defaults(func=cmd_playlist)
