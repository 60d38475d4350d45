"""Opens and clicks: counters per lead (and per link), never one row per event.

A pixel loaded a thousand times costs one row: each lead's opens, and each of its
links' clicks, are a count with the first and the last time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import stamp, unstamp

__all__ = ["Tracked", "Tracking"]

# What a repeated open or click adds to its row, ``{0}`` its table (named, as PostgreSQL
# finds a bare column ambiguous beside ``excluded``'s).
_ADDED = (
    "count = {0}.count + excluded.count, "
    "first_at = CASE WHEN excluded.first_at < {0}.first_at THEN excluded.first_at "
    "ELSE {0}.first_at END, "
    "last_at = CASE WHEN excluded.last_at > {0}.last_at THEN excluded.last_at "
    "ELSE {0}.last_at END"
)


@dataclass(frozen=True)
class Tracked:
    """How often a lead opened a message, or clicked one link, and when."""

    first_at: datetime
    last_at: datetime
    count: int


class Tracking(Repository):
    """Opens and clicks per lead."""

    def record_open(self, campaign_id: str, email: str, at: datetime) -> None:
        """Count an open of a lead's message, keeping the first time (inside a transaction)."""
        self.add_opens(campaign_id, email, at, at, 1)

    def record_click(self, campaign_id: str, email: str, url: str, at: datetime) -> None:
        """Count a click on one link of a lead's message (inside a transaction)."""
        self.add_clicks(campaign_id, email, url, at, at, 1)

    def add_opens(
        self, campaign_id: str, email: str, first_at: datetime, last_at: datetime, count: int
    ) -> None:
        """Count ``count`` opens of a lead's message seen from ``first_at`` to ``last_at``.

        In one statement, as :meth:`record_open` ``count`` times would (inside a transaction).
        """
        try:
            self._db.execute(
                "INSERT INTO opens (campaign_id, email, first_at, last_at, count) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign_id, email) DO UPDATE SET "
                f"{_ADDED.format('opens')}",
                (campaign_id, email, stamp(first_at), stamp(last_at), count),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def add_clicks(
        self,
        campaign_id: str,
        email: str,
        url: str,
        first_at: datetime,
        last_at: datetime,
        count: int,
    ) -> None:
        """Count ``count`` clicks on one link of a lead's message, as :meth:`add_opens` opens."""
        try:
            self._db.execute(
                "INSERT INTO clicks (campaign_id, email, url, first_at, last_at, count) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, email, url) DO UPDATE SET "
                f"{_ADDED.format('clicks')}",
                (campaign_id, email, url, stamp(first_at), stamp(last_at), count),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def opens(self, campaign_id: str, email: str) -> Tracked | None:
        """A lead's opens, or ``None`` if none was seen."""
        try:
            row = self._db.execute(
                "SELECT first_at, last_at, count FROM opens WHERE campaign_id = ? AND email = ?",
                (campaign_id, email),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return None if row is None else Tracked(unstamp(row[0]), unstamp(row[1]), int(row[2]))

    def clicks(self, campaign_id: str, email: str) -> dict[str, Tracked]:
        """A lead's clicks, by link."""
        try:
            rows = self._db.execute(
                "SELECT url, first_at, last_at, count FROM clicks WHERE campaign_id = ? "
                "AND email = ? ORDER BY url",
                (campaign_id, email),
            )
            return {
                str(row[0]): Tracked(unstamp(row[1]), unstamp(row[2]), int(row[3])) for row in rows
            }
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def totals(self, campaign_id: str) -> dict[str, int]:
        """A campaign's opens and clicks: leads that opened and clicked, and how often."""
        try:
            opened, opens = self._db.execute(
                "SELECT count(*), coalesce(sum(count), 0) FROM opens WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchone()
            clicked, clicks = self._db.execute(
                "SELECT count(DISTINCT email), coalesce(sum(count), 0) FROM clicks "
                "WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return {
            "leads_opened": int(opened),
            "opens": int(opens),
            "leads_clicked": int(clicked),
            "clicks": int(clicks),
        }
