"""Files in and out: regular-file checks and bounded reads, hashing, atomic writes (the lowest layer).

Reading: only regular files are read, whatever a path or symlink names.

A FIFO blocks its reader until a writer comes, a device such as ``/dev/zero`` never ends, and a
directory or a symlink loop gives a confusing OS error. ``check_regular_file`` refuses each with a
message naming the path (and the symlink's target) and what it is, before anything reads from it;
``open_regular_file`` also opens it without blocking (``O_NONBLOCK``) and checks the descriptor it
got, so a path swapped for a FIFO between the check and the open cannot block either.

Writing: whatever replaces a user's file is written to a temporary file in the same folder
(``temp_sibling``), fsynced and ``os.replace``d over it (``atomic_path``), so a reader or a killed
writer sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import MersdkError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a ``st_mode`` is, in words ("a regular file", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _shown(path: str) -> str:
    if os.path.islink(path):
        return f"{path} (a symlink to {os.path.realpath(path)})"
    return path


def _stat_error(path: str, e: OSError, error: type[Exception], not_found: type[Exception], the: str) -> Exception:
    if e.errno == errno.ELOOP:
        return error(f"{path}: {the}is a symbolic link loop (the links never reach a file)")
    if e.errno == errno.ENOENT and os.path.islink(path):
        return not_found(f"{path}: {the}is a broken symbolic link (its target {os.readlink(path)} does not exist)")
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return not_found(f"{path}: no such file")
    return error(f"{path}: cannot access {the}({e.strerror})")


def check_regular_file(
    path, *, error: type[Exception] = MersdkError, not_found: type[Exception] | None = None, what: str | None = None
) -> os.stat_result:
    """``os.stat`` (symlinks resolved) of ``path`` when it is a regular file; else raise ``error``
    (``not_found`` for a missing file or a broken symlink) naming the path, what it is and (when
    given) ``what`` the caller wanted from it ("the weights file is a FIFO ...")."""
    path = os.fspath(path)
    the = f"the {what} " if what else ""
    try:
        st = os.stat(path)
    except OSError as e:
        raise _stat_error(path, e, error, not_found or error, the) from None
    except ValueError as e:  # an embedded NUL byte
        raise error(f"{path!r}: not a usable file name ({e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{_shown(path)}: {the}is {kind_of(st.st_mode)}, not a regular file")
    return st


def open_regular_file(
    path, *, error: type[Exception] = MersdkError, not_found: type[Exception] | None = None, what: str | None = None
) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file for binary reading; (file, its fstat). Never blocks on a FIFO."""
    path = os.fspath(path)
    the = f"the {what} " if what else ""
    check_regular_file(path, error=error, not_found=not_found, what=what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _stat_error(path, e, error, not_found or error, the) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the check and the open
            raise error(f"{_shown(path)}: {the}is {kind_of(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path, limit: int, what: str, *, error: type[Exception] = MersdkError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (the ``what`` named in any ``error``)."""
    f, st = open_regular_file(path, error=error, what=what)
    with f:
        if st.st_size > limit:
            raise error(f"{path}: the {what} is {st.st_size:,} bytes; at most {limit:,} are read")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise error(f"{path}: the {what} is over {limit:,} bytes")
    return data


# Hashing ----------------------------------------------------------------------------------------------
def sha256_file(path, max_bytes: int | None = None) -> str:
    """SHA-256 of a regular file's first ``max_bytes`` (default: its size when opened). Opened
    non-blocking and checked on the descriptor, so a path that became a FIFO since it was checked
    cannot block; anything but a regular file raises ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, f"{kind_of(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        left = st.st_size if max_bytes is None else max_bytes
        h = hashlib.sha256()
        while left > 0:
            chunk = f.read(min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


_HASH_MEMO: dict[tuple, str] = {}
_HASH_MEMO_LOCK = threading.Lock()


def sha256_file_memo(path) -> str:
    """``sha256_file``, remembered per (file, size, mtime, ctime) for this process: backends check an
    export's hashes when probing and again when loading, and a 90 MB file costs ~0.1 s each time."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _HASH_MEMO_LOCK:
        if key in _HASH_MEMO:
            return _HASH_MEMO[key]
    digest = sha256_file(path)
    with _HASH_MEMO_LOCK:
        if len(_HASH_MEMO) > 256:
            _HASH_MEMO.clear()
        _HASH_MEMO[key] = digest
    return digest


# Atomic writes ----------------------------------------------------------------------------------------
TEMP_SUFFIX = ".tmp"


def temp_sibling(path, suffix: str = TEMP_SUFFIX) -> Path:
    """A new, empty, uniquely named file beside ``path`` (``.<name>.<pid>-<random><suffix>``), created
    with the usual permissions (0666 less the umask), for writing a file that then replaces ``path``."""
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
            return tmp
        except FileExistsError:
            continue
    raise OSError(f"cannot create a temporary file beside {path}")


def fsync_file(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder) -> None:
    """Make a rename in ``folder`` durable; a file system that cannot fsync a folder is left be (the
    file itself was synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder, name: str | None = None, suffix: str = TEMP_SUFFIX) -> None:
    """Remove ``temp_sibling`` files (of the file ``name`` only, when given) left in ``folder`` by
    processes that no longer run (a killed write); a running process's temporary file is kept."""
    pattern = f".{glob.escape(name) if name else '*'}.*{glob.escape(suffix)}"
    for p in Path(folder).glob(pattern):
        m = re.fullmatch(r"\..+\.(\d+)-[0-9a-f]{8}" + re.escape(suffix), p.name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running: its file
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, ValueError):
            continue
        with contextlib.suppress(OSError):
            p.unlink()


@contextlib.contextmanager
def atomic_path(path, suffix: str = TEMP_SUFFIX) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``temp_sibling``); when the block ends normally the file
    written there is fsynced and ``os.replace``s ``path`` (readers see the old file or the new one,
    never a part), and the folder is fsynced; when it raises, the temporary file is removed and
    ``path`` is untouched."""
    tmp = temp_sibling(path, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(tmp.parent)


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
