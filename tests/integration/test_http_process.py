"""The HTTP server runs in a process of its own: what it holds, how it dies and comes back.

The daemon binds the address and starts ``python -m mailopsd.http.process`` on it; these
tests look at that process from outside (``/proc``, signals) and at what a client sees.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from mailopsd import tokens
from mailopsd.http.process import NICENESS
from mailopsd.state.tracking import Tracked
from tests.integration.test_http import (
    KEY,
    LEAD,
    START,
    Running,
    _daemon,
    _links,
    _write_config,
)
from tests.servers.smtp import SmtpServer
from tests.waiting import poll_until

WAIT_S = 15.0
AGE_KEY_CANARY = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYQ"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {name.decode(): value.decode(errors="replace") for name, _, value in pairs}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_server_is_another_process_without_the_keys_and_passwords(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP process is not the daemon, and nothing of the age key or the SMTP
    password reaches it through its environment or command line; a stop ends it."""
    monkeypatch.setenv("SOPS_AGE_KEY", AGE_KEY_CANARY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    with _daemon(tmp_path, smtp_server) as started:
        pid = started.daemon.http_pid
        assert pid is not None
        assert pid != os.getpid()
        assert started.request("GET", "/healthz").status == 200
        environ = _environ(pid)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        for name in ("SOPS_AGE_KEY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"):
            assert name not in environ
        seen = repr(environ) + command
        for secret in (AGE_KEY_CANARY, KEY, "pw-ada"):
            assert secret not in seen
    assert _gone(pid)


def test_a_killed_process_is_started_again_on_the_same_address(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL to the HTTP process: one error line, a new process on the same address,
    and clients are answered again; sending never stopped."""
    caplog.set_level(logging.INFO)
    with _daemon(tmp_path, smtp_server) as started:
        listen, first = started.daemon.http_listen, started.daemon.http_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        poll_until(
            lambda: started.daemon.http_pid not in (None, first),
            timeout_s=WAIT_S,
            what="a new HTTP process",
        )
        assert started.daemon.dispatch() == 3
        assert started.daemon.http_listen == listen
        assert started.request("GET", "/healthz").status == 200
        path = "/u/" + tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, "camp", LEAD)
        assert started.request("GET", path).status == 200  # it has the signing key
    lines = [r.getMessage() for r in caplog.records if "http process exited" in r.getMessage()]
    assert lines == [f"http process exited status=-9 listen={listen}; started again in 1s"]


def test_counts_waiting_at_a_stop_are_written(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Opens answered just before the daemon stops are all in the ledger after the stop."""
    with _daemon(tmp_path, smtp_server) as started:
        assert started.daemon.dispatch() == 3
        pixel = _links(smtp_server, LEAD)["o"]
        for _ in range(50):
            assert started.request("GET", pixel).status == 200
    opens = Running.read(started, lambda ledger: ledger.tracking.opens("camp", LEAD))
    assert opens == Tracked(START, START, 50)


def test_metrics_are_answered_by_the_daemon(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """What reads the daemon's memory is handed to it: the metrics count the daemon's
    reloads (readiness: ``test_http.py``; the API: ``test_http_api.py``)."""
    with _daemon(tmp_path, smtp_server) as started:
        assert started.request("GET", "/readyz").body == b"ready\n"
        before = started.request("GET", "/metrics").body.decode()
        started.daemon._reload_now(notify=False)
        after = started.request("GET", "/metrics").body.decode()
        assert 'mailopsd_reloads_total{result="ok"} 0.0' in before
        assert 'mailopsd_reloads_total{result="ok"} 1.0' in after


def test_an_address_let_go_of_during_the_start_is_taken(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The port is still held for a moment (a killed daemon's HTTP process): the start
    waits for it instead of running without its server."""
    caplog.set_level(logging.INFO)
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    path = _write_config(tmp_path, smtp_server)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    threading.Timer(0.3, holder.close).start()
    with _daemon(tmp_path, smtp_server, rewrite=False) as started:
        assert started.daemon.http_listen == f"127.0.0.1:{port}"
        assert started.request("GET", "/healthz").status == 200
    assert "cannot listen" not in caplog.text


def test_a_body_too_large_for_the_api_is_refused_not_cut(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A request the daemon would answer, with a body past 4 KiB: 413, never handed over
    cut to 4 KiB; a webhook's body may be larger (1 MiB)."""
    with _daemon(tmp_path, smtp_server) as started:
        body = b'{"smtp_credential": {"label": "' + b"x" * 5000 + b'"}}'
        reply = started.request("POST", "/campaigns/camp/smtp_credentials", body)
        assert (reply.status, reply.body) == (413, b"request body too large\n")
        assert started.request("POST", "/hooks/git", b"x" * 5000).status == 404  # no remote


def _nice(pid: int, tid: int) -> int:
    """A thread's nice value, from ``/proc`` (the 19th field of its ``stat``)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def test_the_server_yields_the_cpu_to_sending(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """The HTTP process runs at a lower priority than the daemon, so that a busy server
    leaves the sender its CPU time; its writer of opens and clicks, which holds the
    ledger's write lock the sender waits for, keeps the daemon's."""
    daemon_nice = os.getpriority(os.PRIO_PROCESS, 0)  # the daemon runs on this thread
    if daemon_nice + NICENESS > 19:
        pytest.skip("the tests run at too low a priority to lower the server's")
    with _daemon(tmp_path, smtp_server) as started:
        pid = started.daemon.http_pid
        assert pid is not None
        assert started.request("GET", "/healthz").status == 200
        nices = {int(tid): _nice(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}
    assert nices[pid] == daemon_nice + NICENESS
    at_daemon = [tid for tid, nice in nices.items() if nice == daemon_nice]
    assert len(at_daemon) == 1
    assert all(nice == nices[pid] for tid, nice in nices.items() if tid not in at_daemon)
