"""Classifying what arrives in a sending mailbox: bounces, complaints, auto-replies, replies.

Pure: bytes in, a ``Classification`` out. Delivery reports are read from RFC 3464
``message/delivery-status`` parts when there are any, and otherwise from the text that
MTAs write (``flufl.bounce`` finds the failed addresses of many non-standard formats). Each
failed recipient gets a class from its enhanced status code (RFC 3463) and the server's
words: ``hard`` (the address does not exist or is closed), ``soft`` (temporary: full,
too big, network, timeouts), or ``block`` (the sender was refused: policy, spam,
reputation, authentication), which speaks of the sending mailbox, not of the address.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

import flufl.bounce

__all__ = ["Classification", "FailedRecipient", "classify"]

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_TEXT_STATUS = re.compile(r"(?<![\d.])([45])\.([0-7])\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"(?<![\d.])([45])\d\d(?![\d.])")
_ADDRESS = re.compile(r"[\w.+=!#$%&'*/?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_BLOCK_WORDS = re.compile(
    r"block|blacklist|black list|denylist|spam|reputation|polic|not allowed|denied|"
    r"dmarc|spf|dkim|\bptr\b|reverse dns|rdns|relay(ing)? (access )?denied|not permitted|"
    r"unauthenticated|authentication|sender.*rejected|rejected.*sender|virus|malware|"
    r"content rejected|message rejected|junk|rate limit|too many (messages|recipients)|"
    r"banned|listed|refused|helo|invalid sender|sender address",
    re.IGNORECASE,
)
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|doesn't exist|"
    r"not exist|invalid (recipient|mailbox|address)|recipient (address )?rejected|"
    r"mailbox (unavailable|not found|disabled)|address rejected|unknown (recipient|address)|"
    r"account (has been )?(disabled|suspended|closed|deactivated|inactive)|"
    r"no mailbox|bad destination|host not found|unrouteable|no such domain|"
    r"domain not found|name service error|moved|unknown local part|no longer|"
    r"addressee unknown|undeliverable address|not our customer|unknown or illegal",
    re.IGNORECASE,
)
_STRONG_SOFT = re.compile(
    r"mailbox (is )?full|over ?quota|quota|exceeded storage|expired|too (big|large)|"
    r"size limit|message size|retry time|timed? ?out|could not be delivered for|"
    r"delivery time|temporarily|try again later|insufficient system storage|disk full",
    re.IGNORECASE,
)
_SOFT_WORDS = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|exceeded storage|insufficient|"
    r"temporar|try (again )?later|deferred|timed? ?out|expired|too big|size|"
    r"connection|network|could not be delivered for|retry|busy|system error|resources",
    re.IGNORECASE,
)
_OOO_SUBJECTS = re.compile(
    r"out of (the )?office|auto(matic)?[ -]?(reply|response|antwort)|abwesen|"
    r"absence|absent|vacation|away from|congés|ausente|fuera de la oficina|"
    r"自動|不在|on leave|holiday",
    re.IGNORECASE,
)
_BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery|mailerdaemon", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed|problem)|"
    r"returned mail|failure notice|mail delivery failed|could not be delivered|"
    r"non.?delivery|rejected|not delivered|delivery notification|warning: message",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a delivery report names."""

    address: str
    status: str | None
    kind: str
    diagnostic: str = ""


@dataclass(frozen=True)
class Classification:
    """What a message is.

    ``kind`` is ``hard``, ``soft``, ``block``, ``feedback``, ``auto_reply``, ``delivered``,
    ``unsubscribe``, ``reply`` or ``other``; for reports it is the first recipient's class.
    ``references`` holds the Message-IDs it refers to (returned headers, In-Reply-To and
    References), ``sender`` the From address.
    """

    kind: str
    recipients: tuple[FailedRecipient, ...] = ()
    references: tuple[str, ...] = ()
    sender: str | None = None
    subject: str = ""
    notes: tuple[str, ...] = field(default=())


def _text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, LookupError, AssertionError):
        return ""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


_SOFT_CODES = frozenset({("2", "2"), ("2", "3"), ("3", "1"), ("3", "4"), ("4", "7"), ("4", "2")})
_HARD_CODES = frozenset({("4", "4"), ("4", "1")})


def _kind_without_status(words: str) -> str:
    code = _REPLY_CODE.search(words)
    if _HARD_WORDS.search(words):
        return "hard"
    if _SOFT_WORDS.search(words) or (code and code.group(1) == "4"):
        return "soft"
    return "hard" if code and code.group(1) == "5" else "soft"


def _kind_of_status(status: str, words: str) -> str:
    klass, subject, detail = status.split(".")
    if subject == "7":
        return "block"
    if klass == "4":
        return "hard" if _HARD_WORDS.search(words) else "soft"
    if (subject, detail) in _SOFT_CODES:
        return "soft"
    if subject in ("1", "2") or (subject, detail) in _HARD_CODES or _HARD_WORDS.search(words):
        return "hard"
    return "soft" if _SOFT_WORDS.search(words) else "hard"


def _kind_of(status: str | None, words: str) -> str:
    """The class of one failed recipient from its code and the server's words."""
    if status is not None and status.startswith("2."):
        return "delivered"
    hard_words = bool(_HARD_WORDS.search(words))
    if _BLOCK_WORDS.search(words) and not hard_words:
        return "block"
    if _STRONG_SOFT.search(words) and not hard_words and (status is None or status[2] != "1"):
        return "soft"
    return _kind_without_status(words) if status is None else _kind_of_status(status, words)


def _address(value: str | None) -> str | None:
    if not value:
        return None
    found = _ADDRESS.search(value.split(";", 1)[-1])
    return found.group(0).strip("<>").lower() if found else None


def _dsn_recipients(message: Message) -> list[FailedRecipient]:
    found = []
    for part in message.walk():
        if part.get_content_type() not in (
            "message/delivery-status",
            "message/global-delivery-status",
        ):
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            blocks = [
                email.message_from_string(
                    _text(part).replace("\r\n", "\n").replace("\n\n", "\n", 0)
                )
            ]
        for block in blocks:
            if not isinstance(block, Message):
                continue
            address = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
            if address is None:
                continue
            action = str(block.get("Action", "")).lower()
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            status_match = _STATUS.search(str(block.get("Status", ""))) or _STATUS.search(
                diagnostic
            )
            status = ".".join(status_match.groups()) if status_match else None
            if action in ("delivered", "relayed", "expanded"):
                found.append(FailedRecipient(address, status, "delivered", diagnostic))
                continue
            found.append(FailedRecipient(address, status, _kind_of(status, diagnostic), diagnostic))
    return found


def _body_text(message: Message) -> str:
    texts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            texts.append(_text(part))
    return "\n".join(texts)


def _line_near(text: str, address: str) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if address in line.lower():
            return " ".join(lines[index : index + 4])
    return ""


def _guess_failures(message: Message, text: str) -> frozenset[str]:
    """Addresses on lines that carry an SMTP error, in a message that looks like a bounce."""
    found: set[str] = set()
    for line in text.splitlines():
        if _REPLY_CODE.search(line) or _HARD_WORDS.search(line) or _TEXT_STATUS.search(line):
            found.update(a.lower() for a in _ADDRESS.findall(line))
    sender = _address(str(message.get("From", "")))
    found.discard(sender or "")
    return frozenset(a for a in found if not a.startswith(("mailer-daemon@", "postmaster@")))


def _decoded(raw: object) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.strip("<>").lower()


def _text_recipients(message: Message, *, likely: bool) -> list[FailedRecipient]:
    try:
        temporary, permanent = flufl.bounce.all_failures(message)
    except Exception:  # a detector choking on a broken message finds nothing
        temporary, permanent = frozenset(), frozenset()
    text = _body_text(message)
    failed = [(_decoded(a), "hard") for a in permanent] + [(_decoded(a), "soft") for a in temporary]
    if not failed and likely:
        failed = [(address, "hard") for address in sorted(_guess_failures(message, text))]
    found = []
    for address, default_kind in failed:
        near = _line_near(text, address) or text[:2000]
        status_match = _TEXT_STATUS.search(near) or _TEXT_STATUS.search(text)
        status = ".".join(status_match.groups()) if status_match else None
        words = near if near.strip() else text
        kind = _kind_of(status, words) if status or _REPLY_CODE.search(words) else default_kind
        if status is None and default_kind == "soft" and kind == "hard":
            kind = "soft"
        found.append(FailedRecipient(address, status, kind, " ".join(near.split())[:300]))
    return found


def _references(message: Message) -> tuple[str, ...]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        ids += re.findall(r"<[^<>\s]+>", str(message.get(name, "")))
    for part in message.walk():
        if part.get_content_type() in (
            "message/rfc822",
            "text/rfc822-headers",
            "message/rfc822-headers",
        ):
            inner = (
                part.get_payload(0)
                if part.is_multipart()
                else email.message_from_string(_text(part))
            )
            if isinstance(inner, Message) and inner.get("Message-ID"):
                ids.append(str(inner.get("Message-ID")).strip())
    return tuple(dict.fromkeys(ids))


def _is_auto_reply(message: Message, subject: str) -> bool:
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond") or message.get("X-Autoresponder"):
        return True
    if str(message.get("Precedence", "")).strip().lower() in ("auto_reply", "bulk", "junk"):
        return True
    return bool(_OOO_SUBJECTS.search(subject))


def _is_report(message: Message, subject: str, sender: str) -> bool:
    if message.get_content_type() == "multipart/report":
        return True
    return bool(_BOUNCE_FROM.search(sender) or _BOUNCE_SUBJECT.search(subject))


def classify(raw: bytes) -> Classification:
    """Classify one message.

    Args:
        raw: The message as received (any size; broken MIME is tolerated).

    Returns:
        The classification; ``other`` when nothing applies.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = " ".join(str(message.get("Subject", "")).split())
    sender = str(message.get("From", ""))
    from_address = _address(sender)
    references = _references(message)
    report_type = str(message.get_param("report-type", "", header="content-type")).lower()
    if report_type == "feedback-report" or any(
        p.get_content_type() == "message/feedback-report" for p in message.walk()
    ):
        return Classification(
            "feedback", tuple(_feedback(message)), references, from_address, subject
        )
    recipients = _dsn_recipients(message)
    if not recipients and not _is_auto_reply(message, subject):
        recipients = _text_recipients(message, likely=_is_report(message, subject, sender))
    if recipients:
        kind = recipients[0].kind
        return Classification(kind, tuple(recipients), references, from_address, subject)
    if _is_auto_reply(message, subject):
        return Classification("auto_reply", (), references, from_address, subject)
    if subject.lower().strip(" []") in ("unsubscribe", "re: unsubscribe"):
        return Classification("unsubscribe", (), references, from_address, subject)
    if references:
        return Classification("reply", (), references, from_address, subject)
    return Classification("other", (), references, from_address, subject)


def _feedback(message: Message) -> list[FailedRecipient]:
    found = []
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = part.get_payload()
        text = "\n".join(str(b) for b in blocks) if isinstance(blocks, list) else _text(part)
        for line in text.splitlines():
            if line.lower().startswith(("original-rcpt-to:", "removal-recipient:")):
                address = _address(line.split(":", 1)[1])
                if address:
                    found.append(FailedRecipient(address, None, "feedback"))
    return found
