"""What each step, and each version of a step, of a campaign brought: sends and answers.

Sends are counted from the ``sends`` table (counted outcomes only: a send that never
left is no send) through its ``sends_by_step`` index. An answer is put down to the last
step the lead was sent before it, in the version the lead was given of that step:

- replies: leads that replied (a reply read from the mailbox, not an auto-reply),
- unsubscribes: leads that asked to be unsubscribed (the one-click link, or a mail to
  the ``List-Unsubscribe`` address),
- bounces: hard bounces, each put down to the send it reports (their ``send_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error

__all__ = ["DayBounces", "DaySends", "StepCounts", "StepStats"]

# The version a lead was given of the step it was last sent ('' when the step had none):
# the key ``l.step`` of the JSON object ``l.variants``, as the engine reads it.
_LAST_VERSION = "coalesce({}, '')"


@dataclass
class StepCounts:
    """One step (1-based), in one version (``""``: the step has no variants), of a campaign."""

    step: int
    variant: str
    sends: int = 0
    replies: int = 0
    bounces: int = 0
    unsubscribes: int = 0

    def rate(self, count: int) -> float | None:
        """``count`` over the sends (``None`` before any send)."""
        return count / self.sends if self.sends else None


@dataclass(frozen=True)
class DaySends:
    """One mailbox's counted sends on one UTC day: step 1 and follow-ups apart."""

    day: str
    credential_id: str
    step1: int
    followups: int


@dataclass(frozen=True)
class DayBounces:
    """One mailbox's hard-bounced addresses on one UTC day (each address once a day)."""

    day: str
    credential_id: str
    bounces: int


class StepStats(Repository):
    """Counts by step and version, read in one read transaction."""

    def of(self, campaign_id: str) -> list[StepCounts]:
        """A campaign's counts by step and version, in step then version order."""
        last_version = _LAST_VERSION.format(
            self._database.dialect.json_key.format("l.variants", "l.step")
        )
        try:
            with self._database.read_snapshot():
                # Kept by the sends' triggers (state/counters.py): a few rows a campaign.
                sends = self._db.execute(
                    "SELECT step, coalesce(variant, ''), sum(sends) FROM step_sends "
                    "WHERE campaign_id = ? GROUP BY 1, 2",
                    (campaign_id,),
                ).fetchall()
                # From the answers to their leads: far fewer answers than leads.
                answers = self._db.execute(
                    f"SELECT r.kind, l.step, {last_version}, count(DISTINCT l.email) "
                    "FROM replies AS r CROSS JOIN leads AS l ON l.campaign_id = r.campaign_id "
                    "AND l.email = r.email WHERE r.campaign_id = ? "
                    "AND r.kind IN ('reply', 'unsubscribe') AND l.step > 0 GROUP BY 1, 2, 3",
                    (campaign_id,),
                ).fetchall()
                # Each bounce's step and version were written with it (from its send).
                bounces = self._db.execute(
                    "SELECT step, coalesce(variant, ''), count(DISTINCT email) "
                    "FROM bounces INDEXED BY bounces_by_step WHERE campaign_id = ? "
                    "AND kind = 'hard' AND step IS NOT NULL GROUP BY step, variant",
                    (campaign_id,),
                ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        counts: dict[tuple[int, str], StepCounts] = {}
        replies = [row[1:] for row in answers if row[0] == "reply"]
        unsubscribes = [row[1:] for row in answers if row[0] == "unsubscribe"]
        for name, rows in (
            ("sends", sends),
            ("replies", replies),
            ("unsubscribes", unsubscribes),
            ("bounces", bounces),
        ):
            for step, variant, count in rows:
                key = (int(step), str(variant))
                entry = counts.setdefault(key, StepCounts(*key))
                setattr(entry, name, getattr(entry, name) + int(count))
        return [counts[key] for key in sorted(counts)]

    def days(self, campaign_id: str, first_day: str) -> list[DaySends]:
        """A campaign's counted sends per UTC day (``YYYY-MM-DD``) and mailbox, from a day on."""
        try:
            rows = self._db.execute(
                "SELECT day, credential_id, step1, followups FROM credential_days "
                "WHERE campaign_id = ? AND day >= ? AND step1 + followups > 0 "
                "ORDER BY day, credential_id",
                (campaign_id, first_day),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [DaySends(str(d), str(c), int(s), int(f)) for d, c, s, f in rows]

    def bounce_days(self, campaign_id: str, first_day: str) -> list[DayBounces]:
        """A campaign's hard-bounced addresses per UTC day and mailbox, from a day on.

        As the bounce rate counts them: addresses, not reports.
        """
        try:
            rows = self._db.execute(
                "SELECT substr(at, 1, 10), credential_id, count(DISTINCT lower(email)) "
                "FROM bounces WHERE campaign_id = ? AND kind = 'hard' AND at >= ? "
                "GROUP BY 1, 2 ORDER BY 1, 2",
                (campaign_id, first_day),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [DayBounces(str(d), str(c), int(n)) for d, c, n in rows]
