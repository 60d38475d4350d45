"""What a message is: a complaint, a notification, a delivery report, or a person's mail.

The message is read once (``reader``), then tried as an ARF complaint, an Amazon SES
notification, a delivery report (its recipients from DSN fields, DSN fields written as
text, the report's text, ``flufl.bounce``, and last the returned message's To), an
unsubscribe request, an auto-reply (RFC 3834 and the older vendor headers, out-of-office
subjects), a reply, or ``other``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from mailopsd.diagnosis import Reason, codes, rules
from mailopsd.inbox.classify import freetext, limits, phrases, reader, reports
from mailopsd.inbox.classify.model import Classification, FailedRecipient, Reading
from mailopsd.lifecycle import MailKind

__all__ = ["classify"]


def classify(raw: bytes) -> Classification:
    """Classify one message.

    Args:
        raw: The message as received. Any size and any bytes: broken MIME, unknown
            charsets and binary garbage give a class, never an exception.

    Returns:
        The classification; ``other`` when nothing applies.
    """
    try:
        return _classify(raw)
    except Exception as err:  # the contract is a class for any input
        return Classification(MailKind.OTHER, notes=(f"unreadable: {type(err).__name__}",))


# --- People and robots --------------------------------------------------------------------

_REPLY_PREFIX = re.compile(r"^\s*(?:" + "|".join(phrases.REPLY_PREFIXES) + r")\s*:", re.IGNORECASE)
_BOUNCE_FROM = re.compile("|".join(phrases.BOUNCE_FROM), re.IGNORECASE)
_ROBOT_FROM = re.compile("|".join(phrases.ROBOT_FROM), re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile("|".join(phrases.BOUNCE_SUBJECT), re.IGNORECASE)
_BOUNCE_BODY = re.compile("|".join(phrases.BOUNCE_BODY), re.IGNORECASE)
_TEMPORARY = re.compile("|".join(phrases.TEMPORARY), re.IGNORECASE)
_OOO_SUBJECT = re.compile("|".join(phrases.OUT_OF_OFFICE_SUBJECT), re.IGNORECASE)
_UNSUBSCRIBE = re.compile(phrases.UNSUBSCRIBE_SUBJECT, re.I)
_NULL_SENDER = re.compile(r"\s*<\s*(?:>|mailer-daemon\b)", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")


def _is_auto_reply(mail: _Mail) -> bool:
    """RFC 3834 ``Auto-Submitted``, the older vendor headers, or an out-of-office subject.

    Read receipts (RFC 8098) are automatic responses too, found from their MIME type.
    """
    if mail.parts.has_mdn or mail.report_type == "disposition-notification":
        return True
    return _automatic(mail.message) or bool(_OOO_SUBJECT.search(mail.subject))


def _automatic(message: reader.Entity) -> bool:
    """Whether the headers say no person wrote the message."""
    auto = message.header("auto-submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if any(name in message.fields for name in phrases.AUTO_HEADERS):
        return True
    return message.header("precedence").lower() in ("auto_reply", "bulk", "junk")


def _is_report(mail: _Mail) -> bool:
    """Whether the headers or the MIME structure say this is a delivery report.

    A report's subject counts only on a robot's message: a person may write one too.
    """
    if mail.parts.has_dsn or "x-failed-recipients" in mail.message.fields:
        return True
    if mail.report_type == "delivery-status" or _BOUNCE_FROM.search(mail.from_field):
        return True
    if not _BOUNCE_SUBJECT.search(mail.subject) or _REPLY_PREFIX.match(mail.subject):
        return False
    if _ROBOT_FROM.search(mail.from_field) or _automatic(mail.message):
        return True
    # RFC 5321 4.5.5: reports go out with a null reverse-path, which the delivering MTA
    # writes as Return-Path: <> (some as <MAILER-DAEMON@host>).
    return bool(_NULL_SENDER.match(mail.message.header("return-path")))


def _is_temporary(parts: reader.Parts, subject: str) -> bool:
    """Whether a report says delivery is still being tried."""
    actions = {block.get("action", "").strip().lower() for block in parts.dsn}
    if "delayed" in actions and "failed" not in actions:
        return True
    return bool(_TEMPORARY.search(subject) or _TEMPORARY.search(parts.text[:4096]))


# --- Classification -----------------------------------------------------------------------


@dataclass
class _Mail:
    """One message, parsed once, with what every reading needs."""

    message: reader.Entity
    parts: reader.Parts
    report: str  # the text report, without the copy of the returned message
    subject: str
    from_field: str
    report_type: str


def _classify(raw: bytes) -> Classification:
    notes: list[str] = []
    if len(raw) > limits.MAX_MESSAGE:
        notes.append(f"read the first {limits.MAX_MESSAGE} of {len(raw)} bytes")
    raw = raw[: limits.MAX_MESSAGE]
    message = reader.entity(raw)
    parts = reader.gather(message)
    report, returned_text = freetext.split_returned(parts.text)
    if returned_text:
        parts.returned.append(
            reader.copy_headers(returned_text.lstrip().encode("utf-8", "replace"))
        )
    mail = _Mail(
        message,
        parts,
        report,
        message.header("subject")[:1000],
        message.header("from"),
        message.content_type[1].get("report-type", "").lower(),
    )
    reading = _read(mail)
    references = [r for h in parts.returned for r in _MESSAGE_ID.findall(h.get("message-id", ""))]
    for name in ("in-reply-to", "references"):
        references += _MESSAGE_ID.findall(message.header(name))
    return Classification(
        reading.kind,
        tuple(reading.recipients),
        tuple(dict.fromkeys((*reading.references, *references)))[: limits.MAX_REFERENCES],
        reader.first_address(mail.from_field),
        mail.subject,
        (*notes, reading.how),
    )


def _read(mail: _Mail) -> Reading:
    """Read a message as a complaint, a notification, a report or a person's mail."""
    if mail.parts.feedback or mail.report_type == "feedback-report":
        return Reading(MailKind.FEEDBACK, reports.feedback_recipients(mail.parts), "arf")
    head = mail.parts.text.lstrip()[:4096]
    if head.startswith("{") and ("notificationType" in head or "eventType" in head):
        ses = reports.ses_notification(mail.parts.text)
        if ses is not None:
            return ses
    if _is_report(mail):
        return _bounce(mail)
    sender = reader.first_address(mail.from_field)
    if _UNSUBSCRIBE.fullmatch(mail.subject):
        return Reading(MailKind.UNSUBSCRIBE, _self(sender, MailKind.UNSUBSCRIBE), "unsubscribe")
    if _ROBOT_FROM.search(mail.from_field) and _BOUNCE_BODY.search(mail.report[:8192]):
        return _bounce(mail)  # a robot's report without the usual headers
    if _is_auto_reply(mail):
        return Reading(MailKind.AUTO_REPLY, _self(sender, MailKind.AUTO_REPLY), "auto-reply")
    if _replies(mail.message):
        return Reading(MailKind.REPLY, [], "reply")
    return Reading(MailKind.OTHER, [], "other")


def _replies(message: reader.Entity) -> bool:
    return "in-reply-to" in message.fields or "references" in message.fields


def _self(sender: str | None, kind: MailKind) -> list[FailedRecipient]:
    reason = Reason.VACATION if kind == MailKind.AUTO_REPLY else None
    return [FailedRecipient(sender, None, kind, reason=reason)] if sender else []


def _bounce(mail: _Mail) -> Reading:
    """Read a delivery report: the first recipient's class, the failed recipients, how."""
    parts, report = mail.parts, mail.report
    temporary = functools.cache(lambda: _is_temporary(parts, mail.subject))
    recipients = reports.dsn_recipients(parts.dsn, report, temporary=temporary)
    if recipients:
        return Reading(recipients[0].kind, recipients, "dsn")
    if "final-recipient" in parts.text.lower():  # DSN fields written as text
        recipients = reports.dsn_recipients(
            reader.field_groups(parts.text), report, temporary=temporary
        )
        if recipients:
            return Reading(recipients[0].kind, recipients, "dsn text")
    exclude = _ours(mail)
    named = [
        a.group(0).lower()
        for value in mail.message.fields.get("x-failed-recipients", [])
        for a in reader.ADDRESS.finditer(value)
    ]
    recipients = freetext.text_recipients(report, exclude, named=named, temporary=temporary)
    if recipients:
        return Reading(recipients[0].kind, recipients, "text")
    recipients = freetext.flufl_recipients(mail.message, report, temporary=temporary)
    if recipients:
        return Reading(recipients[0].kind, recipients, "flufl.bounce")
    words = report[: limits.MAX_WORDS]
    status = codes.status_of(words)
    said = rules.diagnose(status, words, temporary=temporary)
    kind = said.kind
    # The last place a report may name its recipient: the To of the returned message.
    copies = parts.returned + [
        reader.copy_headers(part.payload(limits.MAX_TEXT)) for part in parts.attachments
    ]
    found = (reader.first_address(h.get("to")) for h in copies)
    address = next((a for a in found if a and a not in exclude), None)
    if address is None:
        return Reading(kind, [], "report without a recipient")
    recipient = FailedRecipient(address, status, kind, freetext.brief(words), reason=said.reason)
    return Reading(kind, [recipient], "returned message")


def _ours(mail: _Mail) -> set[str]:
    """Addresses that are the sender's or the reporting system's, never a failed one."""
    ours = {
        reader.first_address(mail.message.get(n)) for n in ("from", "to", "return-path", "sender")
    }
    for copy in mail.parts.returned:
        ours |= {
            reader.first_address(copy.get(n)) for n in ("from", "sender", "return-path", "reply-to")
        }
    return {address for address in ours if address}
