"""Classifying what arrives in a mailbox: real bounces, RFC rules, and broken input."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailopsd import cli
from mailopsd.inbox.classify import classify

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bounces"
LABELS = [json.loads(line) for line in (CORPUS / "labels.jsonl").read_text().splitlines()]


def _dsn(status: str, diagnostic: str, *, returned_id: str = "<abc@sender.example.com>") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: ada@sender.example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; lead@example.net\r\nAction: failed\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {returned_id}\r\nSubject: Hello\r\n\r\n--B--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        ("5.1.1", "550 5.1.1 <lead@example.net>: Recipient address rejected: User unknown", "hard"),
        (
            "5.7.1",
            "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            "block",
        ),
        ("4.2.2", "452 4.2.2 Mailbox full", "soft"),
        ("5.2.2", "552 5.2.2 Mailbox full, over quota", "soft"),
        ("2.0.0", "250 2.0.0 OK", "delivered"),
    ],
)
def test_rfc3464_reports(status: str, diagnostic: str, kind: str) -> None:
    """A standard DSN gives the recipient, its status, its class and the returned Message-ID."""
    result = classify(_dsn(status, diagnostic))
    assert result.kind == kind
    (recipient,) = result.recipients
    assert (recipient.address, recipient.status) == ("lead@example.net", status)
    assert "<abc@sender.example.com>" in result.references


def _mail(**headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Lead <lead@example.net>"
    message["To"] = "ada@sender.example.com"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Thanks, I will look at it.")
    return bytes(message)


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Subject": "Re: Hello", "Auto_Submitted": "auto-replied"}, "auto_reply"),
        ({"Subject": "Out of office until Monday"}, "auto_reply"),
        ({"Subject": "Abwesenheitsnotiz"}, "auto_reply"),
        ({"Subject": "Re: Hello", "Precedence": "auto_reply"}, "auto_reply"),
        (
            {
                "Subject": "Re: Hello",
                "Auto_Submitted": "no",
                "In_Reply_To": "<abc@sender.example.com>",
            },
            "reply",
        ),
        ({"Subject": "unsubscribe"}, "unsubscribe"),
        ({"Subject": "Re: Hello", "In_Reply_To": "<abc@sender.example.com>"}, "reply"),
        ({"Subject": "Hello"}, "other"),
    ],
)
def test_people_and_robots(headers: dict[str, str], kind: str) -> None:
    """Auto-replies (RFC 3834 and out-of-office subjects), unsubscribe requests, replies."""
    result = classify(_mail(**headers))
    assert result.kind == kind
    assert result.sender == "lead@example.net"


def test_corpus_never_crashes_and_agreement_floor() -> None:
    """Every real message classifies; agreement with the labels is reported and must not
    fall below today's level (the target is 95%)."""
    classes = recipients = 0
    for label in LABELS:
        result = classify((CORPUS / label["file"]).read_bytes())
        classes += result.kind == label["class"]
        first = result.recipients[0].address if result.recipients else None
        recipients += first == label["recipient"] or label["recipient"] is None
    print(f"agreement: class {classes}/{len(LABELS)}, recipient {recipients}/{len(LABELS)}")
    assert classes / len(LABELS) >= 0.60
    assert recipients / len(LABELS) >= 0.70


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b'Content-Type: multipart/report; boundary="never-closed"\r\n\r\n--never-closed\r\n',
        b"Content-Type: text/plain; charset=no-such-charset\r\nSubject: x\r\n\r\n\xe9\xe8",
        _dsn("5.1.1", "550").replace(b"Final-Recipient: rfc822; lead@example.net\r\n", b""),
        b"Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n" + b"A" * (20 * 2**20),
    ],
)
def test_malformed_never_crash(raw: bytes) -> None:
    """Broken MIME, unknown charsets, a DSN without recipient, 20 MB: a class, no crash."""
    assert classify(raw).kind in {
        "hard",
        "soft",
        "block",
        "feedback",
        "auto_reply",
        "delivered",
        "unsubscribe",
        "reply",
        "other",
    }


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=3000)
    | st.text(max_size=3000).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_fuzz(raw: bytes) -> None:
    """Generated input never makes the classifier raise."""
    classify(raw)


def test_classify_command(capsys: pytest.CaptureFixture[str]) -> None:
    """mailopsd classify prints one JSON line per file."""
    path = CORPUS / "postfix-09.eml"
    assert cli.main(["classify", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == str(path)
    assert record["recipients"] == [
        {"address": "kijitora@example.ne.jp", "status": "4.3.2", "class": record["class"]}
    ]
