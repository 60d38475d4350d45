"""Storage errors: what the ledger and the state file raise when storage fails them.

SQLite's and the system's errors are translated where the state package calls them, by
SQLite's result code and the system's ``errno`` (never by message text), into one
family that says what the failure means for the daemon: a full disk, a read-only one
and storage that cannot be reached now pass when the operator acts (the daemon pauses
its work meanwhile); a damaged ledger or one newer than this program does not. The
original error stays as ``__cause__``, and its text is the message, as people saw it
before the translation.
"""

from __future__ import annotations

import errno
import sqlite3

from mailopsd.errors import StateError

__all__ = [
    "StorageCorruptError",
    "StorageError",
    "StorageFullError",
    "StorageReadOnlyError",
    "StorageTooNewError",
    "StorageUnavailableError",
    "storage_error",
]


class StorageError(StateError):
    """The ledger or the state directory refused a read or a write.

    Raised as such for failures no subclass names (a constraint, a misuse): a bug more
    likely than a disk.
    """


class StorageFullError(StorageError):
    """The disk or the quota is full."""


class StorageReadOnlyError(StorageError):
    """Writes are refused: a read-only file system, or no permission."""


class StorageUnavailableError(StorageError):
    """The storage cannot be reached now.

    It cannot be opened, fails with I/O errors, or is locked by another process longer
    than the busy timeout.
    """


class StorageCorruptError(StorageError):
    """The ledger is damaged or is not a ledger at all."""


class StorageTooNewError(StorageError):
    """The ledger's schema is newer than this program's."""


_BY_RESULT_CODE: dict[int, type[StorageError]] = {
    sqlite3.SQLITE_FULL: StorageFullError,
    sqlite3.SQLITE_READONLY: StorageReadOnlyError,
    sqlite3.SQLITE_PERM: StorageReadOnlyError,
    sqlite3.SQLITE_IOERR: StorageUnavailableError,
    sqlite3.SQLITE_CANTOPEN: StorageUnavailableError,
    sqlite3.SQLITE_BUSY: StorageUnavailableError,
    sqlite3.SQLITE_LOCKED: StorageUnavailableError,
    sqlite3.SQLITE_CORRUPT: StorageCorruptError,
    sqlite3.SQLITE_NOTADB: StorageCorruptError,
}

_BY_ERRNO: dict[int, type[StorageError]] = {
    errno.ENOSPC: StorageFullError,
    errno.EDQUOT: StorageFullError,
    errno.EROFS: StorageReadOnlyError,
    errno.EACCES: StorageReadOnlyError,
    errno.EPERM: StorageReadOnlyError,
    errno.EIO: StorageUnavailableError,
}


def storage_error(err: sqlite3.Error | OSError, message: str | None = None) -> StorageError:
    """The storage error that says what ``err`` means; raise it ``from err``.

    Args:
        err: What SQLite or the system raised.
        message: What to say; by default the text of ``err``.

    Returns:
        A :class:`StorageError` of the subclass ``err``'s result code or ``errno`` names.
    """
    if isinstance(err, OSError):
        kind = _BY_ERRNO.get(err.errno or 0, StorageError)
    else:
        # Extended result codes keep the primary code in their low byte.
        code = getattr(err, "sqlite_errorcode", None)
        kind = StorageError if code is None else _BY_RESULT_CODE.get(code & 0xFF, StorageError)
    return kind(str(err) if message is None else message)
