"""What a classified message does: stop a lead, suppress an address, count a bounce.

Runs on the daemon's main thread, one transaction per poll: the messages' effects and
the folder cursors are committed together, so a crash never loses a message nor counts
one twice (a message already recorded, by its Message-ID, is skipped).

- ``reply``: the lead that was written to (matched by the Message-IDs it refers to, else
  by its address among this credential's sends) is stopped: no further step.
- ``auto_reply``: recorded; stops the lead only with ``stop_on_auto_reply``.
- ``unsubscribe`` and ``feedback`` (a complaint): the lead stops and its address is
  suppressed for the whole account.
- ``hard``: the lead stops, the address is suppressed and the bounce counts against the
  credential that sent it; ``block`` counts toward that credential's block rate and
  never suppresses; ``soft`` is recorded only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd.config.loader import LoadedConfig
from mailopsd.inbox.classify import Classification
from mailopsd.inbox.imap import Arrival, PollResult
from mailopsd.state.ledger import Ledger

__all__ = ["REPORT_KINDS", "Recorded", "record_poll"]

logger = logging.getLogger(__name__)

REPORT_KINDS = frozenset({"hard", "soft", "block", "feedback", "delivered"})
_MAX_RECIPIENTS = 100
CredentialKey = tuple[str, str]


@dataclass
class Recorded:
    """What recording one poll did."""

    new: int = 0
    duplicates: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    check: set[CredentialKey] = field(default_factory=set)
    reports: list[Arrival] = field(default_factory=list)


@dataclass(frozen=True)
class _Send:
    send_id: int
    campaign_id: str
    credential_id: str
    email: str


def _find(
    ledger: Ledger, key: CredentialKey, references: tuple[str, ...], address: str | None
) -> _Send | None:
    found = ledger.send_by_message_id(references)
    if found is not None and (address is None or found[3] == address.lower()):
        return _Send(*found)
    if address is not None:
        found = ledger.last_send_to(key[0], key[1], address)
        if found is not None:
            return _Send(*found)
    return None


class _Recorder:
    def __init__(
        self, ledger: Ledger, loaded: LoadedConfig, key: CredentialKey, now: datetime
    ) -> None:
        self.ledger = ledger
        self.loaded = loaded
        self.key = key
        self.now = now
        self.done = Recorded()

    def _account(self, campaign_id: str) -> str | None:
        campaign = self.loaded.config.campaigns.get(campaign_id)
        return campaign.account if campaign is not None else None

    def _stop(self, send: _Send, reason: str, *, suppress: str | None = None) -> None:
        if self.ledger.stop_lead(send.campaign_id, send.email, reason):
            logger.info(
                "lead stopped campaign=%s credential=%s reason=%s",
                send.campaign_id,
                send.credential_id,
                reason,
            )
        account = self._account(send.campaign_id)
        if suppress is not None and account is not None:
            self.ledger.suppress(account, send.email, suppress, self.now)

    def _reports(self, arrival: Arrival, result: Classification) -> str | None:
        first: str | None = None
        for recipient in result.recipients[:_MAX_RECIPIENTS]:
            send = _find(self.ledger, self.key, result.references, recipient.address)
            if send is None:
                continue
            first = first or send.email
            kind = recipient.kind
            if kind in ("hard", "soft", "block"):
                self.ledger.add_bounce(
                    send.send_id,
                    send.campaign_id,
                    send.credential_id,
                    send.email,
                    status=recipient.status,
                    source="imap",
                    at=self.now,
                    kind=kind,
                    detail=recipient.diagnostic[:200] or None,
                )
            if kind == "hard":
                self._stop(send, "bounced", suppress="hard bounce")
            if kind in ("hard", "block"):
                self.done.check.add((send.campaign_id, send.credential_id))
        if result.kind == "feedback":
            send = None
            if not result.recipients:
                send = _find(self.ledger, self.key, result.references, None)
            elif first is not None:
                send = _find(self.ledger, self.key, result.references, first)
            if send is not None:
                first = send.email
                self._reply(send, "feedback", arrival)
                self._stop(send, "complained", suppress="complaint")
        return first

    def _reply(self, send: _Send, kind: str, arrival: Arrival) -> None:
        self.ledger.add_reply(
            send.campaign_id,
            send.credential_id,
            send.email,
            kind=kind,
            message_id=arrival.key[4:] if arrival.key.startswith("mid:") else None,
            at=self.now,
        )

    def _answer(self, arrival: Arrival, result: Classification, kind: str) -> str | None:
        send = _find(self.ledger, self.key, result.references, None)
        if send is None and result.sender:
            send = _find(self.ledger, self.key, (), result.sender)
        if send is None:
            return None
        self._reply(send, kind, arrival)
        if kind == "reply":
            self._stop(send, "replied")
        elif kind == "unsubscribe":
            self._stop(send, "unsubscribed", suppress="unsubscribed")
        else:
            campaign = self.loaded.config.campaigns.get(send.campaign_id)
            if campaign is not None and campaign.stop_on_auto_reply:
                self._stop(send, "auto_reply")
        return send.email

    def one(self, arrival: Arrival) -> None:
        if self.ledger.has_message(*self.key, arrival.key):
            self.done.duplicates += 1
            return
        result = arrival.classification
        kind = result.kind
        email: str | None = None
        if kind in REPORT_KINDS:
            email = self._reports(arrival, result)
        elif kind in ("reply", "auto_reply", "unsubscribe"):
            email = self._answer(arrival, result, kind)
        elif kind == "other" and result.sender:
            # Not threaded, but from an address this mailbox wrote to: a reply.
            email = self._answer(arrival, result, "reply")
            kind = "reply" if email is not None else kind
        self.ledger.note_message(
            *self.key,
            arrival.key,
            folder=arrival.folder,
            uid=arrival.uid,
            kind=kind,
            email=email,
            at=self.now,
        )
        self.done.new += 1
        self.done.by_kind[kind] = self.done.by_kind.get(kind, 0) + 1
        if kind in REPORT_KINDS:
            self.done.reports.append(arrival)


def record_poll(
    ledger: Ledger, loaded: LoadedConfig, key: CredentialKey, result: PollResult, now: datetime
) -> Recorded:
    """Apply a poll's messages and commit its cursors, all in one transaction."""
    recorder = _Recorder(ledger, loaded, key, now)
    with ledger.transaction():
        for arrival in result.arrivals:
            recorder.one(arrival)
        summary = f"ok: {recorder.done.new} new"
        if recorder.done.duplicates:
            summary += f", {recorder.done.duplicates} seen before"
        for folder in (*result.cursors, *result.missing_folders):
            cursor = result.cursors.get(folder)
            ledger.set_imap_cursor(
                *key,
                folder,
                (cursor.uidvalidity, cursor.last_uid) if cursor else None,
                at=now,
                result=summary if cursor else "folder not found",
            )
    return recorder.done
