"""Messages that arrive in a sending mailbox, written the way real servers write them.

Each builder takes the lead's address, the Message-ID mailopsd sent (when the format
returns it) and the mailbox's own address; the bytes are CRLF-terminated as IMAP wants.
"""

from __future__ import annotations


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def reply(lead: str, to: str, message_id: str | None, *, subject: str = "Re: Hello") -> bytes:
    """A person's reply; threaded when ``message_id`` is given."""
    thread = f"In-Reply-To: {message_id}\nReferences: {message_id}\n" if message_id else ""
    return _crlf(
        f"From: Lead <{lead}>\nTo: {to}\nSubject: {subject}\n"
        f"Date: Mon, 23 Nov 2026 11:00:00 +0000\nMessage-ID: <r-{lead}>\n{thread}"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
        "Thanks, let's talk next week.\n\n> Hi, step 1.\n"
    )


def auto_reply(lead: str, to: str, message_id: str) -> bytes:
    """An out-of-office answer (RFC 3834)."""
    return _crlf(
        f"From: {lead}\nTo: {to}\nSubject: Out of Office: Hello\n"
        f"Date: Mon, 23 Nov 2026 11:00:00 +0000\nMessage-ID: <ooo-{lead}>\n"
        f"In-Reply-To: {message_id}\nAuto-Submitted: auto-replied\n"
        "X-Auto-Response-Suppress: All\nContent-Type: text/plain; charset=utf-8\n\n"
        "I am out of the office until December 1st with limited access to email.\n"
    )


def unsubscribe(lead: str, to: str) -> bytes:
    """What a mail client sends to the List-Unsubscribe mailto address."""
    local, _, domain = to.partition("@")
    return _crlf(
        f"From: {lead}\nTo: {local}+unsubscribe@{domain}\nSubject: unsubscribe\n"
        f"Date: Mon, 23 Nov 2026 11:00:00 +0000\nMessage-ID: <u-{lead}>\n"
        "Content-Type: text/plain; charset=utf-8\n\nThis message was automatically generated "
        "by Gmail.\n"
    )


def stranger(to: str) -> bytes:
    """Mail that has nothing to do with any campaign."""
    return _crlf(
        f"From: Newsletter <news@shop.example.org>\nTo: {to}\nSubject: Our winter sale\n"
        "Date: Mon, 23 Nov 2026 11:00:00 +0000\nMessage-ID: <sale-1@shop.example.org>\n"
        "Content-Type: text/plain\n\nEverything must go.\n"
    )


def postfix_dsn(lead: str, to: str, message_id: str, *, status: str = "5.1.1") -> bytes:
    """Postfix's RFC 3464 report."""
    temporary = status.startswith("4")
    diagnostic = (
        f"452 {status} <{lead}>: Recipient address rejected: Mailbox full"
        if temporary
        else f"550 {status} <{lead}>: Recipient address rejected: User unknown in "
        "virtual mailbox table"
    )
    subject = (
        "Delayed Mail (still being retried)" if temporary else "Undelivered Mail Returned to Sender"
    )
    return _crlf(
        "Return-Path: <>\nFrom: MAILER-DAEMON@mail.sender.example.com (Mail Delivery System)\n"
        f"To: {to}\nSubject: {subject}\n"
        "Date: Mon, 23 Nov 2026 10:01:02 +0000 (UTC)\n"
        f"Message-Id: <20261123100102.{status}.{lead}>\n"
        "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        '\tboundary="1A2B3C.1700000000/mail.sender.example.com"\n\n'
        "This is a MIME-encapsulated message.\n\n"
        "--1A2B3C.1700000000/mail.sender.example.com\nContent-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "This is the mail system at host mail.sender.example.com.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        f"<{lead}>: host mx.example.net[192.0.2.10] said: {diagnostic}\n"
        "    (in reply to RCPT TO command)\n\n"
        "--1A2B3C.1700000000/mail.sender.example.com\nContent-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mail.sender.example.com\nX-Postfix-Queue-ID: 1A2B3C\n"
        f"X-Postfix-Sender: rfc822; {to}\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:01:00 +0000 (UTC)\n\n"
        f"Final-Recipient: rfc822; {lead}\nOriginal-Recipient: rfc822;{lead}\n"
        f"Action: {'delayed' if temporary else 'failed'}\nStatus: {status}\n"
        "Remote-MTA: dns; mx.example.net\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n\n"
        "--1A2B3C.1700000000/mail.sender.example.com\n"
        "Content-Description: Undelivered Message Headers\n"
        "Content-Type: text/rfc822-headers\n\n"
        f"From: Ada <{to}>\nTo: {lead}\nSubject: Hello\nMessage-ID: {message_id}\n\n"
        "--1A2B3C.1700000000/mail.sender.example.com--\n"
    )


def exim_bounce(lead: str, to: str, message_id: str) -> bytes:
    """Exim's plain-text bounce, the original's headers quoted below."""
    return _crlf(
        "Return-path: <>\nFrom: Mail Delivery System <Mailer-Daemon@mx.sender.example.com>\n"
        f"To: {to}\nSubject: Mail delivery failed: returning message to sender\n"
        "Date: Mon, 23 Nov 2026 10:02:00 +0000\n"
        f"Message-Id: <E1abcde-000123-AB.{lead}>\n"
        "X-Failed-Recipients: " + lead + "\nAuto-Submitted: auto-replied\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {lead}\n    host mx.example.net [192.0.2.20]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{lead}>:\n"
        "    550 5.1.1 The email account that you tried to reach does not exist\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"From: Ada <{to}>\nTo: {lead}\nSubject: Hello\nMessage-ID: {message_id}\n\n"
        "Hi, step 1.\n"
    )


def exchange_ndr(lead: str, to: str, message_id: str) -> bytes:
    """Exchange Online's non-delivery report."""
    return _crlf(
        "From: Microsoft Outlook <MAILER-DAEMON@outlook.example.com>\n"
        f"To: <{to}>\nSubject: Undeliverable: Hello\nDate: Mon, 23 Nov 2026 10:03:00 +0000\n"
        f"Message-ID: <ndr-{lead}>\nAuto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n"
        '\tboundary="ndr_boundary"\n\n'
        "--ndr_boundary\nContent-Type: text/plain; charset=us-ascii\n\n"
        "Your message to " + lead + " couldn't be delivered.\n"
        "The email address you entered couldn't be found.\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found by SMTP address lookup'\n\n"
        "--ndr_boundary\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.outlook.example.com\n"
        "Received-From-MTA: dns;mail.sender.example.com\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:02:59 +0000\n\n"
        f"Final-Recipient: rfc822;{lead}\nAction: failed\nStatus: 5.1.10\n"
        "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found "
        "by SMTP address lookup\n\n"
        "--ndr_boundary\nContent-Type: message/rfc822\n\n"
        f"From: Ada <{to}>\nTo: {lead}\nSubject: Hello\nMessage-ID: {message_id}\n\n"
        "Hi, step 1.\n\n--ndr_boundary--\n"
    )


def gmail_bounce(lead: str, to: str, message_id: str) -> bytes:
    """Gmail's delivery status notification."""
    return _crlf(
        "Return-Path: <>\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        f"To: {to}\nSubject: Delivery Status Notification (Failure)\n"
        f"Date: Mon, 23 Nov 2026 10:04:00 -0800\nMessage-ID: <dsn-{lead}>\n"
        "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; boundary="000000000000gmail"; '
        "report-type=delivery-status\n\n"
        '--000000000000gmail\nContent-Type: multipart/related; boundary="000000000000rel"\n\n'
        '--000000000000rel\nContent-Type: multipart/alternative; boundary="000000000000alt"\n\n'
        "--000000000000alt\nContent-Type: text/plain; charset=UTF-8\n\n\n"
        "** Address not found **\n\n"
        f"Your message wasn't delivered to {lead} because the address couldn't be found, or "
        "is unable to receive mail.\n\nThe response from the remote server was:\n"
        "550 5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces.\n\n"
        "--000000000000alt--\n--000000000000rel--\n"
        "--000000000000gmail\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; googlemail.com\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:03:58 -0800 (PST)\n\n"
        f"Final-Recipient: rfc822; {lead}\nAction: failed\nStatus: 5.1.1\n"
        "Remote-MTA: dns; mx.example.net. (192.0.2.30, the server for the domain example.net.)\n"
        "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does "
        "not exist.\nLast-Attempt-Date: Mon, 23 Nov 2026 10:04:00 -0800 (PST)\n\n"
        "--000000000000gmail\nContent-Type: message/rfc822\n\n"
        f"From: Ada <{to}>\nTo: {lead}\nSubject: Hello\nMessage-ID: {message_id}\n\n"
        "Hi, step 1.\n\n--000000000000gmail--\n"
    )


def block_dsn(lead: str, to: str, message_id: str) -> bytes:
    """A policy rejection: the sending server is on a blocklist."""
    return postfix_dsn(lead, to, message_id, status="5.7.1").replace(
        b"Recipient address rejected: User unknown in virtual mailbox table",
        b"Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org",
    )


def arf_complaint(lead: str, to: str, message_id: str) -> bytes:
    """A feedback-loop complaint (RFC 5965): the lead marked the message as spam."""
    return _crlf(
        "From: Mail Feedback <feedback@fbl.example.net>\n"
        f"To: {to}\nSubject: Complaint about a message\n"
        f"Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <arf-{lead}>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=feedback-report;\n"
        '\tboundary="arf"\n\n'
        "--arf\nContent-Type: text/plain; charset=us-ascii\n\n"
        "This is an email abuse report for a message received from IP 198.51.100.7.\n\n"
        "--arf\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: abuse\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
        f"Original-Mail-From: <{to}>\nOriginal-Rcpt-To: <{lead}>\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:00:05 +0000\nSource-IP: 198.51.100.7\n\n"
        "--arf\nContent-Type: text/rfc822-headers\n\n"
        f"From: Ada <{to}>\nTo: {lead}\nSubject: Hello\nMessage-ID: {message_id}\n\n"
        "--arf--\n"
    )


def unquoting_dsn(lead: str, to: str) -> bytes:
    """Postfix's report without the returned headers: it quotes none of our Message-IDs,
    so anyone who knows the lead's address can write it."""
    whole = postfix_dsn(lead, to, "<unused@nowhere.example>")
    kept, _, _ = whole.partition(
        b"--1A2B3C.1700000000/mail.sender.example.com\r\n"
        b"Content-Description: Undelivered Message Headers"
    )
    return kept + b"--1A2B3C.1700000000/mail.sender.example.com--\r\n"


def token_only_dsn(
    lead: str, envelope_sender: str, *, status: str = "5.1.1", to: str | None = None
) -> bytes:
    """A report that names the send only by the VERP address it was delivered to.

    No returned headers, no Message-ID of the original, none of its own: only
    ``Delivered-To`` (and ``To``, unless ``to`` is given) hold ``envelope_sender``.
    """
    diagnostic = {
        "5.1.1": f"550 5.1.1 <{lead}>: Recipient address rejected: User unknown",
        "4.2.2": f"452 4.2.2 <{lead}>: Mailbox full",
        "5.7.1": "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using "
        "zen.spamhaus.org",
    }[status]
    return _crlf(
        f"Delivered-To: {envelope_sender}\nReturn-Path: <>\n"
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        f"To: {to or envelope_sender}\nSubject: Undelivered Mail Returned to Sender\n"
        "Date: Tue, 24 Nov 2026 11:00:00 +0000\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\n\n'
        "--r\nContent-Type: text/plain; charset=us-ascii\n\n"
        "Your message could not be delivered.\n\n"
        "--r\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {lead}\n"
        f"Action: {'delayed' if status.startswith('4') else 'failed'}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n\n--r--\n"
    )
