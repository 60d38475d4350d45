"""The real daemon process: start, apply edits, survive a bad push, reload, stop.

It runs as ``python -m mailopsd run`` with a notify socket of the test's, the way
systemd runs it; the test reads ``mailopsd status --json`` as an operator would (the
command run in the test's own process, see :func:`_status`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailopsd import cli
from mailopsd.state.statefile import load_state
from tests.configs import BASE, LEADS
from tests.sops_tools import AgeKey, make_key
from tests.waiting import poll_until

WAIT_S = 30.0


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket.

    Like the service manager, it reads every message as it comes (a thread drains the
    socket), so the daemon never meets a full queue.
    """

    def __init__(self) -> None:
        # AF_UNIX paths are short (about 107 bytes): a directory right under /tmp.
        self.directory = tempfile.mkdtemp(prefix="mn-", dir="/tmp")
        self.path = os.path.join(self.directory, "n")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._drain, name="notify-reader", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self.closing.is_set():
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            if not message:  # close() waking the reader: no notify message is empty
                continue
            with self.lock:
                self.messages.append(message)

    def wait_for(self, line: str, *, after: int = 0) -> int:
        """Wait until a message after index ``after`` holds ``line``; return its index."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self.lock:
                for index in range(after, len(self.messages)):
                    if line in self.messages[index].splitlines():
                        return index
            time.sleep(0.05)
        raise AssertionError(f"no {line!r} from the daemon; got {self.messages}")

    def close(self) -> None:
        self.closing.set()
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker,
            contextlib.suppress(OSError),  # a full queue: the reader stops at its timeout
        ):
            waker.setblocking(False)
            waker.sendto(b"", self.path)  # the reader stops now, not at its next timeout
        self.thread.join(5)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.directory)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def _mailopsd(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailopsd", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )


def _in_process(*args: str) -> tuple[int, str, str]:
    """``mailopsd ARGS`` run in this process: its exit code, stdout and stderr.

    The same command an operator types, reading the same files, without the half second a
    new interpreter takes to start (which was most of the time of a look at the daemon).
    The daemon itself always runs as a process of its own.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def _status(state: Path) -> dict[str, object]:
    """``mailopsd status --json`` of the state directory (it must succeed), parsed."""
    code, out, err = _in_process("status", "--json", "--state-dir", str(state))
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _encrypt(key: AgeKey, path: Path) -> None:
    """``mailopsd secrets encrypt --age RECIPIENT --in-place PATH``, as the operator does
    before a daemon reads the file (it must succeed)."""
    code, _, err = _in_process(
        "secrets", "encrypt", "--age", key.recipient, "--in-place", str(path)
    )
    assert code == 0, err


def _eventually(check: Callable[[], object], what: str) -> None:
    poll_until(check, timeout_s=WAIT_S, interval_s=0.2, what=what)


def _limit(state: Path) -> object:
    campaigns = _status(state)["campaigns"]
    return campaigns[0]["smtp_credentials"][0]["daily_limit"]  # type: ignore[index]


def _condition(state: Path, kind: str) -> dict[str, object]:
    conditions = _status(state)["conditions"]
    return next(c for c in conditions if c["type"] == kind)  # type: ignore[union-attr]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, AgeKey]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "leads.csv").write_text(LEADS)
    (config / "c.yaml").write_text(BASE + "        status: sandbox\n")  # no network
    key = make_key(tmp_path)
    _encrypt(key, config / "c.yaml")
    return config, tmp_path / "state", key


def test_daemon_lifecycle(
    setup: tuple[Path, Path, AgeKey], notify: NotifySocket, tmp_path: Path
) -> None:
    """Start, apply an edit, keep the last good config on a bad push, reload, stop with 0."""
    config, state, key = setup
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="2000000")
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "daemon.log"
    arguments = ["run", "--config", str(config), "--state-dir", str(state)]
    with log.open("w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailopsd", *arguments, "--age-key-file", str(key.path)],
            env=env,
            stderr=stream,
        )
    try:
        ready = notify.wait_for("READY=1")
        assert _limit(state) == 100
        assert _condition(state, "Ready")["status"] == "True"
        notify.wait_for("WATCHDOG=1")

        path = config / "c.yaml"
        first_revision = load_state(state).daemon.applied_revision
        path.write_text(path.read_text().replace("daily_limit: 100", "daily_limit: 150"))
        _eventually(lambda: _limit(state) == 150, "the edit to be applied")
        assert load_state(state).daemon.applied_revision != first_revision

        with (config / "leads.csv").open("a") as leads:
            leads.write("alan@example.org,Alan,Bletchley\n")
        _eventually(lambda: _status(state)["campaigns"][0]["leads"] == 2, "the new lead")  # type: ignore[index]

        path.write_text(path.read_text().replace("daily_limit: 150", "daily_limit: 0"))
        _eventually(lambda: _condition(state, "ConfigError")["status"] == "True", "ConfigError")
        error = _condition(state, "ConfigError")
        assert error["errors"] == [
            f"{path}:18:22: campaigns.acme-q4.smtp_credentials.primary.daily_limit: "
            "must be an integer ≥ 1 (got 0)"
        ]
        assert process.poll() is None
        assert _limit(state) == 150

        path.write_text(path.read_text().replace("daily_limit: 0", "daily_limit: 175"))
        _eventually(lambda: _limit(state) == 175, "the fix to be applied")
        assert _condition(state, "ConfigError")["status"] == "False"

        before = len(notify.messages)
        process.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=before)
        notify.wait_for("READY=1", after=reloading)
        assert ready < reloading

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_S) == 0
        notify.wait_for("STOPPING=1")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert log.read_text().count("must be an integer ≥ 1 (got 0)") == 1
    assert _condition(state, "Ready")["reason"] == "Stopped"


def _run_once(config: Path, state: Path, key: AgeKey) -> subprocess.CompletedProcess[str]:
    where = ("--config", str(config), "--state-dir", str(state))
    return _mailopsd("run", *where, "--age-key-file", str(key.path), "--once")


def test_invalid_config_does_not_start(setup: tuple[Path, Path, AgeKey]) -> None:
    """A daemon asked to start on an invalid config exits 1 and prints the errors."""
    config, state, key = setup
    path = config / "c.yaml"
    path.write_text(path.read_text().replace("smtp_port: 587", "smtp_port: 0"))
    result = _run_once(config, state, key)
    assert result.returncode == 1
    assert (
        f"{path}:13:20: campaigns.acme-q4.smtp_credentials.primary.smtp_port: "
        "must be a port number from 1 to 65535 (got 0)"
    ) in result.stderr


def test_corrupt_state_stops_start(setup: tuple[Path, Path, AgeKey]) -> None:
    """A corrupt state file stops the start with a clear message and is left alone."""
    config, state, key = setup
    state.mkdir()
    (state / "state.yaml").write_text("schema_version: 1\ncredentials: [\n")
    result = _run_once(config, state, key)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: state file {state / 'state.yaml'} is not valid YAML")
    assert (state / "state.yaml").read_text() == "schema_version: 1\ncredentials: [\n"
