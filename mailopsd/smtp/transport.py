"""SMTP delivery, one kept-open connection per credential, and the sandbox.

Each send ends in one outcome. Before the server answers ``354`` to ``DATA`` nothing can
have been delivered, so a failure there is ``not_sent`` (or ``deferred``/``rejected`` when
the server said so for the recipient). A 421, the server hanging up, is ``not_sent`` at
any stage. Once the message body is on its way, a broken connection is ``unknown``: the
message may have been accepted, so it is never sent again.
TLS is never downgraded: a server that does not offer STARTTLS when it is required gets
no password. Server text in outcomes is capped and stripped of line breaks.
A username or password beyond ASCII logs in with AUTH PLAIN in UTF-8 (RFC 4616); a
server that does not offer PLAIN is not sent it, and the send is a login failure that
says why. Any other exception is an outcome too, by the stage it came from, named by its
type and place only: its text may quote what it choked on, a password included.

When the server offers ``PIPELINING`` (RFC 2920), ``MAIL``, ``RCPT`` and ``DATA`` go in one
write and their replies are read in order, and the envelope of the credential's next
message goes in the same write as this message's body (RFC 2920 allows message content
first in a group): about one round trip per message instead of four. A body is sent only
after its ``354``. When the server says ``354`` although the recipient was refused, or
the next message is not to be sent after all (the batch stopped), the connection is
closed without the final dot, so nothing is delivered. A message with a BCC copy sends
``DATA`` only after the lead's ``RCPT`` was accepted, as without pipelining. A server
that refuses an envelope sent ahead gets it again on a fresh connection, and no more
envelopes ahead.

A credential's connection stays open for its next batch, but only the ``keep_open``
most recently used idle ones do: a fleet of thousands of mailboxes on one relay would
otherwise hold a connection per mailbox, beyond what the relay serves at once (Postfix's
``smtp-sink`` serves 256) and beyond the process's open-file limit (1,024 under systemd).
"""

from __future__ import annotations

import base64
import mailbox
import re
import smtplib
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mailopsd.config.models import Credential
from mailopsd.config.scalars import is_loopback_host
from mailopsd.errors import describe_unexpected
from mailopsd.lifecycle import SendOutcome
from mailopsd.refs import CredentialRef
from mailopsd.smtp.message import Outgoing
from mailopsd.state.errors import storage_error

__all__ = ["Outcome", "SandboxTransport", "SmtpTransport"]

_DETAIL_MAX = 200
_CLOSING = 421  # "service not available, closing transmission channel" (RFC 5321 3.8)


@dataclass(frozen=True)
class Outcome:
    """The end of one send: kind, SMTP code if any, a short detail.

    ``kind`` is never ``SendOutcome.PENDING``: that is the ledger's word for a send
    whose end is not known yet.
    """

    kind: SendOutcome
    code: int | None = None
    detail: str = ""


def _detail(text: object) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    flat = " ".join(raw.split())
    return flat if len(flat) <= _DETAIL_MAX else flat[: _DETAIL_MAX - 1] + "…"


# RFC 3463 enhanced status codes saying an address itself is malformed: 5.1.3 "bad
# destination mailbox address syntax", 5.5.2 "syntax error", 5.5.4 "invalid command
# arguments". Without one, a 501 says the same ("syntax error in parameters or
# arguments", RFC 5321 4.2.3); other codes without one stay bounces.
_SYNTAX_STATUS = re.compile(rb"\s*5\.(?:1\.3|5\.[24])(?!\d)")
_ANY_STATUS = re.compile(rb"\s*[245]\.\d{1,3}\.\d{1,3}(?!\d)")
_SYNTAX_ERROR = 501


def _is_syntax_refusal(code: int, text: bytes) -> bool:
    """Whether a 5xx reply to ``RCPT`` says the recipient's address is malformed."""
    if not 500 <= code < 600:
        return False
    if _SYNTAX_STATUS.match(text):
        return True
    return code == _SYNTAX_ERROR and not _ANY_STATUS.match(text)


def _reply(code: int, text: object) -> Outcome:
    if 200 <= code < 300:
        return Outcome(SendOutcome.SENT, code, _detail(text))
    if code == _CLOSING:  # the server's trouble, whatever the command: not the lead's
        return Outcome(SendOutcome.NOT_SENT, code, _detail(text))
    kind = SendOutcome.DEFERRED if 400 <= code < 500 else SendOutcome.BOUNCED
    return Outcome(kind, code, _detail(text))


class _NoStartTls(smtplib.SMTPException):
    """The server does not offer STARTTLS, which the credential requires."""


class _LoginImpossible(smtplib.SMTPException):
    """The login cannot be sent in a way the server takes; nothing of it was sent."""


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in; a username or password beyond ASCII goes as AUTH PLAIN in UTF-8.

    smtplib encodes every AUTH exchange as ASCII and raises on anything else, so this
    one exchange is written here: RFC 4616 defines PLAIN's strings as UTF-8, while LOGIN
    and CRAM-MD5 define no encoding, so they are not tried with such a login.

    Raises:
        SMTPAuthenticationError: The server refused the login.
        _LoginImpossible: The login has non-ASCII characters and the server offers no
            PLAIN.
    """
    if username.isascii() and password.isascii():
        smtp.login(username, password)
        return
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in offered:
        raise _LoginImpossible(
            "the SMTP username or password has non-ASCII characters, which mailopsd sends "
            "only with AUTH PLAIN (UTF-8, RFC 4616), and this server offers AUTH "
            f"{_detail(' '.join(offered))}; use an ASCII password for this mailbox, or a "
            "server that offers AUTH PLAIN"
        )
    response = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {response}")
    if code == 334:  # a server that ignores the initial response asks for it (RFC 4954)
        code, reply = smtp.docmd(response)
    if code not in (235, 503):  # 503: already logged in
        raise smtplib.SMTPAuthenticationError(code, reply)


def _failure(err: BaseException) -> str:
    """What an outcome says of an exception.

    SMTP and network errors give their own text (server text, capped); any other
    exception gives its type and place only.
    """
    cause = err.__cause__ or err
    if isinstance(cause, OSError | smtplib.SMTPException | _BeforeDataError):
        return _detail(cause)
    return f"unexpected {describe_unexpected(cause)}"


_LINE_DOT = re.compile(rb"(?m)^\.")


def _data_payload(data: bytes) -> bytes:
    """The message as ``DATA`` carries it: leading dots doubled, then the final dot."""
    if data.startswith(b".") or b"\n." in data:
        data = _LINE_DOT.sub(b"..", data)
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
    # Postfix takes 50 connections from one client at a time by default
    # (smtpd_client_connection_count_limit): the dispatcher's eight sending threads and
    # these idle ones stay under it.
    keep_open: int = 32
    _connections: dict[CredentialRef, smtplib.SMTP] = field(default_factory=dict)
    _idle: OrderedDict[CredentialRef, None] = field(default_factory=OrderedDict)
    _idle_lock: threading.Lock = field(default_factory=threading.Lock)
    _contexts: dict[tuple[str, int, int] | None, ssl.SSLContext] = field(default_factory=dict)
    _contexts_lock: threading.Lock = field(default_factory=threading.Lock)
    _ahead: dict[CredentialRef, tuple[Outgoing, int]] = field(default_factory=dict)
    _no_ahead: set[CredentialRef] = field(default_factory=set)

    def _context(self, ca_file: Path | None) -> ssl.SSLContext:
        """A verifying TLS context for ``ca_file`` (else the system's CAs), made once.

        Loading the system's CA bundle takes tens of milliseconds: one context serves
        every connection. A CA file is read again when it changes on disk.
        """
        key = None
        if ca_file is not None:
            info = ca_file.stat()
            key = (str(ca_file), info.st_mtime_ns, info.st_size)
        with self._contexts_lock:
            context = self._contexts.get(key)
            if context is None:
                context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
                self._contexts[key] = context
        return context

    def _connect(self, credential: Credential, ca_file: Path | None) -> smtplib.SMTP:
        mode = credential.smtp_tls_mode
        context = self._context(ca_file) if mode != "none" else None
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
                _login(
                    smtp,
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
        self, key: CredentialRef, credential: Credential, ca_file: Path | None
    ) -> smtplib.SMTP:
        with self._idle_lock:  # in use again: no other thread may close it now
            self._idle.pop(key, None)
        smtp = self._connections.get(key)
        if smtp is None:
            smtp = self._connect(credential, ca_file)
            self._connections[key] = smtp
        return smtp

    def release(self, key: CredentialRef) -> None:
        """Done with a credential's batch: keep its connection open for the next one.

        Beyond ``keep_open`` idle connections, the least recently used are closed (this
        one too when ``keep_open`` is 0). Call it once the batch is over; a connection
        taken again for a batch is never closed from another thread.
        """
        self.settle(key)
        closing: list[smtplib.SMTP] = []
        with self._idle_lock:
            if key in self._connections:
                self._idle[key] = None
                self._idle.move_to_end(key)
            while len(self._idle) > self.keep_open:
                oldest, _ = self._idle.popitem(last=False)
                smtp = self._connections.pop(oldest, None)
                if smtp is not None:
                    closing.append(smtp)
        for smtp in closing:
            _close(smtp)

    def drop(self, key: CredentialRef) -> None:
        """Close a credential's connection (after an error, or when it changed)."""
        with self._idle_lock:
            self._idle.pop(key, None)
        if key in self._ahead:  # a DATA may be open: QUIT would be message text
            self._abandon(key)
            return
        smtp = self._connections.pop(key, None)
        if smtp is not None:
            _close(smtp)

    def close_all(self) -> None:
        """Close every connection."""
        for key in list(self._connections):
            self.drop(key)

    def _abandon(self, key: CredentialRef) -> None:
        """Close a connection at once, without QUIT: an open ``DATA`` gets no final dot."""
        self._ahead.pop(key, None)
        smtp = self._connections.pop(key, None)
        if smtp is not None:
            smtp.close()

    def settle(self, key: CredentialRef) -> None:
        """Call off the envelope sent ahead for a message that will not be sent now."""
        ahead = self._ahead.pop(key, None)
        smtp = self._connections.get(key)
        if ahead is None or smtp is None:
            return
        try:
            replies = [smtp.getreply() for _ in range(ahead[1])]
            if len(ahead[0].recipients) == 1 and replies[-1][0] == 354:
                self._abandon(key)
            else:
                smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._abandon(key)

    def deliver(
        self,
        key: CredentialRef,
        credential: Credential,
        ca_file: Path | None,
        outgoing: Outgoing,
        then: Outgoing | None = None,
    ) -> Outcome:
        """Send one message; never raises for SMTP or network trouble.

        ``then`` is the message this credential sends next, if it is known: its envelope
        goes ahead with this message's body. Send it next, or call :meth:`settle`.
        """
        if key in self._ahead and self._ahead[key][0] is not outgoing:
            self.settle(key)
        for attempt in (1, 2):
            outcome = self._attempt(key, credential, ca_file, outgoing, then, last=attempt == 2)
            if outcome is not None:
                return outcome
        return Outcome(SendOutcome.NOT_SENT, None, "no connection")  # pragma: no cover

    def _open(
        self, key: CredentialRef, credential: Credential, ca_file: Path | None
    ) -> smtplib.SMTP | Outcome:
        """The credential's connection, opened and logged in if need be; else the outcome."""
        try:
            return self._session(key, credential, ca_file)
        except smtplib.SMTPAuthenticationError as err:
            return Outcome(SendOutcome.AUTH_FAILED, err.smtp_code, _detail(err.smtp_error))
        except _LoginImpossible as err:
            return Outcome(SendOutcome.AUTH_FAILED, None, str(err))
        except (OSError, smtplib.SMTPException) as err:
            code = getattr(err, "smtp_code", None)
            return Outcome(SendOutcome.NOT_SENT, code, _detail(getattr(err, "smtp_error", err)))
        except Exception as err:  # a misbehaving server, or a bug: this mailbox's trouble
            return Outcome(
                SendOutcome.NOT_SENT,
                None,
                f"unexpected {describe_unexpected(err)} while connecting or logging in; "
                "nothing was sent (a misbehaving server, or a bug to report)",
            )

    def _attempt(
        self,
        key: CredentialRef,
        credential: Credential,
        ca_file: Path | None,
        outgoing: Outgoing,
        then: Outgoing | None,
        *,
        last: bool,
    ) -> Outcome | None:
        """One try on the credential's connection; ``None``: try once more, afresh."""
        fresh = key not in self._connections
        ahead = self._ahead.pop(key, (None, 0))[1]
        smtp = self._open(key, credential, ca_file)
        if isinstance(smtp, Outcome):
            return smtp
        send_ahead = then if key not in self._no_ahead else None
        try:
            outcome, usable, sent_ahead = self._transaction(smtp, outgoing, ahead, send_ahead)
        except _BeforeDataError as err:
            self._abandon(key)
            if ahead:  # refused or lost when sent ahead: once more, alone, and no more ahead
                self._no_ahead.add(key)
                return None
            if fresh or last:  # a reused connection may have timed out: once more
                return Outcome(SendOutcome.NOT_SENT, None, _failure(err))
            return None
        except _AfterDataError as err:
            self._abandon(key)
            return Outcome(SendOutcome.UNKNOWN, None, _failure(err))
        if not usable:
            self._abandon(key)
        elif sent_ahead and then is not None:
            self._ahead[key] = (then, sent_ahead)
        return outcome

    def _envelope(
        self, smtp: smtplib.SMTP, commands: list[str], ahead: int
    ) -> list[tuple[int, bytes]]:
        """Send the envelope's commands (unless sent ahead); return their replies.

        Pipelined when the server offers it; else one command at a time, stopping at the
        first refusal as a client without pipelining does.
        """
        if ahead:
            return _replies(smtp, ahead)
        if smtp.has_extn("pipelining"):
            smtp.send("".join(f"{command}\r\n" for command in commands).encode("ascii"))
            return _replies(smtp, len(commands))
        replies: list[tuple[int, bytes]] = []
        for command in commands:
            smtp.putcmd(command)
            replies.append(smtp.getreply())
            if _refusal(replies) is not None or replies[-1][0] == _CLOSING:
                break
        return replies

    def _transaction(
        self, smtp: smtplib.SMTP, outgoing: Outgoing, ahead: int, then: Outgoing | None
    ) -> tuple[Outcome, bool, int]:
        """One message on an open connection.

        Returns:
            The outcome, whether the connection stays usable, and how many replies the
            envelope of ``then`` sent ahead awaits (0: none was sent).
        """
        try:
            replies = self._envelope(smtp, _commands(outgoing), ahead)
            if replies[-1][0] == _CLOSING:  # the server says no more, and hangs up
                return _reply(*replies[-1]), False, 0
            if ahead and replies[0][0] != 250:
                raise _BeforeDataError("the envelope sent ahead was refused")
            sent_data = len(replies) == len(outgoing.recipients) + 2  # DATA's reply is last
            in_data = sent_data and replies[-1][0] == 354
            refusal = _refusal(replies)
            if refusal is not None:
                if in_data:  # a server that took DATA with no recipient: never send a body
                    return refusal, False, 0
                smtp.rset()
                return refusal, True, 0
            code, text = replies[-1] if sent_data else smtp.docmd("DATA")
            if code != 354:
                if code != _CLOSING:
                    smtp.rset()
                return _reply(code, text), code != _CLOSING, 0
        except Exception as err:  # whatever it was, no body was sent
            raise _BeforeDataError from err
        payload = _data_payload(outgoing.data)
        following = _commands(then) if then is not None and smtp.has_extn("pipelining") else []
        if following:
            payload += "".join(f"{command}\r\n" for command in following).encode("ascii")
        try:
            smtp.send(payload)
            code, text = smtp.getreply()
        except Exception as err:  # whatever it was, the body may have been delivered
            raise _AfterDataError from err
        return _reply(code, text), code != _CLOSING, len(following)


def _replies(smtp: smtplib.SMTP, count: int) -> list[tuple[int, bytes]]:
    """Up to ``count`` replies: none is read after a 421, as the server hangs up then."""
    replies = [smtp.getreply()]
    while len(replies) < count and replies[-1][0] != _CLOSING:
        replies.append(smtp.getreply())
    return replies


def _commands(outgoing: Outgoing) -> list[str]:
    """``MAIL``, every ``RCPT`` and, for a single recipient, ``DATA``."""
    commands = [f"MAIL FROM:<{outgoing.envelope_from}>"]
    commands += [f"RCPT TO:<{address}>" for address in outgoing.recipients]
    if len(outgoing.recipients) == 1:
        commands.append("DATA")
    return commands


def _refusal(replies: list[tuple[int, bytes]]) -> Outcome | None:
    """The outcome when ``MAIL`` or the lead's ``RCPT`` was refused, else ``None``.

    A refused BCC copy does not stop the lead's message. A ``RCPT`` refused because
    the address is malformed is ``invalid``, not a bounce.
    """
    code, text = replies[0]
    if code != 250:
        outcome = _reply(code, text)
        return Outcome(SendOutcome.NOT_SENT if code >= 500 else outcome.kind, code, outcome.detail)
    if len(replies) > 1 and replies[1][0] not in (250, 251):
        outcome = _reply(*replies[1])
        if _is_syntax_refusal(*replies[1]):
            return Outcome(SendOutcome.INVALID, outcome.code, outcome.detail)
        return outcome
    return None


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
        self, key: CredentialRef, credential: Credential, ca_file: Path | None, outgoing: Outgoing
    ) -> Outcome:
        """Write the message to ``<root>/<campaign>/<credential>/`` (a Maildir).

        Raises:
            StorageError: The state directory refused the write (full, read-only): like
                the ledger refusing one, it pauses the work.
        """
        del credential, ca_file
        directory = self.root / key[0] / key[1]
        try:
            directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            box = mailbox.Maildir(directory, create=True)
            box.add(outgoing.data)
        except OSError as err:
            raise storage_error(err) from err
        return Outcome(SendOutcome.SENT, 250, "sandbox")
