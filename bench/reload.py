"""Change-to-applied latency of the running daemon, against a cold load.

    python -m bench reload [--quick]

A daemon runs on a generated, SOPS-encrypted config of 10,000 credentials, kept as
config in git usually is: one file per campaign (1,000 files of 10 credentials). Each
round edits one credential's ``daily_limit`` in one file and measures, from the moment the file
is saved, until the daemon says ``READY=1`` after its reload (the new state is then
written and visible in ``status``); the daemon-side part is the time from
``RELOADING=1`` to ``READY=1``. The reference, timed in the same rounds, is a full cold
``load_config`` of the same files. Before the rounds, the time from start to ``READY=1``:
of a first start on an empty state directory, and of a start on the state it left.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.generate import generate_credentials
from bench.report import Row
from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import SECRET_FIELDS
from mailopsd.secrets import (
    EncryptOptions,
    encrypt_text,
    generate_identity,
    parse_identities,
    secret_fields_rule,
)

START_TARGET_S = 3.0


def _wait(sock: socket.socket, line: str, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = sock.recv(4096).decode()
        if line in message.splitlines():
            return time.monotonic()
    raise TimeoutError(line)


def _split_config(directory: Path, credentials: int, recipient: str) -> Path:
    """Generate the config, then keep each campaign in its own encrypted file."""
    whole = generate_credentials(directory, credentials, plain_secrets=True)
    # No leads: the daemon under test only reloads. With the generated lead, a tick in
    # the campaigns' send window would try the generated hosts, which resolve nowhere,
    # and hold the loop (and so the reload) for as long as the name lookups take.
    (directory / "leads.csv").write_text("email,first_name,company\n")
    options = EncryptOptions((recipient,), secret_fields_rule(SECRET_FIELDS), True)
    body = whole.read_text().removeprefix("campaigns:\n")
    whole.unlink()
    for number, campaign in enumerate(body.split("\n  camp-")):
        text = "campaigns:\n" + ("  camp-" if number else "") + campaign.rstrip("\n") + "\n"
        name = f"camp-{number:05d}.yaml"
        encrypted = encrypt_text(text, options, name, now=datetime.now(UTC))
        (directory / name).write_text(encrypted)
    return directory


def run(quick: bool) -> list[Row]:
    """Start a daemon, edit its config round after round, and time each reload."""
    credentials = 100 if quick else 10_000
    rounds = 1 if quick else 10
    identity, recipient = generate_identity()
    # Under /tmp: the notify socket's path must stay short (AF_UNIX).
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        path = _split_config(base / "config", credentials, recipient)
        key = base / "key.txt"
        key.write_text(identity + "\n")
        key.chmod(0o600)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(base / "n"))
        sock.settimeout(600)
        env = dict(os.environ, NOTIFY_SOCKET=str(base / "n"))
        command = [
            *(sys.executable, "-m", "mailopsd", "run", "--config", str(path)),
            *("--state-dir", str(base / "state"), "--age-key-file", str(key)),
        ]
        # A first start (empty state directory: every campaign and credential is new),
        # stopped, then a start on the state it left, as after a deploy.
        started = time.monotonic()
        daemon = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)  # noqa: S603
        first_start = _wait(sock, "READY=1") - started
        daemon.terminate()
        daemon.wait(timeout=120)
        started = time.monotonic()
        daemon = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)  # noqa: S603
        edited = sorted(path.glob("*.yaml"))[0]
        try:
            cold_start = _wait(sock, "READY=1") - started
            latencies, reloads, cold_loads = [], [], []
            identities = parse_identities(identity, "bench")
            load = LoadOptions(identities=lambda: identities)
            for round_ in range(rounds):
                text = edited.read_text()
                old = f"daily_limit: {50 + round_ % 10}\n"
                text = text.replace(old, f"daily_limit: {500 + round_}\n", 1)
                edited.write_text(text)
                saved = time.monotonic()
                reloading = _wait(sock, "RELOADING=1")
                ready = _wait(sock, "READY=1")
                latencies.append(ready - saved)
                reloads.append(ready - reloading)
                start = time.monotonic()
                load_config(path, load)
                cold_loads.append(time.monotonic() - start)
        finally:
            daemon.terminate()
            daemon.wait(timeout=120)
            sock.close()
    p50 = statistics.median(latencies)
    reference = statistics.median(cold_loads)
    note = f"{credentials:,} credentials, {rounds} rounds"
    full = not quick
    return [
        Row(
            "reload",
            "file saved -> applied, p50",
            p50 * 1000,
            "ms",
            "cold load",
            reference * 1000,
            p50 / reference,
            "≤ 100 ms" if full else "",
            p50 <= 0.1 if full else None,
            note,
        ),
        Row(
            "reload",
            "RELOADING=1 -> READY=1, p50",
            statistics.median(reloads) * 1000,
            "ms",
            note=note,
        ),
        Row(
            "reload",
            "daemon first start to READY=1",
            first_start,
            "s",
            target=f"≤ {START_TARGET_S:g} s" if full else "",
            met=first_start <= START_TARGET_S if full else None,
            note=f"{note}; empty state directory",
        ),
        Row(
            "reload",
            "daemon start to READY=1, state kept",
            cold_start,
            "s",
            target=f"≤ {START_TARGET_S:g} s" if full else "",
            met=cold_start <= START_TARGET_S if full else None,
            note=f"{note}; the state of the first start",
        ),
    ]
