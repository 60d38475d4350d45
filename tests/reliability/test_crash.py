"""Crash anywhere: SIGKILL at seeded random moments while the daemon sends and reads mail.

Two campaigns run against a real SMTP server and a real IMAP server on loopback: one
with four mailboxes, thousands of leads and replies arriving over IMAP, one whose
mailbox bounces enough to be disabled. The daemon is killed over and over (``--once``
runs, each killed at a random moment or left to finish) and restarted. Afterwards:

- no lead received any step twice (the SMTP server's record is the witness);
- every message the server accepted is in the ledger as ``sent`` or ``unknown``;
- the state file parsed after every kill, and a ``disabled_at`` once written stayed;
- every reply put in the mailbox was recorded, and the ledger passes its integrity check.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import load_state
from tests import inbox_mail
from tests.dispatch_setup import parsed
from tests.integration.test_inbox import imap_fields
from tests.reliability.counts import count, seeded
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

KILLS = count(30, 250)
LEADS = count(2000, 5000)
RISKY_LEADS = 300


def _box(server: SmtpServer, login: str, **extra: Any) -> dict[str, Any]:
    return {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_username": login,
        "smtp_password": f"pw-{login}",
        "from_email": f"{login}@sender.example.com",
        "from_name": login.capitalize(),
        "daily_limit": 100_000,
        "tls": "none",
        **extra,
    }


def _write_config(directory: Path, server: SmtpServer, imap: dict[str, Any]) -> Path:
    (directory / "main.csv").write_text(
        "email,first_name\n" + "".join(f"lead{i:05d}@example.net,L{i}\n" for i in range(LEADS))
    )
    (directory / "risky.csv").write_text(
        "email,first_name\n"
        + "".join(f"risk{i:04d}@example.org,R{i}\n" for i in range(RISKY_LEADS))
    )
    steps = [
        {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}, step 1."},
        {"delay": "0:00:01", "body": "Hi again {{ first_name }}, step 2."},
    ]
    config = {
        "campaigns": {
            "main": {
                "name": "Main",
                "leads": "main.csv",
                "sequence": steps,
                "smtp_credentials": {
                    "b0": _box(server, "box0", **imap),
                    **{f"b{i}": _box(server, f"box{i}") for i in range(1, 4)},
                },
            },
            "risky": {
                "name": "Risky",
                "leads": "risky.csv",
                "sequence": steps,
                "bounce_threshold": 0.2,
                "bounce_min_sends": 20,
                "smtp_credentials": {"r": _box(server, "box4")},
            },
        }
    }
    path = directory / "campaigns.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _run(path: Path, state: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "mailopsd", "run", "--once", "--allow-plaintext-secrets"),
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


def _disabled(state: Path) -> dict[str, str]:
    entries = load_state(state).credentials
    return {key: str(entry.disabled_at) for key, entry in entries.items() if entry.disabled_at}


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
    path = _write_config(tmp_path, server, imap_fields(dovecot, user))
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    kills = runs = 0
    disabled: dict[str, str] = {}
    try:
        with _Replier(server, dovecot, user) as replier:
            while kills < KILLS and runs < KILLS * 4:  # runs that finish first are no kills
                runs += 1
                process = _run(path, state, log)
                time.sleep(chance.uniform(0.1, 1.5))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                    process.wait()
                else:
                    assert process.returncode == 0, log.read_text()[-2000:]
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
    twice = [
        key
        for key, n in Counter((m.rcpt_tos[0], parsed(m)["Subject"]) for m in received).items()
        if n > 1
    ]
    assert twice == [], f"sent twice: {twice[:5]}"
    ledger = Ledger.open(state)
    try:
        assert ledger.integrity_ok()
        outcomes = dict(ledger._db.execute("SELECT message_id, outcome FROM sends"))
        replied = Counter(
            email
            for (email,) in ledger._db.execute(
                "SELECT email FROM replies WHERE campaign_id = 'main' AND kind = 'reply'"
            )
        )
    finally:
        ledger.close()
    assert {outcomes.get(str(parsed(m)["Message-ID"])) for m in received} <= {"sent", "unknown"}
    missing = sorted(replier.replied - set(replied))
    assert not missing, f"replies not recorded: {missing[:5]}"
    assert max(replied.values()) == 1, "a reply was recorded twice"
    assert "risky/r" in _disabled(state), "the bouncing mailbox was never disabled"
    assert disabled.items() <= _disabled(state).items()
    unknown = sum(1 for outcome in outcomes.values() if outcome == "unknown")
    print(
        f"kills={kills} runs={runs} accepted={len(received)} unknown={unknown} "
        f"replies={len(replier.replied)} disabled={sorted(disabled)}"
    )
    assert len(received) > LEADS  # the runs got through step 1 and into step 2
    assert kills >= KILLS // 2, f"only {kills} kills landed mid-run"
