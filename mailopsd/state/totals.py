"""Running totals of the whole ledger, by label values: what ``/metrics`` exposes.

Every table's rows are added up in one read transaction, so the totals agree with
each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error

__all__ = ["RunningTotals", "Totals"]


@dataclass(frozen=True)
class Totals:
    """Running totals of the whole ledger, by label values (what ``/metrics`` exposes).

    Attributes:
        sends: Sends by ``(campaign, credential, outcome)``.
        bounces: Bounce reports by ``(campaign, credential, kind)``.
        replies: Replies by ``(campaign, kind)`` (``reply``, ``auto_reply``,
            ``unsubscribe``, ``feedback``).
        suppressions: Suppressed addresses by ``(account,)``.
        opens: Opens (every pixel load) by ``(campaign,)``.
        clicks: Clicks (every redirect) by ``(campaign,)``.
    """

    sends: dict[tuple[str, ...], int]
    bounces: dict[tuple[str, ...], int]
    replies: dict[tuple[str, ...], int]
    suppressions: dict[tuple[str, ...], int]
    opens: dict[tuple[str, ...], int]
    clicks: dict[tuple[str, ...], int]


# Each total as (columns it is grouped by, what it adds up, table): module constants only.
_TOTALS: dict[str, tuple[str, str, str]] = {
    "sends": ("campaign_id, credential_id, outcome", "count(*)", "sends"),
    "bounces": ("campaign_id, credential_id, kind", "count(*)", "bounces"),
    "replies": ("campaign_id, kind", "count(*)", "replies"),
    "suppressions": ("account", "count(*)", "suppressions"),
    "opens": ("campaign_id", "sum(count)", "opens"),
    "clicks": ("campaign_id", "sum(count)", "clicks"),
}


class RunningTotals(Repository):
    """The totals of sends, bounces, replies, suppressions, opens and clicks."""

    def read(self) -> Totals:
        """Running totals of sends, bounces, replies, suppressions, opens and clicks.

        One read transaction, so the totals agree with each other.
        """
        found: dict[str, dict[tuple[str, ...], int]] = {}
        try:
            with self._database.read_snapshot():
                for name, (columns, total, table) in _TOTALS.items():
                    rows = self._db.execute(
                        f"SELECT {columns}, {total} FROM {table} GROUP BY {columns}"
                    ).fetchall()
                    found[name] = {
                        tuple(str(value or "") for value in row[:-1]): int(row[-1]) for row in rows
                    }
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return Totals(**found)
