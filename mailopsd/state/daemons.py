"""The daemons of a ledger: each one's row, written by itself every few seconds.

A daemon that works on the ledger or stands by for it says who it is (host, pid), what
it does (its role), which config revision it runs or would run, and when it last said
so (its heartbeat). ``status`` reads them; the daemons read each other's to agree on the
revision they work on (see :mod:`mailopsd.daemon.cluster`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import stamp, unstamp

__all__ = ["DaemonRow", "Daemons"]


@dataclass(frozen=True)
class DaemonRow:
    """One daemon as it last described itself."""

    id: str
    host: str
    pid: int
    role: str
    revision: str | None
    started_at: datetime
    heartbeat_at: datetime
    note: str = ""
    holds: tuple[str, ...] = ()
    """The campaigns whose leases it holds."""


class Daemons(Repository):
    """Each daemon's row: written by the daemon itself, read by all and by ``status``."""

    def beat(self, row: DaemonRow) -> None:
        """Write the daemon's row (in a transaction of its own)."""
        try:
            with self._database.transaction():
                self._db.execute(
                    "INSERT INTO daemons (id, host, pid, role, revision, started_at, "
                    "heartbeat_at, note, holds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                    "role = excluded.role, revision = excluded.revision, "
                    "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
                    "note = excluded.note, holds = excluded.holds",
                    (
                        row.id,
                        row.host,
                        row.pid,
                        row.role,
                        row.revision,
                        stamp(row.started_at),
                        stamp(row.heartbeat_at),
                        row.note,
                        json.dumps(list(row.holds)),
                    ),
                )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def forget_before(self, moment: datetime) -> int:
        """Delete the rows of daemons not heard from since ``moment``; return how many."""
        try:
            with self._database.transaction():
                cursor = self._db.execute(
                    "DELETE FROM daemons WHERE heartbeat_at < ?", (stamp(moment),)
                )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return max(cursor.rowcount, 0)

    def all(self) -> list[DaemonRow]:
        """Every daemon's row, by id."""
        try:
            rows = self._db.execute(
                "SELECT id, host, pid, role, revision, started_at, heartbeat_at, note, holds "
                "FROM daemons ORDER BY id"
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [
            DaemonRow(
                str(id_),
                str(host),
                int(pid),
                str(role),
                None if revision is None else str(revision),
                unstamp(started),
                unstamp(beat),
                str(note),
                tuple(json.loads(holds)),
            )
            for id_, host, pid, role, revision, started, beat, note, holds in rows
        ]
