"""A message ready for SMTP: its wire form and its envelope.

What composing makes (a campaign step, a forwarded report) and what a transport sends.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outgoing"]


@dataclass(frozen=True)
class Outgoing:
    """A composed message and its envelope.

    Attributes:
        data: The whole message as sent (headers and body, CRLF line ends), before the
            SMTP dot-stuffing.
        message_id: Its ``Message-ID``, angle brackets included.
        subject: Its subject (decoded).
        envelope_from: ``MAIL FROM``.
        recipients: ``RCPT TO``: the lead first, then the BCC copy if any.
    """

    data: bytes
    message_id: str
    subject: str
    envelope_from: str
    recipients: tuple[str, ...]
