"""In-process SMTP server for tests: aiosmtpd with STARTTLS, AUTH and scripted failures.

``rules[recipient]`` scripts a reply for one recipient:
``("RCPT", "550 5.1.1 No such user")`` at RCPT, ``("DATA", "451 4.3.0 Try later")`` after
the body, ``("DATA_ONCE", "451 …")`` after the body the first time only,
``("DROP_AFTER_DATA", None)`` reads the body and resets the connection before replying.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.tlsca import TestCA, make_ca


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None


@dataclass
class Handler:
    """Accepts and records mail, or answers as ``rules`` say."""

    rules: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _once: set[str] = field(default_factory=set)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rule = self.rules.get(address)
        if rule and rule[0] == "RCPT":
            return str(rule[1])
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        for rcpt in envelope.rcpt_tos:
            kind, arg = self.rules.get(rcpt, ("", None))
            if kind == "DATA":
                return str(arg)
            if kind == "DATA_ONCE" and rcpt not in self._once:
                self._once.add(rcpt)
                return str(arg)
            if kind == "DROP_AFTER_DATA":
                server.transport.abort()  # type: ignore[union-attr]
                await asyncio.sleep(3600)
        login = session.auth_data.login.decode() if session.auth_data else None
        with self.lock:
            self.messages.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    login,
                )
            )
        return "250 2.0.0 Queued"

    def received_by(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]


class BadChallengeHandler(Handler):
    """Offers AUTH CRAM-MD5 (which clients try first) and challenges with bad base64."""

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        await server.challenge_auth("abc", encode_to_b64=False)  # "abc": bad padding
        return AuthResult(success=False, handled=False)


class TestController(Controller):
    """aiosmtpd's controller, bound to a free loopback port."""

    __test__ = False

    def _trigger_server(self) -> None:
        # aiosmtpd 1.4.6 connects to self.port to finish start(); with port=0 that is 0.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _authenticator(users: dict[str, str]) -> Callable[..., AuthResult]:
    def check(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


@dataclass
class SmtpServer:
    """A running test server."""

    host: str
    port: int
    handler: Handler
    controller: TestController
    ca: TestCA


def start_smtp(
    ca: TestCA,
    users: dict[str, str],
    *,
    rules: dict[str, tuple[str, str | None]] | None = None,
    starttls: bool = True,
    without_auth: tuple[str, ...] = (),
    handler_class: type[Handler] = Handler,
) -> SmtpServer:
    """Start a server on 127.0.0.1 with STARTTLS (unless ``starttls=False``) and AUTH.

    ``without_auth`` names AUTH mechanisms not to offer (``("PLAIN",)``: LOGIN only).
    """
    handler = handler_class(dict(rules or {}))
    kwargs: dict[str, Any] = {
        "server_hostname": "smtp.test",
        "auth_required": True,
        "authenticator": _authenticator(users),
        "auth_exclude_mechanism": list(without_auth),
    }
    if starttls:
        kwargs.update(tls_context=ca.server_context(), require_starttls=True, auth_require_tls=True)
    else:
        kwargs.update(auth_require_tls=False)
    controller = TestController(handler, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    return SmtpServer("127.0.0.1", controller.port, handler, controller, ca)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def smtp_server(test_ca: TestCA) -> Iterator[SmtpServer]:
    """A STARTTLS + AUTH server with users ada/box2/box3 (password: pw-<name>)."""
    server = start_smtp(test_ca, {name: f"pw-{name}" for name in ("ada", "box2", "box3")})
    try:
        yield server
    finally:
        server.controller.stop()
