"""Each mailbox's state in a shared ledger: the state file's credential entries, shared.

The working daemon writes the entries of its state file (disabled, re-enabled, AUTH
failures, the bounce window's start) here as they change; a daemon that takes over
reads them into its own state file first, so it goes on from where the last one was.
Each entry is the JSON of a :class:`~mailopsd.state.statefile.CredentialState`, under
the state file's key (``campaign/credential``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import StorageCorruptError, storage_error
from mailopsd.state.schema import stamp
from mailopsd.state.statefile import CredentialState

__all__ = ["MailboxStates"]


class MailboxStates(Repository):
    """The credential entries of the working daemon's state file, by key."""

    def write(
        self, changed: Mapping[str, CredentialState], removed: set[str], at: datetime
    ) -> None:
        """Write the entries that changed and delete those removed, in one transaction."""
        try:
            with self._database.transaction():
                self._db.executemany(
                    "INSERT INTO mailbox_states (key, state, written_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
                    "written_at = excluded.written_at",
                    [(key, entry.model_dump_json(), stamp(at)) for key, entry in changed.items()],
                )
                self._db.executemany(
                    "DELETE FROM mailbox_states WHERE key = ?", [(key,) for key in removed]
                )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def all(self) -> dict[str, CredentialState]:
        """Every entry, by key.

        Raises:
            StorageCorruptError: An entry is not a credential's state.
        """
        try:
            rows = self._db.execute("SELECT key, state FROM mailbox_states").fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        entries: dict[str, CredentialState] = {}
        for key, text in rows:
            try:
                entries[str(key)] = CredentialState.model_validate_json(str(text))
            except ValidationError as err:
                raise StorageCorruptError(
                    f"the ledger's state of mailbox {key} cannot be read: {err.errors()[0]['msg']}"
                ) from err
        return entries
