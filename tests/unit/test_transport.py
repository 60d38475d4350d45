"""SMTP transport against a scripted server: pipelining, refusals, dot-stuffing."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from mailopsd.config.models import Campaign, Credential
from mailopsd.dispatch.compose import compose
from mailopsd.lifecycle import SendOutcome
from mailopsd.smtp.message import Outgoing
from mailopsd.smtp.transport import SmtpTransport
from tests.configs import CANARY_NON_ASCII, traces_in
from tests.dispatch_setup import credential
from tests.servers.smtp import BadChallengeHandler, SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

KEY = ("camp", "a")


@dataclass
class Scripted:
    """A one-connection-at-a-time SMTP server on loopback that does as it is told.

    ``pipelining``: announce PIPELINING. ``hold``: answer nothing after ``MAIL`` until the
    whole envelope (through ``DATA``) arrived, as only a pipelining client sends it.
    ``hold_body``: answer a body only once the next message's envelope arrived too (until
    ``expect`` messages were received), as only a client sending envelopes ahead does.
    ``refuse``: the reply to ``RCPT`` per address. ``mail_replies``: the replies to the
    next ``MAIL`` commands (then 250). ``always_354``: answer ``DATA`` with 354 even with no
    recipient accepted (a broken server).
    """

    pipelining: bool = True
    hold: bool = False
    hold_body: bool = False
    expect: int = 0
    refuse: dict[str, str] = field(default_factory=dict)
    mail_replies: list[str] = field(default_factory=list)
    always_354: bool = False
    received: list[bytes] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)  # commands read together with each MAIL
    connections: int = 0
    listener: socket.socket = field(default_factory=socket.socket)
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> int:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(0.05)
        self.thread = threading.Thread(target=self._serve, name="scripted-smtp")
        self.thread.start()
        return int(self.listener.getsockname()[1])

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            # A client that hung up first makes even the closing flush fail: the server
            # goes on to the next connection all the same.
            with (
                contextlib.suppress(OSError, ValueError),
                connection,
                connection.makefile("rwb") as stream,
            ):
                connection.settimeout(5)
                _Session(self, stream).run()


@dataclass
class _Session:
    server: Scripted
    stream: Any
    pending: list[bytes] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)

    def reply(self, line: str) -> None:
        self.stream.write(f"{line}\r\n".encode())
        self.stream.flush()

    def line(self) -> bytes:
        return self.pending.pop(0) if self.pending else bytes(self.stream.readline())

    def envelope_ahead(self) -> list[bytes]:
        """Read the lines of an envelope, through DATA, before answering any of them."""
        group = [self.line()]
        while group[-1] and not group[-1].upper().startswith(b"DATA"):
            group.append(self.line())
        return group

    def run(self) -> None:
        server = self.server
        self.reply("220 scripted ESMTP")
        while line := self.line():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-scripted")
                self.reply("250-PIPELINING" if server.pipelining else "250-8BITMIME")
                self.reply("250 SIZE 1000000")
            elif verb == "MAIL":
                if server.hold and not self.pending:
                    self.pending = [line, *self.envelope_ahead()][1:]
                server.reads.append(1 + len(self.pending))
                self.accepted.clear()
                self.reply(server.mail_replies.pop(0) if server.mail_replies else "250 2.1.0 Ok")
            elif verb == "RCPT":
                self.rcpt(command.split("<", 1)[1].rstrip(">"))
            elif verb == "DATA":
                self.data()
            elif verb == "RSET":
                self.accepted.clear()
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 What")

    def rcpt(self, address: str) -> None:
        answer = self.server.refuse.get(address, "250 2.1.5 Ok")
        if answer.startswith("250"):
            self.accepted.append(address)
        self.reply(answer)

    def data(self) -> None:
        server = self.server
        if not self.accepted and not server.always_354:
            self.reply("554 5.5.1 No valid recipients")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        lines = []
        while (line := self.stream.readline()) != b".\r\n":
            if not line:
                raise ValueError("the client left in the middle of DATA")
            lines.append(line[1:] if line.startswith(b"..") else line)
        server.received.append(b"".join(lines))
        if server.hold_body and len(server.received) < server.expect:
            self.pending = self.envelope_ahead()
        self.reply("250 2.0.0 Queued")


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    yield scripted
    scripted.stop()


def _setup(server: Scripted, bcc: str | None = None) -> tuple[Credential, Campaign]:
    port = server.start()
    campaign = Campaign.model_validate(
        {
            "name": "c",
            "leads": "l.csv",
            "sequence": [{"subject": "Hello", "body": "b"}],
            "smtp_credentials": {
                "a": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "smtp_username": "u",
                    "smtp_password": "p",
                    "from_name": "Ada",
                    "from_email": "ada@sender.example.com",
                    "daily_limit": 10,
                    "tls": "none",
                    **({"bcc": bcc} if bcc else {}),
                }
            },
        }
    )
    return campaign.smtp_credentials["a"], campaign


def _outgoing(campaign: Campaign, address: str, body: str = "Hi.\n") -> Outgoing:
    return compose(
        campaign,
        campaign.smtp_credentials["a"],
        step_index=0,
        body_template=body,
        email=address,
        fields={},
        first_subject=None,
        earlier_ids=(),
        now=datetime(2026, 11, 23, tzinfo=UTC),
        token=address.split("@")[0],
    )


def test_pipelined_envelope_then_body(server: Scripted) -> None:
    """With PIPELINING, MAIL, RCPT and DATA go out together (the server waits for all)."""
    server.hold = True
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3)
    try:
        for n in range(3):
            outcome = transport.deliver(KEY, credential, None, _outgoing(campaign, f"l{n}@x.test"))
            assert outcome.kind == SendOutcome.SENT
    finally:
        transport.close_all()
    assert len(server.received) == 3
    assert server.reads == [3, 3, 3]
    assert server.connections == 1


def test_without_pipelining_one_command_at_a_time(server: Scripted) -> None:
    server.pipelining = False
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3)
    try:
        outcome = transport.deliver(KEY, credential, None, _outgoing(campaign, "l@x.test"))
    finally:
        transport.close_all()
    assert outcome.kind == SendOutcome.SENT
    assert len(server.received) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_refused_recipient_is_a_bounce_and_the_connection_goes_on(
    server: Scripted, pipelining: bool
) -> None:
    server.pipelining = pipelining
    server.refuse = {"bad@x.test": "550 5.1.1 No such user"}
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3)
    try:
        bad = transport.deliver(KEY, credential, None, _outgoing(campaign, "bad@x.test"))
        good = transport.deliver(KEY, credential, None, _outgoing(campaign, "good@x.test"))
    finally:
        transport.close_all()
    assert (bad.kind, bad.code) == (SendOutcome.BOUNCED, 550)
    assert good.kind == SendOutcome.SENT
    assert len(server.received) == 1
    assert server.connections == 1


def test_354_without_recipient_never_gets_a_body(server: Scripted) -> None:
    """A server that takes DATA after refusing the recipient: the connection is closed
    without the final dot, so nothing is delivered; the next send reconnects."""
    server.refuse = {"bad@x.test": "550 5.1.1 No such user"}
    server.always_354 = True
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3)
    try:
        bad = transport.deliver(KEY, credential, None, _outgoing(campaign, "bad@x.test"))
        good = transport.deliver(KEY, credential, None, _outgoing(campaign, "good@x.test"))
    finally:
        transport.close_all()
    assert (bad.kind, bad.code) == (SendOutcome.BOUNCED, 550)
    assert good.kind == SendOutcome.SENT
    assert len(server.received) == 1
    assert b"good@x.test" in server.received[0]
    assert server.connections == 2


def test_bcc_waits_for_the_lead_recipient(server: Scripted) -> None:
    """With a BCC copy, DATA waits for the RCPT replies: a refused lead sends nothing,
    not even the copy; a refused copy does not stop the lead's message."""
    server.refuse = {"bad@x.test": "550 5.1.1 No such user"}
    server.always_354 = True
    credential, campaign = _setup(server, bcc="copy@sender.example.com")
    transport = SmtpTransport(timeout_s=3)
    try:
        bad = transport.deliver(KEY, credential, None, _outgoing(campaign, "bad@x.test"))
        server.refuse = {"copy@sender.example.com": "550 5.1.1 No"}
        good = transport.deliver(KEY, credential, None, _outgoing(campaign, "good@x.test"))
    finally:
        transport.close_all()
    assert bad.kind == SendOutcome.BOUNCED
    assert good.kind == SendOutcome.SENT
    assert len(server.received) == 1
    assert server.connections == 1


def test_dots_are_stuffed(server: Scripted) -> None:
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3)
    body = ".\n..two\n.three\n"
    try:
        outgoing = _outgoing(campaign, "l@x.test", body="{% raw %}" + body + "{% endraw %}")
        assert transport.deliver(KEY, credential, None, outgoing).kind == SendOutcome.SENT
    finally:
        transport.close_all()
    assert server.received == [outgoing.data]


def test_next_envelope_goes_with_the_body(server: Scripted) -> None:
    """Given the next message, its envelope goes out with this one's body (the server
    answers a body only once the next envelope is there)."""
    server.hold_body, server.expect = True, 3
    credential, campaign = _setup(server)
    outgoing = [_outgoing(campaign, f"l{n}@x.test") for n in range(3)]
    transport = SmtpTransport(timeout_s=3)
    try:
        outcomes = [
            transport.deliver(KEY, credential, None, message, then)
            for message, then in zip(outgoing, [*outgoing[1:], None], strict=True)
        ]
    finally:
        transport.close_all()
    assert [o.kind for o in outcomes] == [SendOutcome.SENT] * 3
    assert server.received == [message.data for message in outgoing]
    assert server.connections == 1


def test_envelope_ahead_called_off(server: Scripted) -> None:
    """A message whose envelope went ahead but that is not sent after all (the batch
    stopped) is never delivered: its DATA is left without a body."""
    credential, campaign = _setup(server)
    first, second, third = (_outgoing(campaign, f"l{n}@x.test") for n in range(3))
    transport = SmtpTransport(timeout_s=3)
    try:
        assert transport.deliver(KEY, credential, None, first, second).kind == SendOutcome.SENT
        transport.settle(KEY)
        assert transport.deliver(KEY, credential, None, third).kind == SendOutcome.SENT
    finally:
        transport.close_all()
    assert server.received == [first.data, third.data]
    assert server.connections == 2


def test_envelope_ahead_refused_goes_again_alone(server: Scripted) -> None:
    """A server that refuses an envelope sent ahead gets it again on a fresh connection,
    and no more envelopes ahead."""
    server.mail_replies = ["250 2.1.0 Ok", "503 5.5.1 Error: improper pipelining"]
    credential, campaign = _setup(server)
    outgoing = [_outgoing(campaign, f"l{n}@x.test") for n in range(4)]
    transport = SmtpTransport(timeout_s=3)
    try:
        outcomes = [
            transport.deliver(KEY, credential, None, message, then)
            for message, then in zip(outgoing, [*outgoing[1:], None], strict=True)
        ]
    finally:
        transport.close_all()
    assert [o.kind for o in outcomes] == [SendOutcome.SENT] * 4
    assert server.received == [message.data for message in outgoing]
    assert server.connections == 2
    assert len(server.reads) == 5  # four envelopes, and the one refused ahead
    assert KEY in transport._no_ahead


@pytest.mark.parametrize("pipelining", [True, False])
def test_421_at_mail_is_the_servers_trouble(server: Scripted, pipelining: bool) -> None:
    """A 421 to MAIL (the server hangs up) is ``not_sent`` with the server's words, not a
    deferral charged to the lead: no body goes out, and the next send reconnects."""
    server.pipelining = pipelining
    server.mail_replies = ["421 4.7.0 Try again later, closing connection"]
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3)
    try:
        refused = transport.deliver(KEY, credential, None, _outgoing(campaign, "a@x.test"))
        accepted = transport.deliver(KEY, credential, None, _outgoing(campaign, "b@x.test"))
    finally:
        transport.close_all()
    assert (refused.kind, refused.code) == (SendOutcome.NOT_SENT, 421)
    assert refused.detail == "4.7.0 Try again later, closing connection"
    assert accepted.kind == SendOutcome.SENT
    assert len(server.received) == 1
    assert b"b@x.test" in server.received[0]
    assert server.connections == 2


def test_idle_connections_beyond_keep_open_are_closed(server: Scripted) -> None:
    """Connections released beyond ``keep_open`` are closed, so a server that serves fewer
    connections at once than there are credentials still gets every credential's mail."""
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3, keep_open=0)
    try:
        outcomes = []
        for name in ("a", "b", "c"):
            key = ("camp", name)
            outgoing = _outgoing(campaign, f"{name}@x.test")
            outcomes.append(transport.deliver(key, credential, None, outgoing))
            transport.release(key)
    finally:
        transport.close_all()
    assert [o.kind for o in outcomes] == [SendOutcome.SENT] * 3
    assert len(server.received) == 3
    assert server.connections == 3


def test_released_connection_serves_the_next_batch(server: Scripted) -> None:
    """Within ``keep_open``, a released connection stays open for the credential's next
    batch."""
    credential, campaign = _setup(server)
    transport = SmtpTransport(timeout_s=3, keep_open=1)
    try:
        for address in ("a@x.test", "b@x.test"):
            outcome = transport.deliver(KEY, credential, None, _outgoing(campaign, address))
            assert outcome.kind == SendOutcome.SENT
            transport.release(KEY)
    finally:
        transport.close_all()
    assert len(server.received) == 2
    assert server.connections == 1


def _credential_on(server: SmtpServer, login: str, password: str) -> tuple[Credential, Campaign]:
    """Credential ``a`` logging in to an aiosmtpd server as ``login`` with ``password``."""
    box = credential(server, login, smtp_password=password, from_email="ada@example.com")
    campaign = Campaign.model_validate(
        {
            "name": "c",
            "leads": "l.csv",
            "sequence": [{"subject": "Hello", "body": "b"}],
            "smtp_credentials": {"a": box},
        }
    )
    return campaign.smtp_credentials["a"], campaign


@pytest.mark.parametrize(
    ("login", "password"),
    [("ada", CANARY_NON_ASCII), ("adä-ü", "pw-ascii")],
    ids=["password", "username"],
)
def test_non_ascii_login_goes_as_utf8_auth_plain(
    test_ca: TestCA, login: str, password: str
) -> None:
    """A username or password beyond ASCII logs in with AUTH PLAIN in UTF-8, and sends."""
    server = start_smtp(test_ca, {login: password})
    transport = SmtpTransport(timeout_s=10)
    try:
        box, campaign = _credential_on(server, login, password)
        outcome = transport.deliver(
            KEY, box, server.ca.ca_file, _outgoing(campaign, "lead@example.net")
        )
    finally:
        transport.close_all()
        server.controller.stop()
    assert outcome.kind == SendOutcome.SENT, outcome
    assert [message.login for message in server.handler.messages] == [login]


def test_non_ascii_password_without_auth_plain_is_a_clear_login_failure(test_ca: TestCA) -> None:
    """A server offering only AUTH LOGIN gets no non-ASCII password: the send is a login
    failure saying why and what to do, and shows nothing of the password."""
    server = start_smtp(test_ca, {"ada": CANARY_NON_ASCII}, without_auth=("PLAIN",))
    transport = SmtpTransport(timeout_s=10)
    try:
        box, campaign = _credential_on(server, "ada", CANARY_NON_ASCII)
        outcome = transport.deliver(
            KEY, box, server.ca.ca_file, _outgoing(campaign, "lead@example.net")
        )
    finally:
        transport.close_all()
        server.controller.stop()
    assert outcome.kind == SendOutcome.AUTH_FAILED
    assert outcome.detail == (
        "the SMTP username or password has non-ASCII characters, which mailopsd sends "
        "only with AUTH PLAIN (UTF-8, RFC 4616), and this server offers AUTH LOGIN; "
        "use an ASCII password for this mailbox, or a server that offers AUTH PLAIN"
    )
    assert not traces_in(CANARY_NON_ASCII, [outcome.detail])
    assert server.handler.messages == []


def test_bad_auth_challenge_is_not_sent_and_raises_nothing(test_ca: TestCA) -> None:
    """A server whose AUTH challenge is not base64 makes the send ``not_sent`` with a
    one-line reason; nothing escapes the transport."""
    server = start_smtp(test_ca, {"ada": "pw-ada"}, handler_class=BadChallengeHandler)
    transport = SmtpTransport(timeout_s=10)
    try:
        box, campaign = _credential_on(server, "ada", "pw-ada")
        outcome = transport.deliver(
            KEY, box, server.ca.ca_file, _outgoing(campaign, "lead@example.net")
        )
    finally:
        transport.close_all()
        server.controller.stop()
    assert outcome.kind == SendOutcome.NOT_SENT
    assert outcome.detail.startswith("unexpected binascii.Error at base64.py:")
    assert outcome.detail.endswith(
        " while connecting or logging in; nothing was sent (a misbehaving server, or a bug "
        "to report)"
    )
    assert "pw-ada" not in outcome.detail
    assert server.handler.messages == []
