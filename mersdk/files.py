"""Opening a user's input file safely: only regular files are read, whatever a path or symlink names.

A FIFO blocks its reader until a writer comes, a device such as ``/dev/zero`` never ends, and a
directory or a symlink loop gives a confusing OS error. ``check_regular_file`` refuses each with a
message naming the path (and the symlink's target) and what it is, before anything reads from it;
``open_regular_file`` also opens it without blocking (``O_NONBLOCK``) and checks the descriptor it
got, so a path swapped for a FIFO between the check and the open cannot block either.
"""

from __future__ import annotations

import errno
import os
import stat
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


def _stat_error(path: str, e: OSError, error: type[MersdkError], not_found: type[MersdkError]) -> MersdkError:
    if e.errno == errno.ELOOP:
        return error(f"{path}: is a symbolic link loop (the links never reach a file)")
    if e.errno == errno.ENOENT and os.path.islink(path):
        return not_found(f"{path}: is a broken symbolic link (its target {os.readlink(path)} does not exist)")
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return not_found(f"{path}: no such file")
    return error(f"{path}: cannot access ({e.strerror})")


def check_regular_file(path, *, error: type[MersdkError] = MersdkError,
                       not_found: type[MersdkError] | None = None) -> os.stat_result:
    """``os.stat`` (symlinks resolved) of ``path`` when it is a regular file; else raise ``error``
    (``not_found`` for a missing file or a broken symlink) naming the path and what it is."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _stat_error(path, e, error, not_found or error) from None
    except ValueError as e:  # an embedded NUL byte
        raise error(f"{path!r}: not a usable file name ({e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{_shown(path)}: is {kind_of(st.st_mode)}, not a regular file")
    return st


def open_regular_file(path, *, error: type[MersdkError] = MersdkError,
                      not_found: type[MersdkError] | None = None) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file for binary reading; (file, its fstat). Never blocks on a FIFO."""
    path = os.fspath(path)
    check_regular_file(path, error=error, not_found=not_found)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _stat_error(path, e, error, not_found or error) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the check and the open
            raise error(f"{_shown(path)}: is {kind_of(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise
