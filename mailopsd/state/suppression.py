"""Suppressed addresses: never sent to again by any campaign of their account.

An address is kept under its key (see ``addresses.key_of``), the form leads are keyed
by, so every spelling of it is suppressed; the first reason is kept.
"""

from __future__ import annotations

from datetime import datetime

from mailopsd.config import addresses
from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import stamp

__all__ = ["Suppressions"]


class Suppressions(Repository):
    """The addresses suppressed per account, and why."""

    def add(self, account: str, email: str, reason: str, at: datetime) -> bool:
        """Suppress an address for every campaign of an account (inside a transaction).

        Returns:
            Whether the address was not suppressed before (the first reason is kept).
        """
        try:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO suppressions (account, email, reason, at) "
                "VALUES (?, ?, ?, ?)",
                (account, addresses.key_of(email), reason, stamp(at)),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return cursor.rowcount == 1

    def reason(self, account: str, email: str) -> str | None:
        """Why an address (any spelling) is suppressed for an account, or ``None``."""
        try:
            row = self._db.execute(
                "SELECT reason FROM suppressions WHERE account = ? AND email = ?",
                (account, addresses.key_of(email)),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return None if row is None else str(row[0])

    def entries(self, account: str | None = None) -> dict[str, str]:
        """The suppressed addresses (of one account, or of all) and why, by address."""
        try:
            rows = self._db.execute(
                "SELECT email, reason FROM suppressions WHERE ? IS NULL OR account = ? "
                "ORDER BY email",
                (account, account),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return {str(email): str(reason) for email, reason in rows}
