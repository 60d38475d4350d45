"""The daemon's HTTP server over loopback: one-click unsubscribe, tracking, health checks."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mailopsd import cli, tokens
from mailopsd.daemon import Daemon
from mailopsd.http.app import PIXEL_GIF
from mailopsd.state.ledger import Ledger
from mailopsd.state.tracking import Tracked
from tests.daemons import in_process
from tests.dispatch_setup import credential, parsed, run_once, write_campaign
from tests.servers.smtp import SmtpServer
from tests.waiting import poll_until

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KEY = "test-signing-key-0123456789abcdefghijklmnop"
BASE_URL = "https://mail.example.com"
OFFER = "https://shop.example.com/offer?a=1&b=2"
FOOTER = (
    f'<p><a href="{OFFER.replace("&", "&amp;")}">Offer</a> <a href="%%UNSUBSCRIBE%%">Stop</a></p>'
)
LINK = re.compile(re.escape(BASE_URL) + r"(/(?:u|c)/[A-Za-z0-9_-]+|/o/[A-Za-z0-9_-]+\.gif)")
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}
WAIT_S = 10.0  # opens and clicks are written in batches, a moment after their response
T = TypeVar("T")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Running:
    daemon: Daemon
    clock: list[datetime]
    state: Path
    path: Path
    seen: list[Reply]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        listen = self.daemon.http_listen
        assert listen is not None, "the http server is not running"
        host, _, port = listen.rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            reply = Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()
        self.seen.append(reply)
        return reply

    def ledger(self) -> Ledger:
        return Ledger.open(self.state)

    def read(self, question: Callable[[Ledger], T]) -> T:
        """Ask the ledger once, on a connection of its own."""
        ledger = self.ledger()
        try:
            return question(ledger)
        finally:
            ledger.close()


def _write_config(tmp_path: Path, smtp: SmtpServer, *, key: str = KEY, leads: int = 3) -> Path:
    return write_campaign(
        tmp_path,
        {"a": credential(smtp, "ada")},
        leads=leads,
        steps=2,
        http={"listen": "127.0.0.1:0", "public_base_url": BASE_URL, "signing_key": key},
        unsubscribe={"footer_html": FOOTER},
        tracking={"open": True, "click": True},
    )


@contextmanager
def _daemon(
    tmp_path: Path, smtp: SmtpServer, *, rewrite: bool = True, **settings: Any
) -> Iterator[Running]:
    path = _write_config(tmp_path, smtp) if rewrite else tmp_path / "c.yaml"
    clock = [START]
    state = tmp_path / "state"
    with in_process(path, state, clock, **settings) as daemon:
        daemon.start_http()
        yield Running(daemon, clock, state, path, [])


@pytest.fixture
def running(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Running]:
    """A daemon in this process that sent step 1 to three leads, its HTTP server on."""
    with _daemon(tmp_path, smtp_server) as started:
        assert started.daemon.dispatch() == 3
        yield started
    for reply in started.seen:  # whatever was asked, no answer holds a secret
        shown = reply.body.decode("latin-1") + repr(reply.headers)
        assert KEY not in shown
        assert "pw-ada" not in shown


def _links(server: SmtpServer, email: str) -> dict[str, str]:
    """The paths of the signed links in the last message to ``email``, by purpose."""
    message = [m for m in server.handler.messages if m.rcpt_tos == [email]][-1]
    text = str(parsed(message)["List-Unsubscribe"]) + message.data.decode("utf-8", "replace")
    found = {path[1]: path for path in LINK.findall(text.replace("=\r\n", ""))}
    assert set(found) == {"u", "o", "c"}, found
    return found


def _lead(run: Running, email: str) -> tuple[str, str | None]:
    ledger = run.ledger()
    try:
        lead = ledger.leads.get("camp", email)
        assert lead is not None
        return lead.state, ledger.suppressions.reason("default", email)
    finally:
        ledger.close()


def _token(path: str) -> str:
    return path.split("/")[2].removesuffix(".gif")


LEAD = "lead0000@example.net"
OTHER = "lead0001@example.net"


class TestUnsubscribe:
    def test_one_click_post_stops_the_next_step(
        self, running: Running, smtp_server: SmtpServer
    ) -> None:
        """A one-click POST suppresses the lead at once: its step 2 never goes, others' do."""
        path = _links(smtp_server, LEAD)["u"]
        reply = running.request("POST", path, b"List-Unsubscribe=One-Click", ONE_CLICK)
        assert reply.status == 200
        assert b"Unsubscribed" in reply.body
        assert reply.headers["Cache-Control"] == "no-store"
        assert _lead(running, LEAD) == ("stopped", "unsubscribed (one-click)")
        again = running.request("POST", path, b"List-Unsubscribe=One-Click", ONE_CLICK)
        assert again.status == 200  # mail providers may repeat it
        running.clock[0] = START + timedelta(days=1, hours=1)
        assert running.daemon.dispatch() == 2
        followed = sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages[3:])
        assert followed == [OTHER, "lead0002@example.net"]
        ledger = running.ledger()
        try:
            rows = [(r.email, r.kind, r.credential_id) for r in ledger.inbox.replies()]
        finally:
            ledger.close()
        assert rows == [(LEAD, "unsubscribe", "a")]

    def test_multipart_one_click(self, running: Running, smtp_server: SmtpServer) -> None:
        """RFC 8058 allows the POST as multipart/form-data too."""
        body = (
            b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--b--\r\n"
        )
        headers = {"Content-Type": "multipart/form-data; boundary=b"}
        reply = running.request("POST", _links(smtp_server, LEAD)["u"], body, headers)
        assert reply.status == 200
        assert _lead(running, LEAD) == ("stopped", "unsubscribed (one-click)")

    def test_post_without_one_click_changes_nothing(
        self, running: Running, smtp_server: SmtpServer
    ) -> None:
        """A POST that does not say List-Unsubscribe=One-Click is refused."""
        reply = running.request("POST", _links(smtp_server, LEAD)["u"], b"x=1", ONE_CLICK)
        assert reply.status == 400
        assert _lead(running, LEAD) == ("waiting", None)

    def test_get_shows_the_button_and_changes_nothing(
        self, running: Running, smtp_server: SmtpServer
    ) -> None:
        """GET (as a link scanner does) shows a page with one button that POSTs, nothing more."""
        path = _links(smtp_server, LEAD)["u"]
        reply = running.request("GET", path)
        assert reply.status == 200
        page = reply.body.decode()
        assert '<form method="post">' in page
        assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
        assert "<script" not in page
        assert LEAD in page
        headers = reply.headers
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "form-action 'self'" in policy
        assert "script-src" not in policy
        head = running.request("HEAD", path)
        assert (head.status, head.body) == (200, b"")
        assert _lead(running, LEAD) == ("waiting", None)

    def test_bad_tokens_get_404(self, running: Running, smtp_server: SmtpServer) -> None:
        """Forged, altered, other-key, cross-lead and other-purpose tokens unsubscribe no one."""
        links = _links(smtp_server, LEAD)
        token = _token(links["u"])
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        raw[-20] ^= 1  # a letter of the address
        altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        other_key = tokens.sign(b"x" * 40, tokens.UNSUBSCRIBE, "camp", OTHER)
        # Lead A's MAC on lead B's payload: a token for A cannot unsubscribe B.
        other = tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, "camp", OTHER)
        crossed = _swap_mac(other, token)
        gone = tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, "no-such-campaign", LEAD)
        paths = [
            "/u/" + "A" * 40,
            "/u/" + altered,
            "/u/" + other_key,
            "/u/" + crossed,
            "/u/" + gone,
            "/u/" + _token(links["c"]),
            "/u/" + _token(links["o"]),
            "/c/" + token,
            "/o/" + token + ".gif",
            "/u/",
            "/nowhere",
        ]
        for path in paths:
            for method in ("GET", "POST"):
                if method == "POST" and not path.startswith("/u/"):
                    continue
                reply = running.request(method, path, b"List-Unsubscribe=One-Click", ONE_CLICK)
                assert reply.status == 404, (method, path)
                assert b"Link not found" in reply.body
        assert _lead(running, LEAD) == ("waiting", None)
        assert _lead(running, OTHER) == ("waiting", None)

    def test_large_body_refused(self, running: Running, smtp_server: SmtpServer) -> None:
        """A request body past 4 KiB is refused, unread (a webhook's may be 1 MiB)."""
        body = b"List-Unsubscribe=One-Click&" + b"x" * 8192
        reply = running.request("POST", _links(smtp_server, LEAD)["u"], body, ONE_CLICK)
        assert reply.status == 413
        assert _lead(running, LEAD) == ("waiting", None)


def _swap_mac(token: str, donor: str) -> str:
    """``token``'s payload with ``donor``'s MAC."""

    def raw(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    mixed = raw(token)[:-16] + raw(donor)[-16:]
    return base64.urlsafe_b64encode(mixed).rstrip(b"=").decode()


class TestTracking:
    def test_click_redirects_to_the_signed_url_and_counts(
        self, running: Running, smtp_server: SmtpServer
    ) -> None:
        """A click redirects (302) to the message's link, and each one counts."""
        path = _links(smtp_server, LEAD)["c"]
        for _ in range(2):
            reply = running.request("GET", path)
            assert reply.status == 302
            assert reply.headers["Location"] == OFFER
            running.clock[0] += timedelta(minutes=5)
        assert running.request("HEAD", path).status == 302  # not counted
        expected = {OFFER: Tracked(START, START + timedelta(minutes=5), 2)}
        poll_until(
            lambda: running.read(lambda ledger: ledger.tracking.clicks("camp", LEAD)) == expected,
            timeout_s=WAIT_S,
            what="two clicks counted",
        )
        time.sleep(0.5)  # counts are written every 0.25 s: a third would be in by now
        assert running.read(lambda ledger: ledger.tracking.clicks("camp", LEAD)) == expected

    def test_open_returns_a_gif_and_counts(self, running: Running, smtp_server: SmtpServer) -> None:
        """The pixel is a 1x1 GIF; the first open time stays, the count grows."""
        path = _links(smtp_server, LEAD)["o"]
        for _ in range(3):
            reply = running.request("GET", path)
            assert reply.status == 200
            assert reply.headers["Content-Type"] == "image/gif"
            assert reply.body == PIXEL_GIF
            assert reply.body[:6] == b"GIF89a"
            assert int.from_bytes(reply.body[6:8], "little") == 1
            assert int.from_bytes(reply.body[8:10], "little") == 1
            running.clock[0] += timedelta(hours=1)
        expected = Tracked(START, START + timedelta(hours=2), 3)
        poll_until(
            lambda: running.read(lambda ledger: ledger.tracking.opens("camp", LEAD)) == expected,
            timeout_s=WAIT_S,
            what="three opens counted",
        )
        assert running.read(lambda ledger: ledger.tracking.opens("camp", OTHER)) is None

    def test_status_shows_opens_and_clicks(
        self, running: Running, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``mailopsd status`` counts the leads that opened and clicked, and how often."""
        for lead, times in ((LEAD, 2), (OTHER, 1)):
            for _ in range(times):
                assert running.request("GET", _links(smtp_server, lead)["o"]).status == 200
        assert running.request("GET", _links(smtp_server, LEAD)["c"]).status == 302
        poll_until(
            lambda: running.read(lambda ledger: ledger.tracking.clicks("camp", LEAD)),
            timeout_s=WAIT_S,
            what="the click counted (it comes last)",
        )
        capsys.readouterr()
        assert cli.main(["status", "--state-dir", str(running.state)]) == 0
        assert (
            "  tracking: 2 leads opened (3 opens), 1 clicked (1 clicks)" in capsys.readouterr().out
        )
        assert cli.main(["status", "--state-dir", str(running.state), "--json"]) == 0
        (campaign,) = json.loads(capsys.readouterr().out)["campaigns"]
        assert campaign["tracking"] == {
            "leads_opened": 2,
            "opens": 3,
            "leads_clicked": 1,
            "clicks": 1,
        }

    def test_other_methods_get_405(self, running: Running, smtp_server: SmtpServer) -> None:
        """Methods a path does not take get 405 and the list of those it takes."""
        links = _links(smtp_server, LEAD)
        cases = [
            ("PUT", links["u"], "GET, HEAD, POST"),
            ("DELETE", links["u"], "GET, HEAD, POST"),
            ("POST", links["o"], "GET, HEAD"),
            ("POST", links["c"], "GET, HEAD"),
            ("POST", "/healthz", "GET, HEAD"),
            ("PATCH", "/readyz", "GET, HEAD"),
        ]
        for method, path, allowed in cases:
            reply = running.request(method, path, b"List-Unsubscribe=One-Click", ONE_CLICK)
            assert (reply.status, reply.headers["Allow"]) == (405, allowed), (method, path)
        assert _lead(running, LEAD) == ("waiting", None)


class TestServer:
    def test_health_and_readiness(self, running: Running) -> None:
        """healthz answers while the process lives; readyz while the config is loaded."""
        assert running.request("GET", "/healthz").status == 200
        reply = running.request("GET", "/readyz")
        assert (reply.status, reply.body) == (200, b"ready\n")

    def test_not_ready_while_the_state_takes_no_writes(
        self, tmp_path: Path, smtp_server: SmtpServer
    ) -> None:
        """readyz says 503 while the work is paused for the state directory."""
        with _daemon(tmp_path, smtp_server, storage_headroom_bytes=1 << 62) as started:
            started.daemon.dispatch()  # finds too little free space: the work pauses
            assert started.daemon.storage_problem is not None
            reply = started.request("GET", "/readyz")
            assert reply.status == 503
            assert reply.body == b"not ready: state directory not writable\n"
            assert started.request("GET", "/healthz").status == 200

    def test_reload_swaps_the_key_in_place_and_moves_on_a_new_listen(
        self, tmp_path: Path, smtp_server: SmtpServer
    ) -> None:
        """A new signing key applies at once on the same server; a new listen moves it."""
        with _daemon(tmp_path, smtp_server) as started:
            listen = started.daemon.http_listen
            old = "/u/" + tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, "camp", LEAD)
            assert started.request("GET", old).status == 200
            new_key = "another-signing-key-0123456789abcdefghij"
            _write_config(tmp_path, smtp_server, key=new_key)
            started.daemon._reload_now(notify=False)
            assert started.daemon.http_listen == listen
            assert started.request("GET", old).status == 404
            new = "/u/" + tokens.sign(new_key.encode(), tokens.UNSUBSCRIBE, "camp", LEAD)
            assert started.request("GET", new).status == 200
            text = started.path.read_text().replace("127.0.0.1:0", "127.0.0.2:0")
            started.path.write_text(text)
            started.daemon._reload_now(notify=False)
            moved = started.daemon.http_listen
            assert moved is not None
            assert moved.startswith("127.0.0.2:")
            assert started.request("GET", "/healthz").status == 200
            assert f"http on {moved}" in started.daemon.status_line()

    def test_no_server_in_a_once_run(
        self, tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """run --once sends, and never starts the HTTP server."""
        caplog.set_level(logging.INFO)
        path = _write_config(tmp_path, smtp_server)
        assert run_once(path, tmp_path / "state", "2026-11-23T10:00:00Z") == 0
        assert len(smtp_server.handler.messages) == 3
        assert "http server listening" not in caplog.text


def test_an_address_in_use_is_reported_and_sending_goes_on(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A listen address that cannot be bound: one error line, no server, sends go on."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        path = _write_config(tmp_path, smtp_server)
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        with _daemon(tmp_path, smtp_server, rewrite=False) as started:
            assert started.daemon.http_listen is None
            started.daemon._reload_now(notify=False)  # tried again: still in use, not logged again
            assert started.daemon.dispatch() == 3
    errors = [r.getMessage() for r in caplog.records if "cannot listen" in r.getMessage()]
    assert len(errors) == 1
    assert f"listen=127.0.0.1:{port}" in errors[0]
