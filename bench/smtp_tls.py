"""Sending throughput through STARTTLS and AUTH: mailopsd against a naive loop.

    python -m bench smtp-tls [--quick]

An aiosmtpd server on 127.0.0.1, in a process of its own (so it does not share the GIL
with the client), requires STARTTLS with a certificate from a throwaway CA
(``tests.servers.tlsca``) and AUTH for every message, as a mail provider's submission
port does; it accepts and discards. Each round runs, alternating, with the same number of
messages of about 1 KB:

- mailopsd: the sending work of ``run --once`` (as in ``bench.smtp``), four credentials,
  each verifying the certificate against the CA and logging in once on its kept-open
  connection;
- a naive ``smtplib`` loop that, for every message, connects, does STARTTLS (verifying the
  certificate), logs in, sends and quits.

aiosmtpd announces no PIPELINING, so mailopsd sends command by command here. The
server, pure Python, is the ceiling of both. Medians in messages per second.

``python -m bench.smtp_tls serve CERT KEY`` runs the server alone (it prints its port).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.smtp import (
    CREDENTIALS,
    alternate_rates,
    comparison,
    mailopsd_rate,
    naive_message,
    stop,
    wait_for_port,
)

TARGET_NAIVE = 4.0
ROOT = Path(__file__).resolve().parents[1]


def _users() -> dict[str, str]:
    return {f"box{i}": f"pw-box{i}-secret" for i in range(CREDENTIALS)}


# The server (its own process) ----------------------------------------------------------


def serve(cert_file: Path, key_file: Path) -> None:
    """Run an aiosmtpd server with STARTTLS and AUTH on a free loopback port, forever."""
    from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # login_data deprecation notices
    users = _users()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)

    class Discard:
        async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
            self, server: SMTP, session: Session, envelope: Envelope
        ) -> str:
            return "250 2.0.0 Queued"

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and users.get(data.login.decode()) == data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    handler = Discard()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="smtp.bench",
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=check,
        )

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def _start_server(cert_file: Path, key_file: Path) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(  # noqa: S603 - this module, in this interpreter
        [sys.executable, "-m", "bench.smtp_tls", "serve", str(cert_file), str(key_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None  # noqa: S101 - PIPE was asked for
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the aiosmtpd server did not start (exit {server.poll()})")
        port = int(line)
        wait_for_port(port, server)
    except BaseException:
        stop(server)
        raise
    return server, port


# The clients ----------------------------------------------------------------------------


def tls_credentials(port: int, ca_file: Path, messages: int) -> dict[str, dict[str, Any]]:
    """Four credentials logging in over STARTTLS, verifying against the test CA."""
    return {
        f"b{i}": {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_username": login,
            "smtp_password": password,
            "from_name": f"Box {i}",
            "from_email": f"{login}@sender.example.com",
            "daily_limit": messages,
            "tls": "starttls",
            "tls_ca_file": str(ca_file),
        }
        for i, (login, password) in enumerate(_users().items())
    }


def naive_tls_rate(port: int, ca_file: Path, messages: int) -> float:
    """A ``smtplib`` loop: connect, STARTTLS (verified), login, send, quit, per message."""
    message = naive_message()
    context = ssl.create_default_context(cafile=str(ca_file))
    login, password = next(iter(_users().items()))
    start = time.perf_counter()
    for _ in range(messages):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.starttls(context=context)
            smtp.login(login, password)
            smtp.send_message(message)
    return messages / (time.perf_counter() - start)


def run(quick: bool) -> list[Row]:
    """Alternate mailopsd and the naive loop against the STARTTLS + AUTH server."""
    from tests.servers.tlsca import make_ca

    messages, rounds = (200, 1) if quick else (3000, 5)
    with tempfile.TemporaryDirectory(prefix="bench-smtp-tls-") as tmp:
        parent = Path(tmp)
        ca = make_ca(parent)
        server, port = _start_server(ca.cert_file, ca.key_file)
        try:
            credentials = tls_credentials(port, ca.ca_file, messages)
            runs: dict[str, Callable[[], float]] = {
                "mailopsd": lambda: mailopsd_rate(parent, messages, credentials),
                "naive": lambda: naive_tls_rate(port, ca.ca_file, messages),
            }
            rates = alternate_rates(runs, rounds)
        finally:
            stop(server)
    note = (
        f"{messages:,} messages of about 1 KB per run, {CREDENTIALS} credentials; median of "
        f"{rounds} rounds, alternating; aiosmtpd (STARTTLS + AUTH) in its own process; "
        "mailopsd: its sends (Daemon.dispatch) timed, its start not"
    )
    return [
        comparison(
            "smtp-tls",
            "msg/s vs naive STARTTLS+login loop",
            rates["mailopsd"],
            ("naive smtplib", rates["naive"]),
            TARGET_NAIVE,
            quick,
            note + "; the naive loop does STARTTLS and login for every message",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("cert_file", type=Path)
    parser.add_argument("key_file", type=Path)
    args = parser.parse_args()
    serve(args.cert_file, args.key_file)


if __name__ == "__main__":
    main()
