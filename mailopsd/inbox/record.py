"""What a classified message does: stop a lead, suppress an address, count a bounce.

Runs on the daemon's main thread, one transaction per poll: the messages' effects and
the folder cursors are committed together, so a crash never loses a message nor counts
one twice (a message already recorded, by its Message-ID, is skipped). Leads are stopped
and addresses suppressed through :mod:`mailopsd.health.effects`, as at send time.

A message speaks only of the sends made from the mailbox it was found in: those of its
own credential, and of the credentials of the same account that write from the same
address without reading a mailbox themselves (their reports and replies land here, and
nobody else reads them). A Message-ID of another account's send, or of a credential
that reads its own mailbox, matches nothing here. A mailbox shared by campaigns is read
by one poll for all of them (``poll_uses``), whatever their accounts: it speaks of the
sends of every campaign credential that names it, and a message goes to the campaign,
credential and account of the send it answers.

- ``reply``: the lead that was written to (matched by the Message-IDs it refers to, else
  by its address: the last send to it of the credentials that read this mailbox) is
  stopped: no further step. With ``stop_on_domain_reply``, so are the other active
  leads of its campaign at the same domain, unless it is a free-mail domain (nothing is
  suppressed).
- ``auto_reply``: recorded; stops the lead only with ``stop_on_auto_reply``.
- ``unsubscribe`` and ``feedback`` (a complaint): the lead stops and its address is
  suppressed for the whole account.
- ``hard``: the lead stops, the address is suppressed and the bounce counts against the
  credential that sent it; ``block`` counts toward that credential's block rate and
  never suppresses; ``soft`` is recorded only. Each is recorded with its reason, and the
  campaign's ``bounce_reasons`` and ``block_reasons`` say which reasons count.
- A ``hard``, ``soft`` or ``block`` report (any may count) that quotes none of this
  mailbox's Message-IDs for the address it names (no returned headers, no In-Reply-To
  or References to ours) is ``unconfirmed``: anyone who knows a lead's address can write
  one, so it is recorded, shown in ``status``, and does nothing else: no count, no stop,
  no suppression.

A report that carries a send token (VERP: a credential with ``verp_domain``; see
:mod:`mailopsd.sendtokens`) in its envelope fields or returned headers is matched by it
first. A token whose MAC verifies names the exact send (campaign, credential, lead,
step): every recipient the report names is that send's lead, in whatever spelling
(except the credential's ``bcc`` copy, which is not the lead's), and the report is
confirmed even when it quotes nothing of the message. It must be a send this mailbox may
speak of, as above. A token that does not verify (forged or damaged, or of a send this
ledger does not have, or of another mailbox's) makes the report count for nothing: it
is recorded as read (kind ``unconfirmed``), logged, left in the mailbox, and nothing else.
A report without a token is matched as above.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from mailopsd import sendtokens
from mailopsd.config import addresses
from mailopsd.config.domains import free_mail
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Credential
from mailopsd.health import effects
from mailopsd.inbox.classify import Classification, FailedRecipient
from mailopsd.inbox.imap import Arrival, PollResult
from mailopsd.lifecycle import MailKind, StopReason
from mailopsd.refs import CredentialRef, is_shared, sender_ref
from mailopsd.state.ledger import Ledger

__all__ = ["REPORT_KINDS", "Recorded", "mailbox_senders", "poll_uses", "record_poll"]

REPORT_KINDS = frozenset(
    {MailKind.HARD, MailKind.SOFT, MailKind.BLOCK, MailKind.FEEDBACK, MailKind.DELIVERED}
)
_BOUNCE_KINDS = frozenset({MailKind.HARD, MailKind.SOFT, MailKind.BLOCK, MailKind.UNCONFIRMED})
# Toward a rate, once confirmed: a soft one too, if its campaign counts its reason.
_COUNTED_KINDS = frozenset({MailKind.HARD, MailKind.SOFT, MailKind.BLOCK})
_MAX_RECIPIENTS = 100

logger = logging.getLogger(__name__)


@dataclass
class Recorded:
    """What recording one poll did."""

    new: int = 0
    duplicates: int = 0
    by_kind: dict[MailKind, int] = field(default_factory=dict)
    check: set[CredentialRef] = field(default_factory=set)
    reports: list[Arrival] = field(default_factory=list)
    unconfirmed: int = 0


@dataclass(frozen=True)
class _Send:
    send_id: int
    campaign_id: str
    credential_id: str
    email: str


def poll_uses(loaded: LoadedConfig, key: CredentialRef) -> tuple[CredentialRef, ...]:
    """The campaign credentials that read the mailbox polled as ``key``.

    A shared mailbox's poll (``refs.mailbox_ref``) reads for every campaign credential
    that names it; any other poll, for its own credential.
    """
    return loaded.config.mailbox_uses.get(key[1], ()) if is_shared(key) else (key,)


def mailbox_senders(loaded: LoadedConfig) -> dict[CredentialRef, frozenset[CredentialRef]]:
    """For each mailbox polled (keyed as ``refs.sender_ref``), whose sends it may speak of.

    Reports and replies go to the address a message was sent from, so a mailbox hears
    of the sends of the credentials that read it (a shared mailbox: of every campaign
    credential that names it, whatever its account) and of those of the credentials of
    the same account that write from the same address but read no mailbox themselves
    (were they read, each report would be counted twice).
    """
    by_address: dict[tuple[str, str], list[tuple[CredentialRef, Credential]]] = {}
    for campaign_id, campaign in loaded.config.campaigns.items():
        for credential_id, credential in campaign.smtp_credentials.items():
            address = (campaign.account, credential.from_email.lower())
            by_address.setdefault(address, []).append(((campaign_id, credential_id), credential))
    senders: dict[CredentialRef, frozenset[CredentialRef]] = {}
    for group in by_address.values():
        unread = frozenset(use for use, credential in group if not credential.has_imap)
        for use, credential in group:
            key = sender_ref(use, credential.shared_as)
            senders[key] = senders.get(key, frozenset()) | unread | {use}
    return senders


class _Recorder:
    def __init__(
        self,
        ledger: Ledger,
        loaded: LoadedConfig,
        key: CredentialRef,
        now: datetime,
        senders: frozenset[CredentialRef],
        send_key: bytes | None,
    ) -> None:
        self.ledger = ledger
        self.send_key = send_key
        self.loaded = loaded
        self.key = key
        self.now = now
        self.senders = senders
        self.uses = poll_uses(loaded, key)
        # A message recorded under a use's own poll, before the campaign named the shared
        # mailbox, was read already: moving a mailbox under mailboxes: counts nothing twice.
        self.readers = tuple(dict.fromkeys((key, *self.uses)))
        self.done = Recorded()
        self.free_mail = free_mail(loaded.config.free_mail_domains)

    def _quoted(self, references: tuple[str, ...], address: str | None) -> _Send | None:
        """The send of this mailbox a message refers to (to ``address``, if given)."""
        found = self.ledger.sends.by_message_id(references, senders=self.senders, email=address)
        return None if found is None else _Send(*found)

    def _written_to(self, address: str) -> _Send | None:
        """The last send to ``address`` of the credentials that read this mailbox."""
        found = [self.ledger.sends.last_to(*use, address) for use in self.uses]
        latest = max(
            (row for row in found if row is not None), key=lambda row: row[0], default=None
        )
        return None if latest is None else _Send(*latest)

    def _find(self, references: tuple[str, ...], address: str | None) -> _Send | None:
        """The send a message refers to, else the last one of this mailbox to ``address``."""
        send = self._quoted(references, address)
        if send is None and address is not None:
            send = self._written_to(address)
        return send

    def _account(self, campaign_id: str) -> str | None:
        campaign = self.loaded.config.campaigns.get(campaign_id)
        return campaign.account if campaign is not None else None

    def _stop(
        self, send: _Send, reason: StopReason, *, suppress: effects.Suppression | None = None
    ) -> None:
        effects.record_stop(
            self.ledger,
            (send.campaign_id, send.credential_id),
            send.email,
            reason,
            account=self._account(send.campaign_id),
            suppression=suppress,
            now=self.now,
        )

    def _stop_colleagues(self, send: _Send) -> None:
        """With ``stop_on_domain_reply``, stop the other leads at the domain of one who replied."""
        campaign = self.loaded.config.campaigns.get(send.campaign_id)
        if campaign is None or not campaign.stop_on_domain_reply:
            return
        effects.stop_colleagues(
            self.ledger,
            (send.campaign_id, send.credential_id),
            send.email,
            free_mail=self.free_mail,
        )

    def _bounce(self, recipient: FailedRecipient, references: tuple[str, ...]) -> str | None:
        """Record what a report says of one recipient; return the lead's address if ours."""
        send = self._quoted(references, recipient.address)
        confirmed = send is not None
        send = send or self._written_to(recipient.address)
        if send is None:
            return None
        self._count(send, recipient, confirmed=confirmed)
        return send.email

    def _count(self, send: _Send, recipient: FailedRecipient, *, confirmed: bool) -> None:
        """Record a report's word on one recipient of ``send``: a bounce, a stop, a check."""
        kind = recipient.kind
        if kind in _COUNTED_KINDS and not confirmed:
            kind = MailKind.UNCONFIRMED
            self.done.unconfirmed += 1
        if kind in _BOUNCE_KINDS:
            self.ledger.sends.add_bounce(
                send.send_id,
                send.campaign_id,
                send.credential_id,
                send.email,
                status=recipient.status,
                source="imap",
                at=self.now,
                kind=kind,
                reason=recipient.reason,
                detail=recipient.diagnostic[:200] or None,
            )
        if kind == MailKind.HARD:
            self._stop(send, StopReason.BOUNCED, suppress=effects.Suppression.HARD_BOUNCE)
        if kind in _COUNTED_KINDS:
            self.done.check.add((send.campaign_id, send.credential_id))

    def _reports(self, arrival: Arrival, result: Classification) -> str | None:
        first: str | None = None
        for recipient in result.recipients[:_MAX_RECIPIENTS]:
            email = self._bounce(recipient, result.references)
            first = first or email
        if result.kind == MailKind.FEEDBACK:
            send = None
            if not result.recipients:
                send = self._find(result.references, None)
            elif first is not None:
                send = self._find(result.references, first)
            if send is not None:
                first = send.email
                self._reply(send, MailKind.FEEDBACK, arrival)
                self._stop(send, StopReason.COMPLAINED, suppress=effects.Suppression.COMPLAINT)
        return first

    def _by_token(self, tokens: tuple[str, ...]) -> tuple[_Send | None, int | None]:
        """The send a verifying token names; else the send id a refused token claimed.

        Returns ``(None, None)`` when there is no token (or no key to check one with).
        """
        if self.send_key is None or not tokens:
            return None, None
        claimed: int | None = None
        for token in tokens:
            send_id = sendtokens.parse(token)
            found = None if send_id is None else self.ledger.sends.by_id(send_id)
            if claimed is None:
                claimed = send_id or 0
            if found is None or sendtokens.verify(self.send_key, token, found.message_id) is None:
                continue
            if (found.campaign_id, found.credential_id) not in self.senders:
                continue  # another mailbox's send: not this mailbox's to speak of
            return _Send(found.send_id, found.campaign_id, found.credential_id, found.email), None
        return None, claimed

    def _bcc(self, send: _Send) -> str | None:
        """The key of the address the sending credential copies every message to, if any."""
        campaign = self.loaded.config.campaigns.get(send.campaign_id)
        credential = campaign.smtp_credentials.get(send.credential_id) if campaign else None
        return addresses.key_of(credential.bcc) if credential and credential.bcc else None

    def _token_reports(self, send: _Send, arrival: Arrival, result: Classification) -> str:
        """A report whose send token verified: each recipient it names is ``send``'s lead.

        Confirmed whatever it quotes; only the credential's BCC copy is someone else.
        """
        bcc = self._bcc(send)
        for recipient in result.recipients[:_MAX_RECIPIENTS]:
            if bcc is None or addresses.key_of(recipient.address) != bcc:
                self._count(send, recipient, confirmed=True)
        if result.kind == MailKind.FEEDBACK:
            self._reply(send, MailKind.FEEDBACK, arrival)
            self._stop(send, StopReason.COMPLAINED, suppress=effects.Suppression.COMPLAINT)
        return send.email

    def _refuse(self, arrival: Arrival, claimed: int) -> None:
        """Log a report whose send token does not verify; it does nothing else."""
        logger.warning(
            "delivery report with an invalid send token ignored mailbox=%s folder=%s uid=%d "
            "claimed_send=%d: the token is forged or damaged, or names a send of another "
            "mailbox or of an earlier ledger; nothing was counted, the message stays in place",
            "/".join(part for part in self.key if part),
            arrival.folder,
            arrival.uid,
            claimed,
        )

    def _reply(self, send: _Send, kind: MailKind, arrival: Arrival) -> None:
        self.ledger.inbox.add_reply(
            send.campaign_id,
            send.credential_id,
            send.email,
            kind=kind,
            message_id=arrival.key[4:] if arrival.key.startswith("mid:") else None,
            at=self.now,
        )

    def _answer(self, arrival: Arrival, result: Classification, kind: MailKind) -> str | None:
        send = self._find(result.references, None)
        if send is None and result.sender:
            send = self._find((), result.sender)
        if send is None:
            return None
        self._reply(send, kind, arrival)
        if kind == MailKind.REPLY:
            self._stop(send, StopReason.REPLIED)
            self._stop_colleagues(send)
        elif kind == MailKind.UNSUBSCRIBE:
            self._stop(send, StopReason.UNSUBSCRIBED, suppress=effects.Suppression.UNSUBSCRIBED)
        else:
            campaign = self.loaded.config.campaigns.get(send.campaign_id)
            if campaign is not None and campaign.stop_on_auto_reply:
                self._stop(send, StopReason.AUTO_REPLY)
        return send.email

    def _report(self, arrival: Arrival, result: Classification) -> tuple[MailKind, str | None]:
        """What a report does: by its send token if it has one, else as it quotes.

        Returns:
            The kind to record the message as, and the lead's address if one is ours.
        """
        send, claimed = self._by_token(arrival.send_tokens)
        if claimed is not None:
            self._refuse(arrival, claimed)
            return MailKind.UNCONFIRMED, None
        if send is not None:
            return result.kind, self._token_reports(send, arrival, result)
        return result.kind, self._reports(arrival, result)

    def one(self, arrival: Arrival) -> None:
        if any(self.ledger.inbox.has_message(*reader, arrival.key) for reader in self.readers):
            self.done.duplicates += 1
            return
        result = arrival.classification
        kind = result.kind
        email: str | None = None
        if kind in REPORT_KINDS:
            kind, email = self._report(arrival, result)
        elif kind in (MailKind.REPLY, MailKind.AUTO_REPLY, MailKind.UNSUBSCRIBE):
            email = self._answer(arrival, result, kind)
        elif kind == MailKind.OTHER and result.sender:
            # Not threaded, but from an address this mailbox wrote to: a reply.
            email = self._answer(arrival, result, MailKind.REPLY)
            kind = MailKind.REPLY if email is not None else kind
        self.ledger.inbox.note_message(
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
    ledger: Ledger,
    loaded: LoadedConfig,
    key: CredentialRef,
    result: PollResult,
    now: datetime,
    *,
    senders: frozenset[CredentialRef] | None = None,
    send_key: bytes | None = None,
) -> Recorded:
    """Apply a poll's messages and commit its cursors, all in one transaction.

    Args:
        ledger: The ledger, written in one transaction.
        loaded: The running config.
        key: The poll: a credential, ``(campaign, credential)``, or a shared mailbox's
            pair (``refs.mailbox_ref``); its cursors and messages read are kept under it.
        result: What the poll read.
        now: The time recorded.
        senders: The credentials whose sends this mailbox speaks of (its entry in
            :func:`mailbox_senders`, computed from ``loaded`` when not given).
        send_key: The daemon's send-token key (``state.sendkey``); without it, send
            tokens are not looked at and reports are matched as if they had none.

    Returns:
        What recording did.
    """
    if senders is None:
        senders = mailbox_senders(loaded).get(key, frozenset({key}))
    recorder = _Recorder(ledger, loaded, key, now, senders, send_key)
    with ledger.transaction():
        for arrival in result.arrivals:
            recorder.one(arrival)
        summary = f"ok: {recorder.done.new} new"
        if recorder.done.duplicates:
            summary += f", {recorder.done.duplicates} seen before"
        for folder in (*result.cursors, *result.missing_folders):
            cursor = result.cursors.get(folder)
            ledger.inbox.set_cursor(
                *key,
                folder,
                (cursor.uidvalidity, cursor.last_uid) if cursor else None,
                at=now,
                result=summary if cursor else "folder not found",
            )
    return recorder.done
