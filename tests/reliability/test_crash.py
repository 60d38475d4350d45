"""Crash anywhere: SIGKILL at seeded random moments while the daemon sends and reads mail.

Two campaigns run against a real SMTP server and a real IMAP server on loopback: one
with four mailboxes, thousands of leads and replies arriving over IMAP, one whose
mailbox bounces enough to be disabled. The daemon is killed over and over and
restarted: ``--once`` runs, each killed at a random moment or left to finish, and
serving runs with the HTTP server on, each killed or stopped. All along, other processes
read the ledger (the ``sqlite3`` shell, ``mailopsd status``) and HTTP clients ask for
``/metrics``, ``/readyz``, unsubscribe pages and one-click unsubscribes. Afterwards:

- no lead received any step twice (the SMTP server's record is the witness);
- every message the server accepted is in the ledger as ``sent`` or ``unknown``;
- the state file parsed after every kill, and a ``disabled_at`` once written stayed;
- every reply put in the mailbox was recorded, and the ledger passes its integrity check;
- while a serving daemon ran, its write-ahead log never vanished or changed, and its
  HTTP server never found the ledger unreadable.
"""

from __future__ import annotations

import http.client
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from random import Random
from typing import Any

import pytest

from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.statefile import load_state
from tests import inbox_mail
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    imap_fields,
    parsed,
    write_config,
    write_leads,
)
from tests.reliability.counts import count, seeded
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

KILLS = count(20, 250)
LEADS = count(2000, 5000)
RISKY_LEADS = 300
SQLITE3 = shutil.which("sqlite3")
UNSUBSCRIBE = re.compile(r"<https://links\.example\.com(/u/[A-Za-z0-9_-]+)>")


def _box(server: SmtpServer, login: str, **extra: Any) -> dict[str, Any]:
    return credential(server, login, daily_limit=100_000, tls="none", **extra)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_config(
    directory: Path, server: SmtpServer, imap: dict[str, Any], http_port: int
) -> Path:
    write_leads(directory / "main.csv", [f"lead{i:05d}@example.net,L{i}" for i in range(LEADS)])
    write_leads(
        directory / "risky.csv", [f"risk{i:04d}@example.org,R{i}" for i in range(RISKY_LEADS)]
    )
    boxes = {
        "b0": _box(server, "box0", **imap),
        **{f"b{i}": _box(server, f"box{i}") for i in range(1, 4)},
    }
    main = campaign_tree(boxes, delay="0:00:01", name="Main", leads="main.csv")
    risky = campaign_tree(
        {"r": _box(server, "box4")},
        delay="0:00:01",
        name="Risky",
        leads="risky.csv",
        bounce_threshold=0.2,
        bounce_min_sends=20,
    )
    return write_config(
        directory,
        {"main": main, "risky": risky},
        file_name="campaigns.yaml",
        http={
            "listen": f"127.0.0.1:{http_port}",
            "public_base_url": "https://links.example.com",
            "signing_key": "crash-test-signing-key-0123456789abcdef",
        },
    )


def _run(path: Path, state: Path, log: Path, *, once: bool = True) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "mailopsd", "run", "--allow-plaintext-secrets"),
                *(("--once",) if once else ()),
                *("--config", str(path), "--state-dir", str(state), "--log-format", "json"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


class _Replier:
    """Answers every tenth lead that box0 wrote to, in box0's IMAP mailbox."""

    def __init__(self, server: SmtpServer, imap: Dovecot, user: str) -> None:
        self.server, self.imap, self.user = server, imap, user
        self.replied: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="replier")

    def _run(self) -> None:
        seen = 0
        while not self.stop.wait(0.1):
            with self.server.handler.lock:
                fresh = self.server.handler.messages[seen:]
            seen += len(fresh)
            for message in fresh:
                to = message.rcpt_tos[0]
                if message.login != "box0" or to in self.replied or int(to[4:9]) % 10:
                    continue
                reply = inbox_mail.reply(
                    to, "box0@sender.example.com", str(parsed(message)["Message-ID"])
                )
                self.imap.append(self.user, reply)
                self.replied.add(to)

    def __enter__(self) -> _Replier:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


class _Outside:
    """Reads the ledger from other processes and over HTTP while daemons come and go.

    While a serving daemon is watched (between :meth:`watch` and :meth:`unwatch`, that is
    until just before it is signalled), its write-ahead log, once seen after the daemon
    answered over HTTP, must stay the same file, and its HTTP side must never find the
    ledger unreadable. A reader that finds the database damaged is a problem at any time.
    """

    def __init__(self, state: Path, port: int, server: SmtpServer, chance: Random) -> None:
        self.state, self.port, self.server, self.chance = state, port, server, chance
        self.wal = state / f"{LEDGER_FILE}-wal"
        self.lock = threading.Lock()
        self.watched = False
        self.answered = False
        self.wal_inode: int | None = None
        self.problems: list[str] = []
        self.reads: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="outside-readers")

    def watch(self) -> None:
        with self.lock:
            self.watched, self.answered, self.wal_inode = True, False, None

    def wait_answered(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        """Wait until the watched daemon answers over HTTP (or ends, or time is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            with self.lock:
                if self.answered:
                    return
            time.sleep(0.05)

    def unwatch(self) -> bool:
        """Stop watching; tell whether the daemon answered over HTTP meanwhile."""
        with self.lock:
            self.watched = False
            return self.answered

    def _problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def _run(self) -> None:
        rounds = 0
        while not self.stop.wait(0.05):
            rounds += 1
            self._shell()
            if rounds % 10 == 0:
                self._status()
            self._http()
            self._check_wal()

    def _shell(self) -> None:
        if not (self.state / LEDGER_FILE).exists():
            return
        assert SQLITE3 is not None, "the sqlite3 shell is missing: the test command installs it"
        shell = [SQLITE3, "-cmd", ".timeout 5000", str(self.state / LEDGER_FILE)]
        self._read("shell", shell, "select count(*) from sends; select count(*) from replies;")

    def _status(self) -> None:
        status = [sys.executable, "-m", "mailopsd", "status", "--state-dir", str(self.state)]
        self._read("status", status)

    def _read(self, what: str, command: list[str], given: str | None = None) -> None:
        """Run an outside reader; a damaged database is a problem, a busy one is not."""
        done = subprocess.run(
            command, input=given, capture_output=True, text=True, timeout=120, check=False
        )
        self.reads[what] += 1
        if "malformed" in done.stderr or "I/O error" in done.stderr:
            self._problem(f"{what}: {done.stderr.strip()}")

    def _request(self, method: str, path: str, body: bytes | None = None) -> str | None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse().read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            return None  # no daemon serving now, or it was killed while answering
        finally:
            connection.close()
        self.reads["http"] += 1
        with self.lock:
            self.answered = self.answered or self.watched
        return answer

    def _http(self) -> None:
        answers = [self._request("GET", "/metrics"), self._request("GET", "/readyz")]
        unsubscribe = self._unsubscribe_link()
        if unsubscribe is not None:
            path, post = unsubscribe
            answers.append(self._request("GET", path))
            if post:
                answers.append(self._request("POST", path, b"List-Unsubscribe=One-Click"))
                self.reads["one-click"] += 1
        with self.lock:
            watched = self.watched
        for answer in answers:
            if watched and answer is not None and self._unreadable(answer):
                self._problem(f"http: {answer[:300]}")

    @staticmethod
    def _unreadable(answer: str) -> bool:
        return (
            "mailopsd_ledger_readable 0" in answer
            or "ledger cannot be read" in answer
            or "could not be recorded just now" in answer
        )

    def _unsubscribe_link(self) -> tuple[str, bool] | None:
        """A recent message's one-click path, and whether to use it (never a replied lead's)."""
        with self.server.handler.lock:
            recent = self.server.handler.messages[-50:]
        if not recent:
            return None
        message = self.chance.choice(recent)
        found = UNSUBSCRIBE.search(str(parsed(message)["List-Unsubscribe"]))
        if found is None:
            return None
        to = message.rcpt_tos[0]
        post = to.startswith("lead") and int(to[4:9]) % 10 == 5 and self.chance.random() < 0.2
        return found[1], post

    def _check_wal(self) -> None:
        with self.lock:
            if not (self.watched and self.answered):
                return
            try:
                inode: int | None = self.wal.stat().st_ino
            except FileNotFoundError:
                inode = None
            if self.wal_inode is None:
                self.wal_inode = inode  # from the daemon's first answer on, it holds one
            elif inode != self.wal_inode:
                what = "vanished" if inode is None else "was replaced"
                self.problems.append(f"the write-ahead log {what} under a serving daemon")

    def __enter__(self) -> _Outside:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def _disabled(state: Path) -> dict[str, str]:
    entries = load_state(state).credentials
    return {key: str(entry.disabled_at) for key, entry in entries.items() if entry.disabled_at}


def _once_and_maybe_kill(path: Path, state: Path, log: Path, chance: Random) -> int:
    """A ``--once`` run, killed at a random moment unless it finished first: 1 if killed."""
    process = _run(path, state, log)
    time.sleep(chance.uniform(0.1, 1.5))
    if process.poll() is not None:
        assert process.returncode == 0, log.read_text()[-2000:]
        return 0
    process.send_signal(signal.SIGKILL)
    process.wait()
    return 1


def _serve_and_end(
    path: Path, state: Path, log: Path, outside: _Outside, chance: Random, *, stop: bool
) -> int:
    """A serving daemon, watched, then killed or, if ``stop``, stopped: 1 if stopped.

    The daemon is given time to start and answer over HTTP (the ``--once`` runs are the
    ones killed while starting), then runs for a random while under the outside readers.
    Only a daemon that is up is stopped with SIGTERM (before its signal handlers are
    installed, SIGTERM would only be another kill).
    """
    process = _run(path, state, log, once=False)
    outside.watch()
    outside.wait_answered(process, timeout_s=60)
    time.sleep(chance.uniform(0.1, 1.5))
    answered = outside.unwatch()
    if process.poll() is not None:
        raise AssertionError(f"a serving daemon ended by itself: {log.read_text()[-2000:]}")
    stop = stop and answered
    process.send_signal(signal.SIGTERM if stop else signal.SIGKILL)
    assert process.wait(timeout=120) == (0 if stop else -signal.SIGKILL), log.read_text()[-2000:]
    return int(stop)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_sigkill_anywhere(tmp_path: Path, test_ca: TestCA, dovecot: Dovecot) -> None:
    """Kill the daemon at random moments; nothing is lost, nothing is sent twice."""
    chance = seeded("crash")
    user, _ = dovecot.add_user()
    server = start_smtp(
        test_ca,
        {f"box{i}": f"pw-box{i}" for i in range(5)},
        rules={
            f"risk{i:04d}@example.org": ("RCPT", "550 5.1.1 no such user")
            for i in range(0, RISKY_LEADS, 3)
        },
        starttls=False,
    )
    port = _free_port()
    path = _write_config(tmp_path, server, imap_fields(dovecot, user), port)
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    kills = runs = stops = serving = 0
    disabled: dict[str, str] = {}
    outside = _Outside(state, port, server, chance)
    try:
        with _Replier(server, dovecot, user) as replier, outside:
            while kills < KILLS and runs < KILLS * 4:  # runs that finish first are no kills
                runs += 1
                if chance.random() < 0.4:
                    serving += 1
                    stop = serving % 3 == 0
                    stops += _serve_and_end(path, state, log, outside, chance, stop=stop)
                    kills += 1
                else:
                    kills += _once_and_maybe_kill(path, state, log, chance)
                if (state / "state.yaml").exists():
                    now_disabled = _disabled(state)  # the state file parses after every kill
                    lost = {k: v for k, v in disabled.items() if now_disabled.get(k) != v}
                    assert not lost, f"disabled_at lost after run {runs}: {lost}"
                    disabled = now_disabled
            for _ in range(30):  # finish without kills, the last replies read
                time.sleep(1.1)
                before = len(server.handler.messages)
                assert _run(path, state, log).wait(timeout=300) == 0, log.read_text()[-2000:]
                if len(server.handler.messages) == before and runs > 0:
                    break
            time.sleep(0.3)
        assert _run(path, state, log).wait(timeout=300) == 0  # reads the last replies
        with server.handler.lock:
            received = list(server.handler.messages)
    finally:
        server.controller.stop()
    heads = [parsed(m) for m in received]  # each message parsed once, for every check
    twice = [
        key
        for key, n in Counter(
            (m.rcpt_tos[0], head["Subject"]) for m, head in zip(received, heads, strict=True)
        ).items()
        if n > 1
    ]
    assert twice == [], f"sent twice: {twice[:5]}"
    assert outside.problems == [], outside.problems[:5]
    assert outside.reads["shell"] > 0
    assert outside.reads["status"] > 0
    assert outside.reads["http"] > 0
    assert stops > 0, "no serving daemon was stopped normally"
    ledger = Ledger.open(state)
    try:
        assert ledger.integrity_ok()
        message_ids = [str(head["Message-ID"]) for head in heads]
        outcomes = ledger.sends.outcomes(message_ids)
        replied = Counter(
            reply.email for reply in ledger.inbox.replies("main") if reply.kind == "reply"
        )
    finally:
        ledger.close()
    assert {outcomes.get(message_id) for message_id in message_ids} <= {"sent", "unknown"}
    missing = sorted(replier.replied - set(replied))
    assert not missing, f"replies not recorded: {missing[:5]}"
    assert max(replied.values()) == 1, "a reply was recorded twice"
    assert "risky/r" in _disabled(state), "the bouncing mailbox was never disabled"
    assert disabled.items() <= _disabled(state).items()
    unknown = sum(1 for outcome in outcomes.values() if outcome == "unknown")
    print(
        f"kills={kills} (stopped={stops}) runs={runs} accepted={len(received)} "
        f"unknown={unknown} replies={len(replier.replied)} disabled={sorted(disabled)} "
        f"outside reads={dict(outside.reads)}"
    )
    assert len(received) > LEADS  # the runs got through step 1 and into step 2
    assert kills >= KILLS // 2, f"only {kills} kills landed mid-run"
