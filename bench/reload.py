"""Change-to-applied latency of the running daemon, and the cost of a reload.

    python -m bench.reload [--campaigns 1000] [--credentials 10] [--rounds 5]

A daemon runs on a generated, SOPS-encrypted config. Each round edits one credential's
``daily_limit`` in the file and measures, from the moment the file is saved, until the
daemon says ``READY=1`` after its reload (the new state is then written and visible in
``status``); the daemon-side part is the time from ``RELOADING=1`` to ``READY=1``. The
reference, timed in the same rounds, is a full cold ``load_config`` of the same file.
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

from bench.generate import generate
from bench.timing import machine, parse_size
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


def _wait(sock: socket.socket, line: str, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = sock.recv(4096).decode()
        if line in message.splitlines():
            return time.monotonic()
    raise TimeoutError(line)


def main() -> None:
    args = parse_size(__doc__)
    identity, recipient = generate_identity()
    # Under /tmp: the notify socket's path must stay short (AF_UNIX).
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        path = generate(
            base / "config",
            campaigns=args.campaigns,
            credentials=args.credentials,
            plain_secrets=True,
        )
        options = EncryptOptions((recipient,), secret_fields_rule(SECRET_FIELDS), True)
        path.write_text(encrypt_text(path.read_text(), options, path.name, now=datetime.now(UTC)))
        key = base / "key.txt"
        key.write_text(identity + "\n")
        key.chmod(0o600)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(base / "n"))
        sock.settimeout(600)
        env = dict(os.environ, NOTIFY_SOCKET=str(base / "n"))
        started = time.monotonic()
        daemon = subprocess.Popen(  # noqa: S603 - our own program
            [
                *(sys.executable, "-m", "mailopsd", "run", "--config", str(path.parent)),
                *("--state-dir", str(base / "state"), "--age-key-file", str(key)),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            cold_start = _wait(sock, "READY=1") - started
            latencies, reloads, cold_loads = [], [], []
            identities = parse_identities(identity, "bench")
            load = LoadOptions(identities=lambda: identities)
            for round_ in range(args.rounds):
                text = path.read_text()
                old = f"daily_limit: {50 + round_ % 10}\n"
                text = text.replace(old, f"daily_limit: {500 + round_}\n", 1)
                path.write_text(text)
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
    count = args.campaigns * args.credentials
    print(f"machine: {machine()}")
    print(f"config: {count} credentials, SOPS-encrypted; {args.rounds} rounds")
    print(f"  daemon cold start to READY=1             {cold_start:7.3f} s")
    p50 = statistics.median(latencies)
    reference = statistics.median(cold_loads)
    ratio = p50 / reference
    print(f"  file saved -> applied (p50)              {p50:7.3f} s  x{ratio:5.2f} of a cold load")
    print(f"  reload, RELOADING=1 -> READY=1 (p50)     {statistics.median(reloads):7.3f} s")
    print(f"  cold load_config of the file (reference) {reference:7.3f} s")


if __name__ == "__main__":
    main()
