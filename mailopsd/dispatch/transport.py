"""SMTP delivery, one kept-open connection per credential, and the sandbox.

Each send ends in one outcome. Before the server answers ``354`` to ``DATA`` nothing can
have been delivered, so a failure there is ``not_sent`` (or ``deferred``/``rejected`` when
the server said so for the recipient). Once the message body is on its way, a broken
connection is ``unknown``: the message may have been accepted, so it is never sent again.
TLS is never downgraded: a server that does not offer STARTTLS when it is required gets
no password. Server text in outcomes is capped and stripped of line breaks.
"""

from __future__ import annotations

import mailbox
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mailopsd.config.models import Credential, is_loopback_host
from mailopsd.dispatch.compose import Outgoing, message_bytes

__all__ = ["Outcome", "OutcomeKind", "SandboxTransport", "SmtpTransport", "tls_mode"]

_DETAIL_MAX = 200
CredentialKey = tuple[str, str]


class OutcomeKind(StrEnum):
    """How a send ended."""

    ACCEPTED = "sent"
    DEFERRED = "deferred"
    REJECTED = "bounced"
    NOT_SENT = "not_sent"
    AUTH_FAILED = "auth_failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    """The end of one send: kind, SMTP code if any, a short detail."""

    kind: OutcomeKind
    code: int | None = None
    detail: str = ""


def _detail(text: object) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    flat = " ".join(raw.split())
    return flat if len(flat) <= _DETAIL_MAX else flat[: _DETAIL_MAX - 1] + "…"


def _reply(code: int, text: object) -> Outcome:
    if 200 <= code < 300:
        return Outcome(OutcomeKind.ACCEPTED, code, _detail(text))
    kind = OutcomeKind.DEFERRED if 400 <= code < 500 else OutcomeKind.REJECTED
    return Outcome(kind, code, _detail(text))


def tls_mode(credential: Credential) -> str:
    """``implicit``, ``starttls`` or ``none``: ``auto`` is implicit TLS on 465, else STARTTLS."""
    if credential.tls == "auto":
        return "implicit" if credential.smtp_port == 465 else "starttls"
    return credential.tls


class _NoStartTls(smtplib.SMTPException):
    """The server does not offer STARTTLS, which the credential requires."""


def _message_bytes(outgoing: Outgoing) -> bytes:
    data = message_bytes(outgoing.message)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@dataclass
class SmtpTransport:
    """Delivers over SMTP, keeping one open connection per credential.

    One credential's sends must come from one thread at a time (the dispatcher groups
    them); different credentials may be served concurrently.
    """

    timeout_s: float = 30.0
    _connections: dict[CredentialKey, smtplib.SMTP] = field(default_factory=dict)

    def _connect(self, credential: Credential, ca_file: Path | None) -> smtplib.SMTP:
        mode = tls_mode(credential)
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        source = (credential.source_address, 0) if credential.source_address else None
        host, port = credential.smtp_host, credential.smtp_port
        smtp: smtplib.SMTP
        if mode == "implicit":
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=self.timeout_s, context=context, source_address=source
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=self.timeout_s, source_address=source)
        try:
            smtp.ehlo()
            if mode == "starttls":
                if not smtp.has_extn("starttls"):
                    raise _NoStartTls("the server does not offer STARTTLS; refusing to send")
                smtp.starttls(context=context)
                smtp.ehlo()
            if smtp.has_extn("auth"):
                smtp.login(
                    credential.smtp_username.get_secret_value(),
                    credential.smtp_password.get_secret_value(),
                )
            elif not (mode == "none" and is_loopback_host(host)):
                # Only a local relay without TLS may take mail without a login.
                raise smtplib.SMTPNotSupportedError("the server offers no AUTH; not sending")
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _session(
        self, key: CredentialKey, credential: Credential, ca_file: Path | None
    ) -> smtplib.SMTP:
        smtp = self._connections.get(key)
        if smtp is None:
            smtp = self._connect(credential, ca_file)
            self._connections[key] = smtp
        return smtp

    def drop(self, key: CredentialKey) -> None:
        """Close a credential's connection (after an error, or when it changed)."""
        smtp = self._connections.pop(key, None)
        if smtp is not None:
            _close(smtp)

    def close_all(self) -> None:
        """Close every connection."""
        for key in list(self._connections):
            self.drop(key)

    def deliver(
        self, key: CredentialKey, credential: Credential, ca_file: Path | None, outgoing: Outgoing
    ) -> Outcome:
        """Send one message; never raises for SMTP or network trouble."""
        for attempt in (1, 2):
            fresh = key not in self._connections
            try:
                smtp = self._session(key, credential, ca_file)
            except smtplib.SMTPAuthenticationError as err:
                return Outcome(OutcomeKind.AUTH_FAILED, err.smtp_code, _detail(err.smtp_error))
            except (OSError, smtplib.SMTPException) as err:
                return Outcome(OutcomeKind.NOT_SENT, getattr(err, "smtp_code", None), _detail(err))
            try:
                return self._transaction(smtp, outgoing)
            except _BeforeDataError as err:
                self.drop(key)
                if fresh or attempt == 2:  # a reused connection may have timed out: once more
                    return Outcome(OutcomeKind.NOT_SENT, None, _detail(err.__cause__ or err))
            except _AfterDataError as err:
                self.drop(key)
                return Outcome(OutcomeKind.UNKNOWN, None, _detail(err.__cause__ or err))
        return Outcome(OutcomeKind.NOT_SENT, None, "no connection")  # pragma: no cover

    def _transaction(self, smtp: smtplib.SMTP, outgoing: Outgoing) -> Outcome:
        try:
            code, text = smtp.mail(outgoing.envelope_from)
            if code != 250:
                smtp.rset()
                outcome = _reply(code, text)
                return Outcome(
                    OutcomeKind.NOT_SENT if code >= 500 else outcome.kind, code, outcome.detail
                )
            lead, *others = outgoing.recipients
            code, text = smtp.rcpt(lead)
            if code not in (250, 251):
                smtp.rset()
                return _reply(code, text)
            for other in others:
                smtp.rcpt(other)  # a refused BCC copy does not stop the lead's message
            code, text = smtp.docmd("DATA")
            if code != 354:
                smtp.rset()
                return _reply(code, text)
        except (OSError, smtplib.SMTPException) as err:
            raise _BeforeDataError from err
        try:
            smtp.send(_message_bytes(outgoing))
            code, text = smtp.getreply()
        except (OSError, smtplib.SMTPException) as err:
            raise _AfterDataError from err
        return _reply(code, text)


class _BeforeDataError(Exception):
    """The connection failed before the body was sent: nothing was delivered."""


class _AfterDataError(Exception):
    """The connection failed while the body was sent or its reply awaited."""


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


@dataclass
class SandboxTransport:
    """Writes each message as a Maildir file: the sandbox (delivers nowhere) and archives."""

    root: Path

    def deliver(
        self, key: CredentialKey, credential: Credential, ca_file: Path | None, outgoing: Outgoing
    ) -> Outcome:
        """Write the message to ``<root>/<campaign>/<credential>/`` (a Maildir)."""
        del credential, ca_file
        directory = self.root / key[0] / key[1]
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        box = mailbox.Maildir(directory, create=True)
        box.add(message_bytes(outgoing.message))
        return Outcome(OutcomeKind.ACCEPTED, 250, "sandbox")
