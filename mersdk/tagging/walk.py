"""Find audio files under folders without listing any folder into memory at once.

``walk_audio`` is a generator over ``os.scandir`` with an explicit stack of open directory
iterators (no recursion limit, one ``DirEntry`` at a time per level), so a folder with millions of
entries costs constant memory. Symlinked folders are followed once: every folder is identified by
``(st_dev, st_ino)`` and a second visit (a symlink loop, or two links to one folder) is skipped and
reported. Files are picked by extension (see ``classify``): soundfile's formats, PyAV's with the decoders
extra (without it such files are yielded as ``needs-decoders`` so the run reports them), and
``.m4p`` as ``protected``. Temporary copies left by an interrupted tag write (``write_tags``) are
skipped and reported. Entries are yielded whatever their file type; ``prepare_track`` turns
anything but a regular file (a FIFO or device named ``*.wav``) into an error row without opening it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .write_tags import is_temp_file

# libsndfile format name -> the file extensions it is known by (only formats soundfile reports
# as available are used; RAW is headerless and never guessed from an extension)
_SOUNDFILE_EXTENSIONS = {
    "WAV": (".wav",),
    "WAVEX": (".wav",),
    "RF64": (".rf64",),
    "W64": (".w64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"),
    "AU": (".au", ".snd"),
    "CAF": (".caf",),
}
# decoded through PyAV, only with the ``mersdk[decoders]`` extra
PYAV_EXTENSIONS = (".m4a", ".aac", ".alac", ".wma", ".mp4", ".m4b")
# FairPlay-protected iTunes files: reported as an error row instead of being silently skipped
PROTECTED_EXTENSIONS = (".m4p",)


@dataclass(frozen=True)
class FoundFile:
    path: str
    kind: str  # "audio" | "needs-decoders" (PyAV missing) | "protected"


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def soundfile_extensions() -> frozenset[str]:
    """Extensions libsndfile decodes here (its available formats)."""
    import soundfile as sf

    return frozenset(e for fmt in sf.available_formats() for e in _SOUNDFILE_EXTENSIONS.get(fmt, ()))


def audio_extensions() -> frozenset[str]:
    """Every extension decoded here: soundfile's, plus PyAV's when the decoders extra is installed."""
    return soundfile_extensions() | (frozenset(PYAV_EXTENSIONS) if pyav_available() else frozenset())


def classify(path: str, soundfile_exts: frozenset[str], with_pyav: bool) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    if ext in soundfile_exts:
        return "audio"
    if ext in PYAV_EXTENSIONS:
        return "audio" if with_pyav else "needs-decoders"
    if ext in PROTECTED_EXTENSIONS:
        return "protected"
    return None


def walk_audio(
    roots: Iterable[str | os.PathLike],
    *,
    on_problem: Callable[[str, str], None] | None = None,
    extensions: frozenset[str] | None = None,
    with_pyav: bool | None = None,
) -> Iterator[FoundFile]:
    """Yield the audio files under ``roots`` (files or folders), streaming.

    ``on_problem(path, message)`` hears about folders that cannot be read and symlink loops; the
    walk goes on. A root given as a file is yielded when its extension is known."""
    with_pyav = pyav_available() if with_pyav is None else with_pyav
    exts = soundfile_extensions() if extensions is None else extensions
    report = on_problem or (lambda path, message: None)
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root)
        except OSError as e:
            report(root, f"cannot read ({e.strerror})")
            continue
        if not os.path.isdir(root):
            kind = classify(root, exts, with_pyav)
            if kind:
                yield FoundFile(root, kind)
            else:
                report(root, "not a known audio extension; skipped")
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        stack: list[tuple[str, os._ScandirIterator[str]]] = []  # typeshed's name for what scandir returns
        try:
            stack.append((root, os.scandir(root)))
        except OSError as e:
            report(root, f"cannot list folder ({e.strerror})")
            continue
        try:
            while stack:
                folder, it = stack[-1]
                try:
                    entry = next(it, None)
                except OSError as e:  # the folder went away or an NFS error mid-listing
                    report(folder, f"listing stopped ({e.strerror})")
                    entry = None
                if entry is None:
                    it.close()
                    stack.pop()
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:
                    is_dir = False  # a dangling symlink: treated as a file, then not audio
                if is_dir:
                    try:
                        dst = entry.stat(follow_symlinks=True)
                    except OSError as e:
                        report(entry.path, f"cannot read ({e.strerror})")
                        continue
                    key = (dst.st_dev, dst.st_ino)
                    if key in seen_dirs:
                        report(entry.path, "folder already visited (symlink loop or duplicate link); skipped")
                        continue
                    seen_dirs.add(key)
                    try:
                        stack.append((entry.path, os.scandir(entry.path)))
                    except OSError as e:
                        report(entry.path, f"cannot list folder ({e.strerror})")
                    continue
                kind = classify(entry.name, exts, with_pyav)
                if kind and is_temp_file(entry.name):
                    report(entry.path, "a copy left by an interrupted tag write; skipped (safe to delete)")
                elif kind:
                    yield FoundFile(entry.path, kind)
        finally:
            for _, it in stack:  # a caller that stops early must not leak directory handles
                it.close()
