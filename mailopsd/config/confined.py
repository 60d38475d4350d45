"""Files a config refers to: read only from inside the config directory, and only so much.

A config names other files: leads, body templates, CA certificates, suppression lists.
Whoever may change the config (push access to its repository, no key) must not make the
daemon read anything else: a body template outside the tree, such as the age key, would
be mailed out. So a referenced path must resolve, symlinks included, to a regular file
inside the config directory, and is read up to a size limit: a device such as
``/dev/zero`` never ends, a FIFO blocks. (A CA file may also be a system bundle named by
an absolute path: OpenSSL only parses it as certificates, nothing of it is ever sent or
shown.)

The checks are made on the opened file, not only on its name: it is opened without
following a final symlink and without blocking, then ``fstat`` says what it is, and
where ``/proc`` can tell, the file opened is checked to be the one inside the tree.
Reading stops with an error past the limit even if the file grows after it was opened.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "BODY_MAX_BYTES",
    "CA_MAX_BYTES",
    "CONFIG_MAX_BYTES",
    "LEADS_MAX_BYTES",
    "SUPPRESS_MAX_BYTES",
    "RefusedFileError",
    "check_file",
    "confine",
    "open_binary",
    "read_bytes",
    "tree_root",
]

# 1 GiB: ten times a file of a million leads with a few columns each.
LEADS_MAX_BYTES = 1 << 30
# 1 MiB: a body template is a message, not an attachment.
BODY_MAX_BYTES = 1 << 20
# 4 MiB: a bundle of every public CA is a twentieth of it.
CA_MAX_BYTES = 4 << 20
# 64 MiB: a file of 10,000 SOPS-encrypted credentials is a tenth of it.
CONFIG_MAX_BYTES = 64 << 20
# 64 MiB: two million addresses, one a line; a list is read whole when it changes.
SUPPRESS_MAX_BYTES = 64 << 20

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class RefusedFileError(OSError):
    """A referenced file is outside the config directory, not a regular file, or too large.

    The text is whole: it names the file, what is wrong and what to do.
    """


def tree_root(config_path: Path) -> Path:
    """Return the config tree of a ``--config`` path: the directory, or the file's directory.

    Args:
        config_path: A config directory or a single config file.

    Returns:
        The tree's resolved path (symlinks followed).
    """
    directory = config_path if config_path.is_dir() else config_path.parent
    return directory.resolve()


def _size(limit_bytes: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if limit_bytes >= 1 << shift and limit_bytes % (1 << shift) == 0:
            return f"{limit_bytes >> shift} {unit}"
    return f"{limit_bytes} bytes"


def confine(path: Path, root: Path, *, what: str) -> Path:
    """Resolve ``path`` (symlinks included) and check that it lies inside ``root``.

    Args:
        path: The path as the config gives it, joined to its config file's directory.
        root: The resolved config tree.
        what: How to name the file in the message (``leads file``).

    Returns:
        The resolved path.

    Raises:
        RefusedFileError: The path leads outside ``root``.
    """
    resolved = path.resolve()
    if resolved.is_relative_to(root):
        return resolved
    via = "" if resolved == Path(os.path.abspath(path)) else f" (it leads to {resolved})"
    raise RefusedFileError(
        f"{what} {path} is outside the config directory {root}{via}; put the file in "
        "that directory or below it and give its path relative to the config file"
    )


def _check_opened(fd: int, path: Path, root: Path | None, *, what: str, limit_bytes: int) -> None:
    info = os.fstat(fd)
    for is_kind, kind in _KINDS:
        if is_kind(info.st_mode):
            raise RefusedFileError(f"{what} {path} is {kind}, not a regular file; give a file")
    if not stat.S_ISREG(info.st_mode):
        raise RefusedFileError(f"{what} {path} is not a regular file; give a file")
    if info.st_size > limit_bytes:
        raise _too_large(path, what=what, limit_bytes=limit_bytes)
    if root is not None and not _is_opened_inside(fd, root):
        raise RefusedFileError(
            f"{what} {path} was replaced while it was opened and now leads outside "
            f"the config directory {root}; check what changes it"
        )


def _is_opened_inside(fd: int, root: Path) -> bool:
    """Whether the file open as ``fd`` is inside ``root``, as ``/proc`` names it."""
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # no /proc: the resolved name was checked, that must do
        return True
    return opened.is_relative_to(root)


def _too_large(path: Path, *, what: str, limit_bytes: int) -> RefusedFileError:
    return RefusedFileError(
        f"{what} {path} is larger than the limit of {_size(limit_bytes)}; make it smaller"
    )


class _Bounded(io.RawIOBase):
    """A file read no further than a limit: past it, reading is an error."""

    def __init__(self, raw: io.FileIO, path: Path, *, what: str, limit_bytes: int) -> None:
        self._raw = raw
        self._path = path
        self._what = what
        self._left = limit_bytes
        self._limit_bytes = limit_bytes

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """The bytes read so far: the file is read from its start, never sought."""
        return self._limit_bytes - self._left

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer) or 0
        self._left -= count
        if self._left < 0:
            raise _too_large(self._path, what=self._what, limit_bytes=self._limit_bytes)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path, root: Path | None, *, what: str, limit_bytes: int) -> BinaryIO:
    """Open a referenced file for reading, once it is known to be safe to read.

    Args:
        path: The file, as the config gives it joined to its config file's directory.
        root: The resolved config tree it must be inside; ``None`` for a file that may
            be anywhere (named on the command line, or a system CA bundle), which need
            only be a regular file.
        what: How to name the file in messages (``leads file``).
        limit_bytes: Reading past this many bytes is an error.

    Returns:
        A buffered binary stream; the caller closes it.

    Raises:
        RefusedFileError: The file is outside ``root``, not a regular file (a FIFO, a
            device, a directory), replaced by a symlink while opened, or too large.
        OSError: The file cannot be opened (``FileNotFoundError`` when it does not exist).
    """
    # Resolved first, so that a symlink is followed only to where it was checked to lead.
    target = confine(path, root, what=what) if root is not None else path.resolve()
    try:
        fd = os.open(target, _FLAGS)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RefusedFileError(
                f"{what} {path} was replaced by a symlink while it was opened; check what "
                "changes it"
            ) from err
        raise
    try:
        _check_opened(fd, path, root, what=what, limit_bytes=limit_bytes)
        os.set_blocking(fd, True)
        raw = io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(_Bounded(raw, path, what=what, limit_bytes=limit_bytes))


def read_bytes(path: Path, root: Path | None, *, what: str, limit_bytes: int) -> bytes:
    """Read a whole referenced file, as :func:`open_binary` allows.

    Raises:
        RefusedFileError: As for :func:`open_binary`.
        OSError: The file cannot be read.
    """
    with open_binary(path, root, what=what, limit_bytes=limit_bytes) as stream:
        return stream.read()


def check_file(path: Path, root: Path | None, *, what: str, limit_bytes: int) -> None:
    """Check that a referenced file could be read (it is opened, not read).

    Raises:
        RefusedFileError: As for :func:`open_binary`.
        OSError: The file cannot be opened.
    """
    with open_binary(path, root, what=what, limit_bytes=limit_bytes):
        pass
