"""Delivery reports with a structure: RFC 3464 DSNs, RFC 5965 (ARF) complaints, Amazon SES.

Each recipient's fields are read as written; where a DSN gives only a bare or generic
code, the report's text about that recipient fills it in.
"""

from __future__ import annotations

import functools
import json

from mailopsd.diagnosis import Reason, codes, rules
from mailopsd.inbox.classify import freetext, limits, phrases, reader
from mailopsd.inbox.classify.model import FailedRecipient, Reading
from mailopsd.lifecycle import MailKind

__all__ = ["dsn_recipients", "feedback_recipients", "ses_notification"]


def dsn_recipients(
    blocks: list[dict[str, str]], report: str, *, temporary: rules.Flag
) -> list[FailedRecipient]:
    """Recipients of RFC 3464 per-recipient fields; the report's text fills in a bare code."""
    found: list[FailedRecipient] = []
    lines = report.splitlines()
    # Lowered once for every recipient: a line-by-line search each time costs the report's
    # length times the number of recipients.
    lowered = functools.cache(lambda: "\n".join(lines).lower())
    for block in blocks:
        if len(found) == limits.MAX_RECIPIENTS:
            break
        final = reader.first_address(block.get("final-recipient"))
        original = reader.first_address(block.get("original-recipient"))
        address = final or original
        if address is None:
            continue
        action = block.get("action", "").strip().lower()
        status, diagnostic = _dsn_status(block)
        if status is None or status.endswith(".0.0") or rules.matching_rule(diagnostic) is None:
            about = _about(lines, lowered(), address)
            if status is None or status.endswith(".0.0"):
                status = codes.status_of(about) or status
            if rules.matching_rule(diagnostic) is None:
                diagnostic = " ".join(f"{diagnostic} {about}".split())
        if action in ("delivered", "relayed", "expanded"):
            said = rules.Diagnosis(Reason.DELIVERED, MailKind.DELIVERED)
        else:
            said = rules.diagnose(
                status, diagnostic, temporary=rules.either(action == "delayed", temporary)
            )
            if action == "expired" or (action == "failed" and (status or "").startswith("4.")):
                # A final failure of a transient one: the queue stopped trying (RFC 3464's
                # "failed" with a 4.x.x status; some MTAs write "expired").
                said = rules.gave_up(said)
        other = original if original not in (None, address) else None
        found.append(
            FailedRecipient(address, status, said.kind, diagnostic[:300], other, said.reason)
        )
    return found


def _dsn_status(block: dict[str, str]) -> tuple[str | None, str]:
    """The status of one DSN recipient and the server's words.

    A generic ``Status`` (X.0.0) or a queue expiry (X.4.7) only wraps the remote server's
    answer: the diagnostic's own code, when it has one, says what happened.
    """
    diagnostic = " ".join(block.get("diagnostic-code", "").split())
    if ";" in diagnostic[:20]:
        kind, diagnostic = (part.strip() for part in diagnostic.split(";", 1))
        if kind.lower() == "x-unix":  # a local delivery program's own words or exit code
            diagnostic = f"X-Unix; {diagnostic}"
    field_status = block.get("status", "").strip()
    success = codes.STATUS.match(field_status)
    if success is not None and success.group(1) == "2":
        return ".".join(success.groups()), diagnostic
    status = codes.status_of(field_status)
    if status is None and field_status:
        diagnostic = f"{field_status} {diagnostic}".strip()  # "Status: 553 Too big"
    cause = codes.status_of(diagnostic)
    if cause is not None and (status is None or _wraps(status, cause)):
        status = cause
    return status, diagnostic


def _wraps(status: str, cause: str) -> bool:
    _, subject, detail = status.split(".")
    return cause != status and (subject, detail) in (("0", "0"), ("4", "7"))


def _about(lines: list[str], lowered: str, address: str) -> str:
    """The report's lines about ``address``; ``lowered``: the lines joined and lowercased."""
    at = lowered.find(address)
    if at < 0:
        return ""
    return freetext.recipient_lines(lines, lowered.count("\n", 0, at), len(lines))


def ses_notification(text: str) -> Reading | None:
    """An Amazon SES notification (JSON, maybe inside an SNS envelope)."""
    try:
        data = json.JSONDecoder(strict=False).raw_decode(text.lstrip())[0]
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"], strict=False)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    event = str(data.get("notificationType") or data.get("eventType") or "")
    mail = _dict(data.get("mail"))
    references = tuple(
        reader.clean(str(h.get("value")))
        for h in _list(mail.get("headers"))
        if isinstance(h, dict) and str(h.get("name", "")).lower() == "message-id"
    )
    if event == "Complaint":
        listed = _list(_dict(data.get("complaint")).get("complainedRecipients"))
        recipients = [
            FailedRecipient(a, None, MailKind.FEEDBACK, reason=Reason.FEEDBACK)
            for a in _ses_addresses(listed)
        ]
        return Reading(MailKind.FEEDBACK, recipients, "ses", references)
    if event == "Delivery":
        delivery = _dict(data.get("delivery"))
        response = reader.clean(str(delivery.get("smtpResponse", "")))
        found = codes.STATUS.search(response)
        code = ".".join(found.groups()) if found else None
        listed = _list(delivery.get("recipients"))
        recipients = [
            FailedRecipient(a, code, MailKind.DELIVERED, response, reason=Reason.DELIVERED)
            for a in _ses_addresses(listed)
        ]
        return Reading(MailKind.DELIVERED, recipients, "ses", references)
    if event == "Bounce":
        bounce = _dict(data.get("bounce"))
        transient = str(bounce.get("bounceType", "")) == "Transient"
        subtype = phrases.SES_SUBTYPES.get(str(bounce.get("bounceSubType", "")), "")
        recipients = []
        for entry in map(_dict, _list(bounce.get("bouncedRecipients"))):
            address = reader.first_address(str(entry.get("emailAddress", "")))
            if address is None:
                continue
            words = reader.clean(f"{entry.get('diagnosticCode', '')} {subtype}".strip())
            status = codes.status_of(str(entry.get("status", ""))) or codes.status_of(words)
            said = rules.diagnose(status, words, temporary=lambda: transient)
            recipients.append(
                FailedRecipient(address, status, said.kind, words[:300], reason=said.reason)
            )
        kind = recipients[0].kind if recipients else MailKind.SOFT if transient else MailKind.HARD
        return Reading(kind, recipients, "ses", references)
    return None


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _ses_addresses(listed: list[object]) -> list[str]:
    found = []
    for entry in listed:
        address = reader.first_address(
            str(entry.get("emailAddress") if isinstance(entry, dict) else entry)
        )
        if address:
            found.append(address)
    return found


def feedback_recipients(parts: reader.Parts) -> list[FailedRecipient]:
    """The complaining recipients of an ARF report, else the returned message's To."""
    found = [
        address
        for text in parts.feedback
        for line in text.splitlines()
        if line.lower().startswith(("original-rcpt-to:", "removal-recipient:"))
        and (address := reader.first_address(line.split(":", 1)[1]))
    ]
    if not found:
        found = [a for m in parts.returned if (a := reader.first_address(m.get("to")))][:1]
    return [
        FailedRecipient(a, None, MailKind.FEEDBACK, reason=Reason.FEEDBACK)
        for a in dict.fromkeys(found)
    ]
