"""Storage errors: what the ledger and the state file raise when storage fails them.

SQLite's, PostgreSQL's and the system's errors are translated where the state package
calls them, by SQLite's result code, PostgreSQL's SQLSTATE and the system's ``errno``
(never by message text), into one family that says what the failure means for the
daemon: a full disk, a read-only one and storage that cannot be reached now pass when
the operator acts (the daemon pauses its work meanwhile); a damaged ledger or one
newer than this program does not. The original error stays as ``__cause__``, and its
text is the message, as people saw it before the translation.
"""

from __future__ import annotations

import errno
import sqlite3

from mailopsd.errors import StateError
from mailopsd.state.engine import EngineError

__all__ = [
    "StorageCorruptError",
    "StorageError",
    "StorageFullError",
    "StorageInUseError",
    "StorageLeasesLostError",
    "StorageMissingError",
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


class StorageInUseError(StorageUnavailableError):
    """This daemon may not work on the shared ledger now: it waits (see ``BehindError``)."""


class StorageLeasesLostError(StorageError):
    """The session that held this daemon's leases was lost: what they fenced is not written.

    The campaigns went with it (another daemon may hold them now); the daemon takes
    again those still free at its next lease round.
    """


class StorageCorruptError(StorageError):
    """The ledger is damaged or is not a ledger at all."""


class StorageTooNewError(StorageError):
    """The ledger's schema is newer than this program's."""


class StorageMissingError(StorageError):
    """The ledger has no tables yet (no daemon has run on it)."""


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

# PostgreSQL's SQLSTATE codes, whole, then by class (their first two characters).
_BY_SQLSTATE: dict[str, type[StorageError]] = {
    "53100": StorageFullError,  # disk_full
    "25006": StorageReadOnlyError,  # read_only_sql_transaction: a standby
    "42501": StorageReadOnlyError,  # insufficient_privilege
    "XX001": StorageCorruptError,  # data_corrupted
    "XX002": StorageCorruptError,  # index_corrupted
    "40001": StorageUnavailableError,  # serialization_failure
    "40P01": StorageUnavailableError,  # deadlock_detected
    "55P03": StorageUnavailableError,  # lock_not_available
}
_BY_SQLSTATE_CLASS: dict[str, type[StorageError]] = {
    "08": StorageUnavailableError,  # connection exception
    "53": StorageUnavailableError,  # insufficient resources
    "57": StorageUnavailableError,  # operator intervention: shut down, cannot connect now
    "58": StorageUnavailableError,  # system error (the server's I/O)
}

_BY_ERRNO: dict[int, type[StorageError]] = {
    errno.ENOSPC: StorageFullError,
    errno.EDQUOT: StorageFullError,
    errno.EROFS: StorageReadOnlyError,
    errno.EACCES: StorageReadOnlyError,
    errno.EPERM: StorageReadOnlyError,
    errno.EIO: StorageUnavailableError,
}


def storage_error(
    err: sqlite3.Error | EngineError | OSError, message: str | None = None
) -> StorageError:
    """The storage error that says what ``err`` means; raise it ``from err``.

    Args:
        err: What SQLite, PostgreSQL or the system raised.
        message: What to say; by default the text of ``err``.

    Returns:
        A :class:`StorageError` of the subclass ``err``'s result code or ``errno`` names.
    """
    if isinstance(err, OSError):
        kind = _BY_ERRNO.get(err.errno or 0, StorageError)
    elif isinstance(err, EngineError):
        # No SQLSTATE: the driver's own failure, which is a lost connection.
        state = err.sqlstate or "08000"
        kind = _BY_SQLSTATE.get(state) or _BY_SQLSTATE_CLASS.get(state[:2], StorageError)
    else:
        # Extended result codes keep the primary code in their low byte.
        code = getattr(err, "sqlite_errorcode", None)
        kind = StorageError if code is None else _BY_RESULT_CODE.get(code & 0xFF, StorageError)
    return kind(str(err) if message is None else message)
