"""Slow clients (slowloris) cannot keep the daemon's HTTP server from answering others."""

from __future__ import annotations

import http.client
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mailopsd import tokens
from mailopsd.daemon import Daemon
from tests.daemons import in_process
from tests.dispatch_setup import credential, write_campaign
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KEY = "test-signing-key-0123456789abcdefghijklmnop"
LEAD = "lead0000@example.net"
UNSUBSCRIBE = "/u/" + tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, "camp", LEAD)
# The attackers come from other loopback addresses than the person clicking links.
SLOW_HOST = "127.0.0.2"
FLOOD_HOST = "127.0.0.3"
TICK_S = 0.2
MAX_TICKS = 40  # the slow connections must be gone well before 8 s


@contextmanager
def _daemon(tmp_path: Path, smtp: SmtpServer, **http: Any) -> Iterator[Daemon]:
    """A daemon in this process with its HTTP server on 127.0.0.1 and ``http`` settings."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp, "ada")},
        leads=2,
        steps=1,
        http={
            "listen": "127.0.0.1:0",
            "public_base_url": "https://mail.example.com",
            "signing_key": KEY,
            **http,
        },
    )
    with in_process(path, tmp_path / "state", [START]) as daemon:
        daemon.start_http()
        yield daemon


def _port(daemon: Daemon) -> int:
    listen = daemon.http_listen
    assert listen is not None, "the http server is not running"
    return int(listen.rpartition(":")[2])


def _status(port: int, path: str) -> int:
    """The status of a GET from 127.0.0.1, as a browser would send it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _slow(stack: ExitStack, source: str, port: int) -> socket.socket:
    """A connection from ``source`` that has sent the first line of a request only."""
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    return sock


def _is_closed(sock: socket.socket, wait_s: float = 0) -> bool:
    """Whether the server closed ``sock`` (end of stream or reset, and no reply)."""
    readable, _, _ = select.select([sock], [], [], wait_s)
    if not readable:
        return False
    try:
        data = sock.recv(1024)
    except ConnectionResetError:
        return True
    assert data == b"", f"a slow request got an answer: {data[:60]!r}"
    return True


def test_slow_requests_are_cut_off_while_others_are_answered(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Connections trickling header lines are closed after request_timeout; others get answers."""
    with _daemon(tmp_path, smtp_server, request_timeout="1 second") as daemon, ExitStack() as stack:
        port = _port(daemon)
        slow = [_slow(stack, SLOW_HOST, port) for _ in range(5)]
        open_ = list(slow)
        for _ in range(MAX_TICKS):
            for sock in list(open_):
                if _is_closed(sock):
                    open_.remove(sock)
                else:
                    sock.sendall(b"X-Slow: still here\r\n")
            assert _status(port, "/healthz") == 200
            assert _status(port, UNSUBSCRIBE) == 200
            if not open_:
                break
            time.sleep(TICK_S)
        assert not open_, f"{len(open_)} of {len(slow)} slow connections still open"


def test_one_client_cannot_take_every_connection(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """120 slow connections from one address leave room for others; only the newest 10 stay."""
    with _daemon(tmp_path, smtp_server) as daemon, ExitStack() as stack:
        port = _port(daemon)
        flood = [_slow(stack, FLOOD_HOST, port) for _ in range(120)]
        for sock in flood:
            sock.sendall(b"X-Slow: still here\r\n")
        assert _status(port, "/healthz") == 200
        assert _status(port, UNSUBSCRIBE) == 200
        assert all(_is_closed(sock, wait_s=5) for sock in flood[:-10])
        assert not any(_is_closed(sock) for sock in flood[-10:])


def test_connections_kept_idle_make_room_for_others(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """120 connections kept open after one request each never fill the server: the oldest go."""
    with _daemon(tmp_path, smtp_server) as daemon, ExitStack() as stack:
        port = _port(daemon)
        idle: list[http.client.HTTPConnection] = []
        for _ in range(120):
            connection = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=5, source_address=(FLOOD_HOST, 0)
            )
            stack.callback(connection.close)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            idle.append(connection)
        assert _status(port, "/healthz") == 200
        assert _status(port, UNSUBSCRIBE) == 200
        first, last = idle[0].sock, idle[-1].sock
        assert first is not None
        assert last is not None
        assert _is_closed(first, wait_s=5)
        assert not _is_closed(last)


def test_a_reload_applies_new_limits(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """A shorter request_timeout set by a reload cuts off slow requests from then on."""
    with _daemon(tmp_path, smtp_server) as daemon, ExitStack() as stack:
        path = tmp_path / "c.yaml"
        config = yaml.safe_load(path.read_text())
        config["http"]["request_timeout"] = "1 second"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        daemon._reload_now(notify=False)
        slow = _slow(stack, SLOW_HOST, _port(daemon))
        assert _is_closed(slow, wait_s=5)


def test_a_burst_of_whole_requests_from_one_address_is_answered(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """60 connections opened at once from one address, then each sending its whole request,
    are all answered: a burst (a proxy filling its pool, a load tool) is not a flood."""
    with _daemon(tmp_path, smtp_server) as daemon, ExitStack() as stack:
        port = _port(daemon)
        burst = []
        for _ in range(60):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.settimeout(10)
            sock.bind((FLOOD_HOST, 0))
            sock.connect(("127.0.0.1", port))
            burst.append(sock)
        for sock in burst:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = [sock.makefile("rb").readline() for sock in burst]
        assert answers == [b"HTTP/1.1 200 OK\r\n"] * 60
