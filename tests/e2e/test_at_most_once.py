"""SIGKILL at random moments during thousands of sends: no lead ever gets a step twice.

The SMTP server's own record of what it accepted is the witness. The seed is printed;
``MAILOPSD_KILLS`` sets how many kills (default 25).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mailopsd.state.ledger import Ledger
from tests.dispatch_setup import credential, parsed, write_campaign
from tests.servers.smtp import start_smtp
from tests.servers.tlsca import TestCA

LEADS = 3000
KILLS = int(os.environ.get("MAILOPSD_KILLS", "25"))


def _run(path: Path, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "mailopsd", "run", "--once", "--allow-plaintext-secrets"),
            *("--config", str(path), "--state-dir", str(state)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_sigkill_never_sends_twice(tmp_path: Path, test_ca: TestCA) -> None:
    """Kill the daemon many times mid-run; each lead gets each step at most once."""
    seed = int(os.environ.get("MAILOPSD_SEED", str(random.SystemRandom().randrange(10**6))))
    print(f"seed={seed} kills={KILLS}")
    chance = random.Random(seed)
    users = {f"box{i}": f"pw-box{i}" for i in range(4)}
    server = start_smtp(test_ca, users, starttls=False)
    try:
        boxes = {
            f"b{i}": credential(server, f"box{i}", tls="none", tls_ca_file=None, daily_limit=10000)
            for i in range(4)
        }
        for box in boxes.values():
            del box["tls_ca_file"]
        path = write_campaign(tmp_path, boxes, leads=LEADS, steps=2, delay="0:00:01")
        state = tmp_path / "state"
        kills = 0
        for _ in range(KILLS * 4):  # bounded: runs that finish first are not kills
            process = _run(path, state)
            time.sleep(chance.uniform(0.2, 1.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
            if kills == KILLS:
                break
        for _ in range(20):  # finish the run without kills
            time.sleep(1.1)
            before = len(server.handler.messages)
            assert _run(path, state).wait(timeout=300) == 0
            if len(server.handler.messages) == before:
                break
        received = [
            (m.rcpt_tos[0], parsed(m)["Subject"], parsed(m)["Message-ID"])
            for m in server.handler.messages
        ]
    finally:
        server.controller.stop()
    twice = [
        key
        for key, count in Counter((to, subject) for to, subject, _ in received).items()
        if count > 1
    ]
    assert twice == [], f"seed={seed}: sent twice: {twice[:5]}"
    ledger = Ledger.open(state)
    try:
        assert ledger.integrity_ok()
        outcomes = dict(ledger._db.execute("SELECT message_id, outcome FROM sends"))
    finally:
        ledger.close()
    assert {outcomes.get(message_id) for _, _, message_id in received} <= {"sent", "unknown"}
    unknown = sum(1 for outcome in outcomes.values() if outcome == "unknown")
    print(f"seed={seed} kills landed={kills} accepted={len(received)} unknown={unknown}")
    assert len(received) > LEADS  # the run got through step 1 and into step 2
    assert kills >= KILLS // 2, f"only {kills} kills landed mid-run"
