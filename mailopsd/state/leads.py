"""The leads' progress through their sequences: what is due, where each lead stands.

A lead's row is written by the import of its campaign's leads file (see
:mod:`mailopsd.state.imports`) and moved on by the dispatcher and the inbox: a step
sent, a reply or a bounce stops it. Reads leave out removed leads and, for the work
that is due, the leads held back: an address suppressed for the campaign's account, an
address or a domain on the account's suppression lists (:mod:`mailopsd.state.lists`),
and with a per-domain daily cap, a domain at its cap (counted by the schema's triggers
in ``domain_days``), each one lookup per lead read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import stamp

__all__ = ["LeadProgress", "LeadTally", "Leads", "StepWait"]


@dataclass(frozen=True)
class LeadProgress:
    """Where a lead is in its sequence.

    ``step`` counts the steps sent (0: none yet); ``state`` is ``new`` (step 1 due),
    ``waiting`` (next step due at ``next_due_at``), ``sending`` (an intent without its
    outcome), ``done``, ``stopped`` (replied, bounced, unsubscribed) or ``failed``.
    """

    campaign_id: str
    email: str
    fields: Mapping[str, str]
    state: str
    step: int
    credential_id: str | None
    next_due_at: str | None
    attempts: int
    message_ids: tuple[str, ...]
    first_subject: str | None
    last_error: str | None = None
    stop_reason: str | None = None
    variants: Mapping[str, str] = field(default_factory=dict)
    """The version of each step given to the lead, by step number (``"2"``), if any."""


@dataclass(frozen=True)
class StepWait:
    """The leads waiting for their next step after the same number of steps sent.

    Attributes:
        leads: How many (suppressed addresses included: see ``LeadTally.suppressed``).
        first_due: The earliest time one of them is due (ledger stamp).
        last_due: The latest.
    """

    leads: int
    first_due: str | None
    last_due: str | None


@dataclass(frozen=True)
class LeadTally:
    """Where a campaign's active leads stand.

    Attributes:
        total: Active leads.
        by_state: Leads by state: ``new``, ``sending``, ``waiting``, ``done``, ``failed``,
            and the stopped ones by reason: ``replied``, ``bounced``, ``unsubscribed``,
            ``domain_replied``, ``stopped`` (any other reason: a complaint, an auto-reply).
        waiting: Per number of steps sent, the leads waiting for their next step.
        suppressed: Per ``(state, steps sent)``, new and waiting leads whose address is
            suppressed for the account: they are never sent their next step.
        listed: Per ``(state, steps sent)``, the other new and waiting leads whose
            address or domain is on the account's suppression lists: held back while it
            is listed.
    """

    total: int
    by_state: dict[str, int]
    waiting: dict[int, StepWait]
    suppressed: dict[tuple[str, int], int]
    listed: dict[tuple[str, int], int]


# What one scan of a campaign's leads adds up, by name (module constants only).
_TALLIED_STATES = {
    "new": "state = 'new'",
    "sending": "state = 'sending'",
    "waiting": "state = 'waiting'",
    "done": "state = 'done'",
    "failed": "state = 'failed'",
    "replied": "state = 'stopped' AND stop_reason = 'replied'",
    "bounced": "state = 'stopped' AND stop_reason = 'bounced'",
    "unsubscribed": "state = 'stopped' AND stop_reason = 'unsubscribed'",
    "domain_replied": "state = 'stopped' AND stop_reason = 'domain_replied'",
    "stopped": "state = 'stopped' AND coalesce(stop_reason, '') "
    "NOT IN ('replied', 'bounced', 'unsubscribed', 'domain_replied')",
}

# A lead's domain, as the index leads_by_domain holds it (see config/domains.py).
_DOMAIN = "substr(leads.email, instr(leads.email, '@') + 1)"
# What holds back due work: the account's suppressions, its lists, and the campaign's
# per-domain daily cap (``:cap`` NULL: none), each one primary-key lookup per lead.
_NOT_HELD = (
    "NOT EXISTS (SELECT 1 FROM suppressions AS s WHERE s.account = :account "
    "AND s.email = leads.email) "
    "AND NOT EXISTS (SELECT 1 FROM listed_addresses AS a WHERE a.account = :account "
    "AND a.email = leads.email) "
    "AND NOT EXISTS (SELECT 1 FROM listed_domains AS d WHERE d.account = :account "
    f"AND d.domain = {_DOMAIN}) "
    "AND (:cap IS NULL OR NOT EXISTS (SELECT 1 FROM domain_days AS c "
    f"WHERE c.campaign_id = leads.campaign_id AND c.day = :day AND c.domain = {_DOMAIN} "
    "AND c.sends >= :cap))"
)
# The new and waiting leads held back by the account's suppressions or lists, each once,
# reached from the account's entries (far fewer than the campaign's leads), and whether
# its address is suppressed (else it is listed).
_HELD_TALLY = (
    "WITH held (email) AS (SELECT email FROM suppressions WHERE account = :account "
    "UNION SELECT email FROM listed_addresses WHERE account = :account "
    "UNION SELECT leads.email FROM listed_domains AS d CROSS JOIN leads "
    f"ON leads.campaign_id = :campaign AND {_DOMAIN} = d.domain WHERE d.account = :account) "
    "SELECT l.state, l.step, EXISTS (SELECT 1 FROM suppressions AS s "
    "WHERE s.account = :account AND s.email = l.email), count(*) "
    "FROM held AS h CROSS JOIN leads AS l ON l.campaign_id = :campaign AND l.email = h.email "
    "WHERE l.state IN ('new', 'waiting') AND l.removed_at IS NULL GROUP BY 1, 2, 3"
)


# The distinct zones of a campaign's new or waiting leads (NULL apart), each found by one
# seek in the index after the previous one, rather than by reading every lead.
_ZONES = (
    "WITH RECURSIVE z (zone) AS (SELECT min(zone) FROM leads INDEXED BY {index} "
    "WHERE campaign_id = :campaign AND {state} AND zone IS NOT NULL "
    "UNION ALL SELECT (SELECT min(zone) FROM leads INDEXED BY {index} "
    "WHERE campaign_id = :campaign AND {state} AND zone > z.zone) FROM z "
    "WHERE z.zone IS NOT NULL) SELECT zone FROM z WHERE zone IS NOT NULL"
)
_ZONE_INDEXES = {
    "leads_new_by_zone": "state = 'new'",
    "leads_waiting_by_zone": "state = 'waiting'",
}
_HAS_NULL_ZONE = (
    "SELECT EXISTS (SELECT 1 FROM leads INDEXED BY {index} WHERE campaign_id = :campaign "
    "AND {state} AND zone IS NULL)"
)

_LEAD_COLUMNS = (
    "campaign_id, email, fields, state, step, credential_id, next_due_at, attempts, "
    "message_ids, first_subject, last_error, stop_reason, variants"
)


def _flag(condition: str) -> str:
    """1 where ``condition`` holds, else 0 (a condition is a number in SQLite only)."""
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def _progress(row: tuple[object, ...]) -> LeadProgress:
    return LeadProgress(
        campaign_id=str(row[0]),
        email=str(row[1]),
        fields=json.loads(str(row[2])),
        state=str(row[3]),
        step=int(str(row[4])),
        credential_id=None if row[5] is None else str(row[5]),
        next_due_at=None if row[6] is None else str(row[6]),
        attempts=int(str(row[7])),
        message_ids=tuple(json.loads(str(row[8]))),
        first_subject=None if row[9] is None else str(row[9]),
        last_error=None if row[10] is None else str(row[10]),
        stop_reason=None if row[11] is None else str(row[11]),
        variants=json.loads(str(row[12])),
    )


def _held_params(
    campaign_id: str, account: str, now: datetime, domain_cap: int | None
) -> dict[str, object]:
    """The parameters of :data:`_NOT_HELD` (the cap counts sends of ``now``'s UTC day)."""
    return {
        "campaign": campaign_id,
        "account": account,
        "now": stamp(now),
        "day": stamp(now)[:10],
        "cap": domain_cap,
    }


_UPDATE_PROGRESS = (
    "UPDATE leads SET state = CASE WHEN state = 'stopped' THEN state ELSE ? END, "
    "step = ?, credential_id = ?, "
    "next_due_at = CASE WHEN state = 'stopped' THEN NULL ELSE ? END, "
    "attempts = ?, message_ids = ?, first_subject = ?, last_error = ?, "
    "stop_reason = CASE WHEN state = 'stopped' THEN stop_reason ELSE ? END, "
    "variants = ? WHERE campaign_id = ? AND email = ?"
)


def _progress_row(lead: LeadProgress) -> tuple[object, ...]:
    """The values of :data:`_UPDATE_PROGRESS` for ``lead``."""
    return (
        lead.state,
        lead.step,
        lead.credential_id,
        lead.next_due_at,
        lead.attempts,
        json.dumps(list(lead.message_ids)),
        lead.first_subject,
        lead.last_error,
        lead.stop_reason,
        json.dumps(dict(lead.variants), sort_keys=True),
        lead.campaign_id,
        lead.email,
    )


class Leads(Repository):
    """Each lead's progress: the work due, one lead, a campaign's tally."""

    def due_followups(
        self,
        campaign_id: str,
        account: str,
        now: datetime,
        *,
        credentials: list[str],
        limit: int,
        domain_cap: int | None = None,
        zones: Sequence[str | None] | None = None,
    ) -> list[LeadProgress]:
        """Leads whose next step is due on one of ``credentials``, oldest first.

        Leads held back are left out (see the module); so are leads of other
        credentials, so that a disabled mailbox's waiting follow-ups never crowd out
        those that can go. With ``zones``, only the leads in those zones (``None``: the
        campaign's zone), read zone by zone from the index of waiting leads by zone.
        """
        params = {
            **_held_params(campaign_id, account, now, domain_cap),
            "credentials": json.dumps(credentials),
            "limit": limit,
        }
        where = (
            "WHERE campaign_id = :campaign AND state = 'waiting' AND removed_at IS NULL "
            "AND next_due_at <= :now "
            f"AND credential_id IN ({self._database.dialect.json_values.format(':credentials')}) "
            f"AND {_NOT_HELD}"
        )
        if zones is None:
            query = f"SELECT {_LEAD_COLUMNS} FROM leads {where} ORDER BY next_due_at LIMIT :limit"
            return self._read(query, params)
        query = (
            f"SELECT {_LEAD_COLUMNS} FROM leads INDEXED BY leads_waiting_by_zone {where} "
            "AND {zone} ORDER BY next_due_at LIMIT :limit"
        )
        return self._by_zone(query, params, zones, limit, key=lambda lead: lead.next_due_at or "")

    def new(
        self,
        campaign_id: str,
        account: str,
        now: datetime,
        limit: int,
        *,
        domain_cap: int | None = None,
        zones: Sequence[str | None] | None = None,
    ) -> list[LeadProgress]:
        """Leads waiting for step 1, in file order (leads held back left out).

        Read in file order from the index of new leads, each checked as it comes: a tick
        reads as many as it needs, and the held-back leads before them. With ``zones``,
        only the leads in those zones (``None``: the campaign's zone), read zone by zone
        from the index of new leads by zone, in file order within the zones.
        """
        params = {**_held_params(campaign_id, account, now, domain_cap), "limit": limit}
        where = (
            "WHERE campaign_id = :campaign AND state = 'new' AND removed_at IS NULL "
            f"AND (next_due_at IS NULL OR next_due_at <= :now) AND {_NOT_HELD}"
        )
        if zones is None:
            query = (
                f"SELECT {_LEAD_COLUMNS} FROM leads INDEXED BY leads_new_by_line {where} "
                "ORDER BY line LIMIT :limit"
            )
            return self._read(query, params)
        query = (
            f"SELECT {_LEAD_COLUMNS}, line FROM leads INDEXED BY leads_new_by_zone {where} "
            "AND {zone} ORDER BY line LIMIT :limit"
        )
        return self._by_zone(query, params, zones, limit, key=None)

    def _read(self, query: str, params: Mapping[str, object]) -> list[LeadProgress]:
        try:
            return [_progress(row) for row in self._db.execute(query, params)]
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def _by_zone(
        self,
        query: str,
        params: Mapping[str, object],
        zones: Sequence[str | None],
        limit: int,
        *,
        key: Callable[[LeadProgress], str] | None,
    ) -> list[LeadProgress]:
        """Run ``query`` once per zone (up to ``limit`` each); keep the first ``limit`` in all.

        ``key`` orders the merged leads; ``None``: the line the query adds as its last column.
        """
        found: list[tuple[object, LeadProgress]] = []
        # ``zone IS :zone`` would be one query, but PostgreSQL's indexes find no row by IS.
        by_zone = query.replace("{zone}", "zone = :zone")
        no_zone = query.replace("{zone}", "zone IS NULL")
        try:
            for zone in zones:
                for row in self._db.execute(
                    no_zone if zone is None else by_zone, {**params, "zone": zone}
                ):
                    lead = _progress(row)
                    found.append((row[-1] if key is None else key(lead), lead))
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        found.sort(key=lambda pair: pair[0])  # type: ignore[arg-type,return-value]
        return [lead for _, lead in found[:limit]]

    def zones(self, campaign_id: str) -> frozenset[str | None]:
        """The zones of a campaign's new and waiting leads (``None``: the campaign's own).

        A few index seeks per zone, whatever the number of leads.
        """
        found: set[str | None] = set()
        try:
            for index, state in _ZONE_INDEXES.items():
                params = {"campaign": campaign_id}
                rows = self._db.execute(_ZONES.format(index=index, state=state), params)
                found.update(str(zone) for (zone,) in rows)
                (has_null,) = self._db.execute(
                    _HAS_NULL_ZONE.format(index=index, state=state), params
                ).fetchone()
                if has_null:
                    found.add(None)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return frozenset(found)

    def by_zone(self, campaign_id: str) -> dict[str | None, int]:
        """How many active new or waiting leads a campaign has in each zone (``None``: its own)."""
        try:
            rows = self._db.execute(
                "SELECT zone, count(*) FROM leads WHERE campaign_id = ? "
                "AND state IN ('new', 'waiting') AND removed_at IS NULL GROUP BY zone",
                (campaign_id,),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return {None if zone is None else str(zone): int(count) for zone, count in rows}

    def without_zone(self, campaign_id: str, limit: int) -> tuple[int, list[int]]:
        """How many active leads use the campaign's zone, and the lines of the first ``limit``."""
        try:
            (count,) = self._db.execute(
                "SELECT count(*) FROM leads WHERE campaign_id = ? AND removed_at IS NULL "
                "AND zone IS NULL",
                (campaign_id,),
            ).fetchone()
            lines = self._db.execute(
                "SELECT line FROM leads WHERE campaign_id = ? AND removed_at IS NULL "
                "AND zone IS NULL ORDER BY line LIMIT ?",
                (campaign_id, limit),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return int(count), [int(line) for (line,) in lines]

    def stop_at_domain(self, campaign_id: str, domain: str, reason: str, *, keep: str) -> list[str]:
        """Stop every active lead of a campaign at ``domain`` but ``keep``.

        Returns:
            The addresses stopped now (a lead already over is left as it is).
        """
        try:
            rows = self._db.execute(
                "UPDATE leads SET state = 'stopped', stop_reason = :reason, next_due_at = NULL "
                f"WHERE campaign_id = :campaign AND {_DOMAIN} = :domain AND email <> :keep "
                "AND state IN ('new', 'waiting', 'sending') RETURNING email",
                {"reason": reason, "campaign": campaign_id, "domain": domain, "keep": keep},
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return sorted(str(email) for (email,) in rows)

    def get(self, campaign_id: str, email: str) -> LeadProgress | None:
        """One lead's progress."""
        try:
            row = self._db.execute(
                f"SELECT {_LEAD_COLUMNS} FROM leads WHERE campaign_id = ? AND email = ?",
                (campaign_id, email),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return None if row is None else _progress(row)

    def count(self, campaign_id: str) -> int:
        """How many active leads a campaign has."""
        try:
            row = self._db.execute(
                "SELECT count(*) FROM leads WHERE campaign_id = ? AND removed_at IS NULL",
                (campaign_id,),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return int(row[0])

    def tally(self, campaign_id: str, account: str, *, steps: int) -> LeadTally:
        """Count a campaign's active leads by state, and its waiting leads by step.

        One pass over the campaign's leads (conditional sums, no sort: a grouped query
        would sort every lead), then one lookup per suppressed or listed address of the
        account and one index range per listed domain, in one read transaction.

        Args:
            campaign_id: The campaign.
            account: Its account (suppressions are per account).
            steps: The length of its sequence (waiting leads have sent 1 to steps - 1).
        """
        sums = [f"coalesce(sum({_flag(where)}), 0)" for where in _TALLIED_STATES.values()]
        for sent in range(1, max(steps, 1)):
            after = f"state = 'waiting' AND step = {int(sent)}"
            sums += [
                f"coalesce(sum({_flag(after)}), 0)",
                f"min(CASE WHEN {after} THEN next_due_at END)",
                f"max(CASE WHEN {after} THEN next_due_at END)",
            ]
        try:
            with self._database.read_snapshot():
                row = self._db.execute(
                    f"SELECT count(*), {', '.join(sums)} FROM leads "
                    "WHERE campaign_id = ? AND removed_at IS NULL",
                    (campaign_id,),
                ).fetchone()
                held = self._db.execute(
                    _HELD_TALLY, {"campaign": campaign_id, "account": account}
                ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        counts = row[1 : 1 + len(_TALLIED_STATES)]
        steps_part = row[1 + len(_TALLIED_STATES) :]
        waiting = {
            index // 3 + 1: StepWait(int(steps_part[index]), *steps_part[index + 1 : index + 3])
            for index in range(0, len(steps_part), 3)
            if steps_part[index]
        }
        return LeadTally(
            total=int(row[0]),
            by_state=dict(zip(_TALLIED_STATES, map(int, counts), strict=True)),
            waiting=waiting,
            suppressed={(str(st), int(step)): int(n) for st, step, ours, n in held if ours},
            listed={(str(st), int(step)): int(n) for st, step, ours, n in held if not ours},
        )

    def update(self, lead: LeadProgress) -> None:
        """Write a lead's progress (inside the caller's transaction).

        A lead stopped meanwhile (a one-click unsubscribe from the HTTP server while its
        step was being sent) stays stopped: its send is recorded, its next step is not.
        """
        self.update_many([lead])

    def update_many(self, leads: Iterable[LeadProgress]) -> None:
        """Write each lead's progress, as :meth:`update` does, in one statement.

        On PostgreSQL the rows go out in one round trip, not one each.
        """
        try:
            self._db.executemany(_UPDATE_PROGRESS, [_progress_row(lead) for lead in leads])
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def stop(self, campaign_id: str, email: str, reason: str) -> bool:
        """Stop a lead's sequence (its queued steps are never sent); ``False`` if it was over."""
        try:
            cursor = self._db.execute(
                "UPDATE leads SET state = 'stopped', stop_reason = ?, next_due_at = NULL "
                "WHERE campaign_id = ? AND email = ? AND state IN ('new', 'waiting', 'sending')",
                (reason, campaign_id, email),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return cursor.rowcount == 1
