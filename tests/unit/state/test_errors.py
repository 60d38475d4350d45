"""SQLite's and the system's errors become storage errors by code, keeping their text."""

from __future__ import annotations

import errno
import re
import sqlite3
from pathlib import Path

import pytest

from mailopsd.daemon.storage import unwritable
from mailopsd.errors import StateError
from mailopsd.lifecycle import COUNTED_OUTCOMES
from mailopsd.state.errors import (
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
    StorageTooNewError,
    StorageUnavailableError,
    storage_error,
)
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import _MIGRATIONS


def _sqlite_error(code: int, text: str) -> sqlite3.Error:
    err = sqlite3.OperationalError(text)
    err.sqlite_errorcode = code
    return err


class TestStorageError:
    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            (sqlite3.SQLITE_FULL, StorageFullError),
            (sqlite3.SQLITE_READONLY, StorageReadOnlyError),
            (sqlite3.SQLITE_READONLY_DBMOVED, StorageReadOnlyError),
            (sqlite3.SQLITE_PERM, StorageReadOnlyError),
            (sqlite3.SQLITE_IOERR_WRITE, StorageUnavailableError),
            (sqlite3.SQLITE_CANTOPEN, StorageUnavailableError),
            (sqlite3.SQLITE_BUSY, StorageUnavailableError),
            (sqlite3.SQLITE_LOCKED, StorageUnavailableError),
            (sqlite3.SQLITE_CORRUPT, StorageCorruptError),
            (sqlite3.SQLITE_NOTADB, StorageCorruptError),
            (sqlite3.SQLITE_CONSTRAINT_UNIQUE, StorageError),
        ],
    )
    def test_sqlite_result_code_names_the_kind(self, code: int, kind: type[StorageError]) -> None:
        """The (extended) result code picks the subclass; the text stays the message."""
        err = storage_error(_sqlite_error(code, "database or disk is full"))
        assert type(err) is kind
        assert str(err) == "database or disk is full"

    @pytest.mark.parametrize(
        ("number", "kind"),
        [
            (errno.ENOSPC, StorageFullError),
            (errno.EDQUOT, StorageFullError),
            (errno.EROFS, StorageReadOnlyError),
            (errno.EACCES, StorageReadOnlyError),
            (errno.EIO, StorageUnavailableError),
            (errno.ENOENT, StorageError),
        ],
    )
    def test_errno_names_the_kind(self, number: int, kind: type[StorageError]) -> None:
        """An OSError's errno picks the subclass; a message given replaces its text."""
        err = storage_error(OSError(number, "no"), "cannot write state file x: no")
        assert type(err) is kind
        assert str(err) == "cannot write state file x: no"

    def test_an_error_without_code_is_a_plain_storage_error(self) -> None:
        """An error the driver raised without a result code is a StorageError, a StateError."""
        err = storage_error(sqlite3.ProgrammingError("Cannot operate on a closed database."))
        assert type(err) is StorageError
        assert isinstance(err, StateError)

    def test_unwritable_goes_by_type(self) -> None:
        """Full, read-only and unavailable storage pause the work; corrupt or too new do not."""
        assert unwritable(StorageFullError("x"))
        assert unwritable(StorageReadOnlyError("x"))
        assert unwritable(StorageUnavailableError("x"))
        assert not unwritable(StorageCorruptError("database disk image is malformed"))
        assert not unwritable(StorageTooNewError("x"))
        assert not unwritable(StorageError("attempt to write a readonly database"))
        assert not unwritable(OSError(errno.ENOSPC, "No space left on device"))

    def test_a_closed_ledger_raises_a_storage_error_from_the_driver(self, tmp_path: Path) -> None:
        """A repository on a closed connection raises a StorageError caused by the driver's."""
        ledger = Ledger.open(tmp_path)
        ledger.close()
        with pytest.raises(StorageError) as caught:
            ledger.campaigns.active()
        assert isinstance(caught.value.__cause__, sqlite3.ProgrammingError)

    def test_a_file_that_is_no_ledger_is_corrupt(self, tmp_path: Path) -> None:
        """A file that is not a database is StorageCorruptError, which does not pause the work."""
        (tmp_path / "ledger.sqlite3").write_bytes(b"not a database at all" * 100)
        with pytest.raises(StorageCorruptError, match="cannot be used: file is not a database"):
            Ledger.open(tmp_path)


def test_the_triggers_count_the_counted_outcomes() -> None:
    """Migration 4's triggers spell out the same outcomes as COUNTED_OUTCOMES, in order."""
    text = " ".join(_MIGRATIONS[4].split())
    for row in ("new", "old"):
        spelled = " OR ".join(f"{row}.outcome = '{outcome.value}'" for outcome in COUNTED_OUTCOMES)
        assert f"({spelled})" in text
    assert set(re.findall(r"outcome = '(\w+)'", text)) == set(COUNTED_OUTCOMES)
