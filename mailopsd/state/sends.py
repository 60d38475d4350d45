"""Sends: each intent before its message leaves, its outcome, its bounces, and the counts.

An intent is committed before any message of its batch leaves, and a send with an
intent and no outcome is never sent again (at most once). The counts that rate limits
and daily limits ask on every tick are read from counters the schema's triggers keep
(see :mod:`mailopsd.state.schema`), so they cost the same whatever the history holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailopsd.config import addresses
from mailopsd.config.reasons import CountedReasons
from mailopsd.diagnosis import BY_CODE
from mailopsd.lifecycle import SendOutcome
from mailopsd.state.db import Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import COUNTED_SQL, stamp, unstamp

__all__ = [
    "UNKNOWN_REASON",
    "UNUSED",
    "Bounce",
    "BounceReason",
    "CredentialCounts",
    "CredentialUsage",
    "Intent",
    "SendTally",
    "Sends",
    "SentMessage",
]

# The counted outcomes as an SQL list, for ``outcome IN ...``, and single outcomes.
_PENDING_SQL = f"'{SendOutcome.PENDING.value}'"
_UNKNOWN_SQL = f"'{SendOutcome.UNKNOWN.value}'"
_MIDNIGHT = "T00:00:00.000000Z"
# A send is written with its UTC day and its recipient domain, which the counters'
# triggers read (see state/counters.py, migration 11), and with OR ROLLBACK, as are its
# outcomes: a failed write rolls the whole transaction back, as the transaction's caller
# would, so that SQLite keeps no statement journal for the triggers' writes.
_INSERT_INTENT = (
    "INSERT OR ROLLBACK INTO sends (campaign_id, credential_id, email, step, message_id, "
    "intent_at, subject, gap_s, variant, day, domain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_OUTCOME = (
    "UPDATE OR ROLLBACK sends SET outcome = ?, smtp_code = ?, detail = ?, outcome_at = ? "
    "WHERE id = ?"
)
_DAY_CHARS = len("2026-12-31")
OutcomeRow = tuple[int, str, int | None, str]
"""How a send ended: its id, outcome, SMTP code and the server's words."""
UNKNOWN_REASON = "unknown"
"""The reason shown for a bounce recorded before the ledger kept reasons (schema 13)."""
_BY_CODE_SQL = "(" + ", ".join(f"'{reason.value}'" for reason in sorted(BY_CODE)) + ")"
# Whether a bounce counts toward a rate whose reasons are :{0}, a comma-separated list
# with a comma at each end (instr over it costs a sixth of an IN over json_each): by its
# reason if it has one (one whose class follows the code only when permanent, recorded
# hard), else by its kind (``{1}``) as before reasons were kept; unconfirmed, never.
_COUNTS_TOWARD = (
    "kind <> 'unconfirmed' AND CASE WHEN reason IS NULL THEN kind = '{1}' "
    "ELSE instr(:{0}, ',' || reason || ',') > 0 "
    f"AND (kind = 'hard' OR reason NOT IN {_BY_CODE_SQL}) END"
)
_BOUNCED_SQL = (
    f"SELECT count(DISTINCT CASE WHEN {_COUNTS_TOWARD.format('bounces', 'hard')} "
    "THEN lower(email) END), "
    f"count(DISTINCT CASE WHEN {_COUNTS_TOWARD.format('blocks', 'block')} "
    "THEN lower(email) END), "
    "count(DISTINCT CASE WHEN kind = 'unconfirmed' THEN lower(email) END) "
    "FROM bounces WHERE campaign_id = :campaign AND credential_id = :credential "
    "AND at >= :since"
)


def _listed(reasons: Iterable[str]) -> str:
    """Reasons as ``_COUNTS_TOWARD`` takes them: ``,userunknown,hostunknown,``."""
    return "," + ",".join(reasons) + ","


def _domain(email: str) -> str:
    """A send's recipient domain, as the ledger's SQL takes it from an address key.

    What follows the first ``@`` (``substr(email, instr(email, '@') + 1)``), or the
    whole text if there is none.
    """
    return email[email.find("@") + 1 :]


@dataclass(frozen=True)
class Intent:
    """A send about to happen: recorded before the message leaves."""

    campaign_id: str
    credential_id: str
    email: str
    step: int
    message_id: str
    subject: str
    at: datetime
    gap_s: int | None = None
    """The time drawn for this send's credential to wait after it (``min_interval``)."""
    variant: str | None = None
    """The version of the step sent, if the step has variants."""


CredentialUsage = tuple[str, int, str | None, int | None, str | None]
"""What a tick reads of a credential, the row as the ledger answers it (one tuple more per
row, for thousands of credentials a tick, costs a tenth of the read): its id, its step-1
sends today, its last send's time, the gap drawn after that send (seconds, ``None``:
none), its first send's time (ledger times)."""

UNUSED: CredentialUsage = ("", 0, None, None, None)
"""The usage of a credential that never sent."""


@dataclass(frozen=True)
class CredentialCounts:
    """Live counters of one credential."""

    sent_today: int = 0
    followups_today: int = 0
    sends_in_window: int = 0
    bounces_in_window: int = 0
    blocks_in_window: int = 0
    unconfirmed_in_window: int = 0
    unknown: int = 0


@dataclass(frozen=True)
class SendTally:
    """A campaign's counted sends (handed to a server, or may have been).

    Attributes:
        total: Since the campaign began.
        today: Since ``day_start``, every step.
        step1_today: Since ``day_start``, step 1 only.
    """

    total: int
    today: int
    step1_today: int


# A send found for a message: (id, campaign, credential, address).
_SendRow = tuple[int, str, str, str]


@dataclass(frozen=True)
class SentMessage:
    """One send as a send token names it (:mod:`mailopsd.sendtokens`)."""

    send_id: int
    campaign_id: str
    credential_id: str
    email: str
    step: int
    message_id: str


@dataclass(frozen=True)
class Bounce:
    """A bounce as recorded: at send time (``source`` ``smtp``) or from a report."""

    campaign_id: str
    credential_id: str
    email: str
    kind: str
    source: str
    at: datetime
    reason: str = UNKNOWN_REASON
    """Why it failed (``diagnosis.Reason``), ``unknown`` if recorded before reasons were kept."""


@dataclass(frozen=True)
class BounceReason:
    """How many addresses of a credential bounced for one reason, of one kind."""

    reason: str
    """A ``diagnosis.Reason``, or ``unknown`` for bounces recorded before reasons were kept."""
    kind: str
    addresses: int


_DEFAULT_REASONS = CountedReasons()


class Sends(Repository):
    """Intents, outcomes and bounces; the counts limits are checked against."""

    def record_intents(self, intents: list[Intent], fence: int | None = None) -> list[int]:
        """Commit every intent (and mark its lead ``sending``) before any message leaves.

        Args:
            intents: The sends about to be made.
            fence: The session that must hold their campaigns' leases (see
                :meth:`Database.transaction`).
        """
        rows = []
        for intent in intents:
            at = stamp(intent.at)
            rows.append(
                (
                    intent.campaign_id,
                    intent.credential_id,
                    intent.email,
                    intent.step,
                    intent.message_id,
                    at,
                    intent.subject,
                    intent.gap_s,
                    intent.variant,
                    at[:_DAY_CHARS],
                    _domain(intent.email),
                )
            )
        with self._database.transaction(fence):  # which translates SQLite's errors
            ids = self._database.insert_many(_INSERT_INTENT, rows)
            self._db.executemany(
                "UPDATE leads SET state = 'sending' WHERE campaign_id = ? AND email = ?",
                [(intent.campaign_id, intent.email) for intent in intents],
            )
        return ids

    def set_outcome(
        self, send_id: int, *, outcome: str, code: int | None, detail: str, at: datetime
    ) -> None:
        """Record how a send ended (inside the caller's transaction)."""
        try:
            self._db.execute(_SET_OUTCOME, (outcome, code, detail, stamp(at), send_id))
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def set_outcomes(self, outcomes: Sequence[OutcomeRow], at: datetime) -> None:
        """Record how each of several sends ended (inside the caller's transaction).

        One statement for them all (on PostgreSQL, one round trip).
        """
        moment = stamp(at)
        try:
            self._db.executemany(
                _SET_OUTCOME,
                [(kind, code, detail, moment, send_id) for send_id, kind, code, detail in outcomes],
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def add_bounce(
        self,
        send_id: int | None,
        campaign_id: str,
        credential_id: str,
        email: str,
        *,
        status: str | None,
        source: str,
        at: datetime,
        kind: str = "hard",
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record a bounce (inside the caller's transaction).

        ``kind`` is ``hard`` (the address is gone), ``block`` (the sender was refused),
        ``soft`` (delivery failed for now) or ``unconfirmed`` (a report that quotes none
        of our messages: recorded and shown, never counted). ``reason`` (a
        ``diagnosis.Reason``) says why; the campaign's ``bounce_reasons`` and
        ``block_reasons`` say which reasons count toward which rate (see :meth:`counts`).
        """
        try:
            self._db.execute(
                "INSERT INTO bounces (campaign_id, credential_id, email, send_id, at, "
                "permanent, status, source, kind, detail, step, variant, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "(SELECT step FROM sends WHERE id = ?), (SELECT variant FROM sends WHERE id = ?), "
                "?)",
                (
                    campaign_id,
                    credential_id,
                    email,
                    send_id,
                    stamp(at),
                    int(kind != "soft"),
                    status,
                    source,
                    kind,
                    detail,
                    send_id,
                    send_id,
                    reason,
                ),
            )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def bounces(self, campaign_id: str | None = None) -> list[Bounce]:
        """The bounces recorded (of one campaign, or of all), in the order they came."""
        try:
            rows = self._db.execute(
                "SELECT campaign_id, credential_id, email, kind, source, at, "
                f"coalesce(reason, '{UNKNOWN_REASON}') FROM bounces "
                "WHERE ? IS NULL OR campaign_id = ? ORDER BY id",
                (campaign_id, campaign_id),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [
            Bounce(c, k, e, kind, source, unstamp(at), reason)
            for c, k, e, kind, source, at, reason in rows
        ]

    def reasons(
        self, campaign_id: str, credential_id: str, *, since: datetime
    ) -> list[BounceReason]:
        """A credential's bounced addresses since ``since`` by reason and kind, most first.

        Every kind, ``unconfirmed`` included; an address counts once per reason and kind.
        """
        try:
            rows = self._db.execute(
                f"SELECT coalesce(reason, '{UNKNOWN_REASON}') AS why, kind, "
                "count(DISTINCT lower(email)) AS addresses FROM bounces "
                "WHERE campaign_id = ? AND credential_id = ? AND at >= ? "
                "GROUP BY why, kind ORDER BY addresses DESC, why, kind",
                (campaign_id, credential_id, stamp(since)),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [BounceReason(str(why), str(kind), int(count)) for why, kind, count in rows]

    def pending(self) -> list[tuple[int, Intent]]:
        """Sends with an intent and no outcome (the process stopped in between)."""
        try:
            rows = self._db.execute(
                "SELECT id, campaign_id, credential_id, email, step, message_id, subject, "
                f"intent_at, variant FROM sends WHERE outcome = {_PENDING_SQL} ORDER BY id"
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [
            (
                int(row[0]),
                Intent(
                    *(row[1], row[2], row[3], int(row[4]), row[5], row[6] or ""),
                    unstamp(row[7]),
                    variant=row[8],
                ),
            )
            for row in rows
        ]

    def counts(
        self,
        campaign_id: str,
        credential_id: str,
        *,
        day_start: datetime,
        window_start: datetime,
        reasons: CountedReasons = _DEFAULT_REASONS,
    ) -> CredentialCounts:
        """Live counters of a credential: today's sends, and sends and bounces in a window.

        Bounces and blocks are the addresses that bounced for one of ``reasons``'
        ``bounces`` and ``blocks`` (the campaign's ``bounce_reasons``, ``block_reasons``);
        one recorded before reasons were kept counts by its kind (``hard``, ``block``).
        """
        key = (campaign_id, credential_id)
        day, window = stamp(day_start), stamp(window_start)
        try:
            sent = self._db.execute(
                "SELECT coalesce(sum(CASE WHEN step = 1 AND intent_at >= :day THEN 1 END), 0), "
                "coalesce(sum(CASE WHEN step > 1 AND intent_at >= :day THEN 1 END), 0), "
                "coalesce(sum(CASE WHEN intent_at >= :window THEN 1 END), 0) "
                "FROM sends INDEXED BY sends_by_credential WHERE campaign_id = :campaign "
                f"AND credential_id = :credential AND outcome IN {COUNTED_SQL} "
                "AND intent_at >= :since",
                {
                    "day": day,
                    "window": window,
                    "since": min(day, window),
                    "campaign": key[0],
                    "credential": key[1],
                },
            ).fetchone()
            (unknown,) = self._db.execute(
                "SELECT count(*) FROM sends INDEXED BY sends_unknown WHERE campaign_id = ? "
                f"AND credential_id = ? AND outcome = {_UNKNOWN_SQL}",
                key,
            ).fetchone()
            # Addresses, not reports: several reports about one lead (repeated, or forged)
            # count once, so the rate never passes what the sends allow.
            bounced = self._db.execute(
                _BOUNCED_SQL,
                {
                    "campaign": key[0],
                    "credential": key[1],
                    "since": window,
                    "bounces": _listed(reasons.bounces),
                    "blocks": _listed(reasons.blocks),
                },
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return CredentialCounts(
            sent_today=int(sent[0]),
            followups_today=int(sent[1]),
            sends_in_window=int(sent[2]),
            unknown=int(unknown),
            bounces_in_window=int(bounced[0]),
            blocks_in_window=int(bounced[1]),
            unconfirmed_in_window=int(bounced[2]),
        )

    def tally(self, campaign_id: str, day_start: datetime) -> SendTally:
        """Count a campaign's sends: in all, and since ``day_start`` (a UTC midnight).

        Read from the per-day counters the triggers keep: one row per day and mailbox.
        """
        day = stamp(day_start)[:10]
        try:
            row = self._db.execute(
                "SELECT coalesce(sum(step1 + followups), 0), "
                "coalesce(sum(CASE WHEN day >= :day THEN step1 + followups END), 0), "
                "coalesce(sum(CASE WHEN day >= :day THEN step1 END), 0) "
                "FROM credential_days WHERE campaign_id = :campaign",
                {"day": day, "campaign": campaign_id},
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return SendTally(total=int(row[0]), today=int(row[1]), step1_today=int(row[2]))

    def usage(self, campaign_id: str, day_start: datetime) -> dict[str, CredentialUsage]:
        """Per credential: step-1 sends since ``day_start``, last send, its gap, first send.

        See :data:`CredentialUsage`. Every credential that ever made a counted send is
        listed. From a UTC midnight (what callers pass) one row per credential answers,
        kept by triggers, whatever the history holds.
        """
        since = stamp(day_start)
        try:
            if not since.endswith(_MIDNIGHT):
                return self._usage_since(campaign_id, since)
            # The last send's day is the latest day with sends: today's count is its
            # count, or 0 if it was before today (after today only if the clock went
            # back: add up).
            rows = self._db.execute(
                "SELECT credential_id, CASE WHEN at < :since THEN 0 "
                "WHEN substr(at, 1, 10) = :day THEN day_step1 ELSE (SELECT sum(step1) "
                "FROM credential_days AS d WHERE d.campaign_id = :campaign AND d.day >= :day "
                "AND d.credential_id = last.credential_id) END, at, gap_s, first_at "
                "FROM credential_last_send AS last WHERE campaign_id = :campaign "
                "AND at IS NOT NULL",
                {"campaign": campaign_id, "since": since, "day": since[:10]},
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return {row[0]: row for row in rows}

    def _usage_since(self, campaign_id: str, since: str) -> dict[str, CredentialUsage]:
        """:meth:`usage` from another time than a midnight: counted from the sends."""
        sent = self._db.execute(
            "SELECT credential_id, count(*) FROM sends INDEXED BY sends_by_time "
            "WHERE campaign_id = ? AND intent_at >= ? AND step = 1 "
            f"AND outcome IN {COUNTED_SQL} GROUP BY credential_id",
            (campaign_id, since),
        ).fetchall()
        counts = dict(sent)
        last = self._db.execute(
            "SELECT credential_id, at, gap_s, first_at FROM credential_last_send "
            "WHERE campaign_id = ? AND at IS NOT NULL",
            (campaign_id,),
        )
        return {
            str(key): (str(key), int(counts.get(key, 0)), at, gap, first)
            for key, at, gap, first in last
        }

    def domain_sends(
        self, campaign_id: str, day_start: datetime, domains: Iterable[str]
    ) -> dict[str, int]:
        """Counted sends to each of ``domains`` in the UTC day from ``day_start``.

        Read from the per-day counters the triggers keep: one row per domain asked.
        """
        try:
            rows = self._db.execute(
                "SELECT domain, sends FROM domain_days WHERE campaign_id = ? AND day = ? "
                f"AND domain IN ({self._database.dialect.json_values.format('?')})",
                (campaign_id, stamp(day_start)[:10], json.dumps(sorted(set(domains)))),
            )
            return {str(domain): int(sends) for domain, sends in rows}
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def domains_at(self, campaign_id: str, day_start: datetime, cap: int) -> int:
        """How many recipient domains got ``cap`` counted sends or more in a UTC day."""
        try:
            (count,) = self._db.execute(
                "SELECT count(*) FROM domain_days WHERE campaign_id = ? AND day = ? AND sends >= ?",
                (campaign_id, stamp(day_start)[:10], cap),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return int(count)

    def since(self, campaign_id: str, since: datetime) -> dict[str, int]:
        """Per credential: sends of any step since ``since`` (for rate limits)."""
        try:
            rows = self._db.execute(
                "SELECT credential_id, count(*) FROM sends INDEXED BY sends_by_time "
                f"WHERE campaign_id = ? AND intent_at >= ? AND outcome IN {COUNTED_SQL} "
                "GROUP BY credential_id",
                (campaign_id, stamp(since)),
            )
            return {str(row[0]): int(row[1]) for row in rows}
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def first_at(self, campaign_id: str, credential_id: str) -> datetime | None:
        """When the credential first sent (or tried to), if ever."""
        try:
            row = self._db.execute(
                "SELECT intent_at FROM sends INDEXED BY sends_by_credential WHERE campaign_id = ? "
                f"AND credential_id = ? AND outcome IN {COUNTED_SQL} ORDER BY intent_at LIMIT 1",
                (campaign_id, credential_id),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return unstamp(row[0]) if row and row[0] else None

    def by_message_id(
        self,
        message_ids: Iterable[str],
        *,
        senders: Iterable[tuple[str, str]],
        email: str | None = None,
    ) -> _SendRow | None:
        """The last send (id, campaign, credential, address) that had one of ``message_ids``.

        Args:
            message_ids: The Message-IDs a message refers to.
            senders: The ``(campaign, credential)`` pairs whose sends may match: a
                message read from one mailbox speaks only of the sends made from it.
            email: Only a send to this address, in any spelling (see ``key_of``).
        """
        ids = [m for m in message_ids if m]
        if not ids:
            return None
        dialect = self._database.dialect
        try:
            row = self._db.execute(
                "SELECT id, campaign_id, credential_id, email FROM sends WHERE message_id IN "
                f"({dialect.json_values.format(':ids')}) "
                "AND (:email IS NULL OR email = :email) "
                f"AND EXISTS (SELECT 1 FROM ({dialect.json_values.format(':senders')}) AS s "
                f"WHERE {dialect.json_item.format('s.value', 0)} = campaign_id "
                f"AND {dialect.json_item.format('s.value', 1)} = credential_id) "
                "ORDER BY id DESC LIMIT 1",
                {
                    "ids": json.dumps(ids),
                    "email": addresses.key_of(email) if email is not None else None,
                    "senders": json.dumps([list(pair) for pair in senders]),
                },
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def by_id(self, send_id: int) -> SentMessage | None:
        """The send of id ``send_id`` (a send token's), ``None`` if there is none."""
        if not 0 < send_id < 2**63:  # SQLite's integers: a larger id names no row
            return None
        try:
            row = self._db.execute(
                "SELECT id, campaign_id, credential_id, email, step, message_id FROM sends "
                "WHERE id = ?",
                (send_id,),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        if row is None:
            return None
        return SentMessage(
            int(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), str(row[5])
        )

    def outcomes(self, message_ids: Iterable[str]) -> dict[str, str]:
        """The outcome of each send that had one of ``message_ids``, by Message-ID."""
        try:
            rows = self._db.execute(
                "SELECT message_id, outcome FROM sends WHERE message_id IN "
                f"({self._database.dialect.json_values.format('?')}) ORDER BY id",
                (json.dumps(list(message_ids)),),
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return {str(message_id): str(outcome) for message_id, outcome in rows}

    def last_to(self, campaign_id: str, credential_id: str, email: str) -> _SendRow | None:
        """The last send of a credential to ``email``, in any spelling (see ``key_of``)."""
        try:
            row = self._db.execute(
                "SELECT id, campaign_id, credential_id, email FROM sends WHERE email = ? "
                "AND credential_id = ? AND campaign_id = ? ORDER BY id DESC LIMIT 1",
                (addresses.key_of(email), credential_id, campaign_id),
            ).fetchone()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))
