"""What the mailboxes' polls leave in the ledger: cursors, messages read, replies.

Each folder's cursor (``UIDVALIDITY`` and last UID read) lets a poll read only what is
new; each message read is remembered by a key, so one read twice (a cursor reset, a
message copied) is recorded once. A reply, auto-reply or unsubscribe request is kept
with the send it answers; bounces are kept with the sends (see
:mod:`mailopsd.state.sends`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import stamp, unstamp

__all__ = ["Cursor", "InboxRecords", "Reply"]


@dataclass(frozen=True)
class Reply:
    """A reply, auto-reply, complaint or unsubscribe request, as recorded."""

    campaign_id: str
    credential_id: str | None
    email: str
    kind: str
    at: datetime
    message_id: str | None


@dataclass(frozen=True)
class Cursor:
    """Where the reading of one mailbox folder stands, and how its last poll went."""

    campaign_id: str
    credential_id: str
    folder: str
    uidvalidity: int | None
    last_uid: int | None
    last_poll_at: datetime | None
    last_result: str | None


class InboxRecords(Repository):
    """IMAP cursors, the messages read, the replies."""

    def cursors(self, campaign_id: str, credential_id: str) -> dict[str, tuple[int, int]]:
        """Per folder: the ``UIDVALIDITY`` and last UID read."""
        try:
            rows = self._db.execute(
                "SELECT folder, uidvalidity, last_uid FROM imap_cursors WHERE campaign_id = ? "
                "AND credential_id = ? AND uidvalidity IS NOT NULL",
                (campaign_id, credential_id),
            )
            return {str(row[0]): (int(row[1]), int(row[2] or 0)) for row in rows}
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def polls(self, campaign_id: str | None = None) -> list[Cursor]:
        """Every folder's cursor (of one campaign, or of all), by credential and folder."""
        try:
            rows = self._db.execute(
                "SELECT campaign_id, credential_id, folder, uidvalidity, last_uid, "
                "last_poll_at, last_result FROM imap_cursors WHERE ? IS NULL OR campaign_id = ? "
                "ORDER BY campaign_id, credential_id, folder",
                (campaign_id, campaign_id),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [
            Cursor(c, k, folder, validity, uid, None if at is None else unstamp(at), result)
            for c, k, folder, validity, uid, at, result in rows
        ]

    def last_poll(self, campaign_id: str, credential_id: str) -> tuple[str | None, str | None]:
        """When a poll last read any folder of this mailbox, and what it said (ledger times).

        A shared mailbox's poll is read by its pair (``refs.mailbox_ref``).
        """
        try:
            row = self._db.execute(
                "SELECT last_poll_at, last_result FROM imap_cursors WHERE campaign_id = ? "
                "AND credential_id = ? ORDER BY last_poll_at DESC LIMIT 1",
                (campaign_id, credential_id),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return (row[0], row[1]) if row else (None, None)

    def set_cursor(
        self,
        campaign_id: str,
        credential_id: str,
        folder: str,
        cursor: tuple[int, int] | None,
        *,
        at: datetime,
        result: str,
    ) -> None:
        """Record a poll of a folder: its cursor (kept as it was if ``None``) and result."""
        try:
            self._db.execute(
                "INSERT INTO imap_cursors (campaign_id, credential_id, folder, uidvalidity, "
                "last_uid, last_poll_at, last_result) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (campaign_id, credential_id, folder) DO UPDATE SET "
                "uidvalidity = coalesce(excluded.uidvalidity, imap_cursors.uidvalidity), "
                "last_uid = coalesce(excluded.last_uid, imap_cursors.last_uid), "
                "last_poll_at = excluded.last_poll_at, last_result = excluded.last_result",
                (
                    campaign_id,
                    credential_id,
                    folder,
                    cursor[0] if cursor else None,
                    cursor[1] if cursor else None,
                    stamp(at),
                    result,
                ),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def note_message(
        self,
        campaign_id: str,
        credential_id: str,
        key: str,
        *,
        folder: str,
        uid: int,
        kind: str,
        email: str | None,
        at: datetime,
    ) -> None:
        """Remember a message read from the mailbox (see :meth:`has_message`)."""
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO inbox_messages (campaign_id, credential_id, key, folder, "
                "uid, at, kind, email) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (campaign_id, credential_id, key, folder, uid, stamp(at), kind, email),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def has_message(self, campaign_id: str, credential_id: str, key: str) -> bool:
        """Tell whether a message read from the mailbox was recorded already."""
        try:
            row = self._db.execute(
                "SELECT 1 FROM inbox_messages WHERE campaign_id = ? AND credential_id = ? "
                "AND key = ?",
                (campaign_id, credential_id, key),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return row is not None

    def messages_read(self, campaign_id: str) -> int:
        """How many messages of a campaign's mailboxes were read and recorded."""
        try:
            (count,) = self._db.execute(
                "SELECT count(*) FROM inbox_messages WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return int(count)

    def add_reply(
        self,
        campaign_id: str,
        credential_id: str | None,
        email: str,
        *,
        kind: str,
        message_id: str | None,
        at: datetime,
    ) -> None:
        """Record a reply, auto-reply or unsubscribe request (inside a transaction)."""
        try:
            self._db.execute(
                "INSERT INTO replies (campaign_id, credential_id, email, at, kind, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (campaign_id, credential_id, email, stamp(at), kind, message_id),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def replies(self, campaign_id: str | None = None) -> list[Reply]:
        """The replies recorded (of one campaign, or of all), in the order they came."""
        try:
            rows = self._db.execute(
                "SELECT campaign_id, credential_id, email, kind, at, message_id FROM replies "
                "WHERE ? IS NULL OR campaign_id = ? ORDER BY id",
                (campaign_id, campaign_id),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [Reply(c, k, e, kind, unstamp(at), m) for c, k, e, kind, at, m in rows]
