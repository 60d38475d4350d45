"""The HTTP server's own log lines: what a busy server tells the operator."""

from __future__ import annotations

import http.client
import logging
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest

from mailopsd.http.server import bind, start_server
from tests.waiting import poll_until

WAIT_S = 15.0
CLIENTS = 10


def _status(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_requests_waiting_for_a_worker_make_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """Requests queued behind a busy worker are logged in one line with their number and
    the queue's depth, not in one line each."""
    caplog.set_level(logging.INFO)
    gate = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        gate.wait(WAIT_S)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]

    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = start_server(app, sock=sock, threads=1)
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [pool.submit(_status, port) for _ in range(CLIENTS)]
            poll_until(
                lambda: "waited for a worker" in caplog.text,
                timeout_s=WAIT_S,
                what="the line on requests waiting for the worker",
            )
            gate.set()
            assert [answer.result() for answer in answers] == [200] * CLIENTS
    finally:
        gate.set()
        server.stop()
    lines = [r.getMessage() for r in caplog.records if "waited for a worker" in r.getMessage()]
    assert len(lines) == 1
    assert re.fullmatch(
        r"http requests waited for a worker waits=\d+ deepest_queue=\d+ threads=1", lines[0]
    )
    assert not [r for r in caplog.records if r.name.startswith("waitress")]
