"""Push to applied, for a daemon that follows a git remote.

    python -m bench git [--quick]

The config of ``bench reload`` (10,000 SOPS-encrypted credentials in 1,000 files, plus
an ``http`` file for the webhook) is committed to a bare repository on this machine.
``mailopsd run --git`` follows it. Each round edits one credential's ``daily_limit``,
commits and pushes, then (webhook rounds) posts ``/hooks/git`` signed as GitHub signs
it; the time runs from the end of the push to the daemon's ``READY=1`` after its
reload. Interval rounds post nothing: a second daemon fetches every 2 s (quick: 0.5 s),
so its time is about half the interval plus the same work. The reference, timed in the same
rounds, is ``git fetch`` and ``git checkout`` of the same commit into a clone of the
test's (what git itself needs of the time), and a cold ``load_config`` of the files.
API rounds send ``PATCH`` of one credential's ``daily_limit`` to the webhook daemon
(``api.write: commit``) and time it to its ``200``, which comes once the commit is
pushed and applied; against the webhook rounds' push to applied.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.reload import _split_config, _wait
from bench.report import Row
from bench.smtp import free_port
from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import SECRET_FIELDS
from mailopsd.http.apikeys import hash_api_key
from mailopsd.secrets import (
    EncryptOptions,
    encrypt_text,
    generate_identity,
    parse_identities,
    secret_fields_rule,
)

SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway for this run
API_KEY = "mk_bench-write-key-0123456789abcdefghijklmnopq"
TARGET_S = 1.0
INTERVAL_S = 2.0
QUICK_INTERVAL_S = 0.5  # quick: the same fetches, sooner


def _git(*args: str, cwd: Path) -> float:
    """Run git; how long it took."""
    started = time.monotonic()
    subprocess.run(  # noqa: S603 - fixed arguments
        ["git", *args],  # noqa: S607 - git from PATH
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.monotonic() - started


def _hook(port: int) -> None:
    body = b'{"ref": "refs/heads/main"}'
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"X-Hub-Signature-256": f"sha256={signature}"}
        connection.request("POST", "/hooks/git", body=body, headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()
    if status != 202:
        raise RuntimeError(f"the webhook got {status}")


def _patch(port: int, path: str, limit: int) -> float:
    """PATCH a credential's daily_limit through the API; how long until its answer."""
    body = json.dumps({"smtp_credential": {"daily_limit": limit}}).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.monotonic()
    try:
        connection.request("PATCH", path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"the API write got {response.status}: {text[:300]!r}")
    return time.monotonic() - started


def _account(file: Path) -> str:
    """The account of the campaign in a generated campaign file."""
    found = re.search(r"^    account: ([a-z0-9-]+)$", file.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no account in {file}")
    return found.group(1)


def _last_file_credential(config: Path) -> str:
    """The API path of the first credential of the last campaign file.

    The push rounds edit the first file: the writes keep out of their lines.
    """
    last = sorted(config.glob("camp-*.yaml"))[-1]
    text = last.read_text()
    campaign = re.search(r"^  (camp-[a-z0-9-]+):$", text, re.MULTILINE)
    credential = re.search(r"^ {6}([a-z0-9-]+):$", text, re.MULTILINE)
    if campaign is None or credential is None:
        raise RuntimeError(f"no campaign or credential found in {last}")
    return f"/campaigns/{campaign.group(1)}/smtp_credentials/{credential.group(1)}"


class _Follower:
    """One ``mailopsd run --git`` with a notify socket of its own."""

    def __init__(self, base: Path, name: str, url: str, key: Path, *options: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(base / f"n-{name}"))
        self.sock.settimeout(600)
        env = dict(os.environ, NOTIFY_SOCKET=str(base / f"n-{name}"))
        self.process = subprocess.Popen(  # noqa: S603 - our own program
            [
                *(sys.executable, "-m", "mailopsd", "run", "--git", url, "--git-path", "config"),
                *("--state-dir", str(base / f"state-{name}"), "--age-key-file", str(key)),
                *options,
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )

    def applied(self) -> float:
        """Wait for the next reload to end; when it did."""
        _wait(self.sock, "RELOADING=1")
        return _wait(self.sock, "READY=1")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)
        self.sock.close()


def _repository(base: Path, credentials: int, recipient: str, port: int) -> tuple[Path, Path]:
    """The bare remote and the clone that pushes to it, with the config committed."""
    bare, work = base / "remote.git", base / "work"
    _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=base)
    _git("clone", "-q", str(bare), str(work), cwd=base)
    _split_config(work / "config", credentials, recipient)
    account = _account(sorted((work / "config").glob("camp-*.yaml"))[-1])
    options = EncryptOptions((recipient,), secret_fields_rule(SECRET_FIELDS), True)
    text = (
        f"http:\n  listen: 127.0.0.1:{port}\n  public_base_url: https://mail.example.com\n"
        "  signing_key: bench-signing-key-0123456789abcdefghijklmnop\n"
        "api:\n  write: commit\n"
        f"api_keys:\n  bench: {{account: {account}, sha256: {hash_api_key(API_KEY)}, "
        "scope: write}\n"
    )
    encrypted = encrypt_text(text, options, "http.yaml", now=datetime.now(UTC))
    (work / "config" / "http.yaml").write_text(encrypted)
    for setting in (("user.name", "Bench"), ("user.email", "bench@example.com")):
        _git("config", *setting, cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "config", cwd=work)
    _git("push", "-q", "origin", "main", cwd=work)
    return bare, work


def run(quick: bool) -> list[Row]:
    """Follow a remote with two daemons (webhook, interval) and time each push to applied."""
    credentials = 100 if quick else 10_000
    rounds = 1 if quick else 10
    interval_s = QUICK_INTERVAL_S if quick else INTERVAL_S
    identity, recipient = generate_identity()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        port = free_port()
        bare, work = _repository(base, credentials, recipient, port)
        key = base / "key.txt"
        key.write_text(identity + "\n")
        key.chmod(0o600)
        (base / "secret").write_text(SECRET)
        url = f"file://{bare}"
        _git("clone", "-q", str(bare), str(base / "reference"), cwd=base)
        identities = parse_identities(identity, "bench")
        options = LoadOptions(identities=lambda: identities)
        started = time.monotonic()
        hooked = _Follower(
            base,
            "hook",
            url,
            key,
            *("--git-interval", "3600", "--git-webhook-secret-file", str(base / "secret")),
        )
        cold_start = _wait(hooked.sock, "READY=1") - started
        edited = sorted((work / "config").glob("camp-*.yaml"))[0]
        webhook, git_alone, cold_loads = [], [], []
        try:
            for round_ in range(rounds):
                text = edited.read_text()
                old = f"daily_limit: {50 + round_ % 10}\n"
                edited.write_text(text.replace(old, f"daily_limit: {500 + round_}\n", 1))
                _git("commit", "-q", "-am", f"round {round_}", cwd=work)
                _git("push", "-q", "origin", "main", cwd=work)
                pushed = time.monotonic()
                _hook(port)
                webhook.append(hooked.applied() - pushed)
                git_alone.append(
                    _git("fetch", "-q", "origin", cwd=base / "reference")
                    + _git("checkout", "-q", "--detach", "origin/main", cwd=base / "reference")
                )
                start = time.monotonic()
                load_config(work / "config", options)
                cold_loads.append(time.monotonic() - start)
            credential = _last_file_credential(work / "config")
            _patch(port, credential, 900)  # the write clone's first load is a cold one
            writes = [_patch(port, credential, 901 + round_) for round_ in range(rounds)]
        finally:
            hooked.close()
        _git("pull", "-q", "origin", "main", cwd=work)
        interval = []
        polled = _Follower(base, "poll", url, key, "--git-interval", str(interval_s))
        try:
            _wait(polled.sock, "READY=1")
            for round_ in range(1 if quick else rounds):  # each round waits for the interval
                text = edited.read_text()
                edited.write_text(
                    text.replace(f"daily_limit: {500 + round_}\n", "daily_limit: 7\n")
                )
                _git("commit", "-q", "-am", f"interval round {round_}", cwd=work)
                _git("push", "-q", "origin", "main", cwd=work)
                pushed = time.monotonic()
                interval.append(polled.applied() - pushed)
                edited.write_text(
                    edited.read_text().replace("daily_limit: 7\n", f"daily_limit: {500 + round_}\n")
                )
                _git("commit", "-q", "-am", f"interval round {round_}, back", cwd=work)
                _git("push", "-q", "origin", "main", cwd=work)
                polled.applied()
        finally:
            polled.close()
    p50 = statistics.median(webhook)
    reference = statistics.median(git_alone)
    note = f"{credentials:,} credentials in {credentials // 10:,} files, {rounds} rounds"
    full = not quick
    return [
        Row(
            "git",
            "push -> applied with the webhook, p50",
            p50 * 1000,
            "ms",
            "git fetch + checkout",
            reference * 1000,
            p50 / reference,
            f"≤ {TARGET_S * 1000:g} ms" if full else "",
            p50 <= TARGET_S if full else None,
            note,
        ),
        Row(
            "git",
            "push -> applied with the webhook, vs cold load",
            p50 * 1000,
            "ms",
            "cold load",
            statistics.median(cold_loads) * 1000,
            p50 / statistics.median(cold_loads),
            note=note,
        ),
        Row(
            "git",
            f"push -> applied by a {interval_s:g} s interval fetch, p50",
            statistics.median(interval) * 1000,
            "ms",
            note=note,
        ),
        Row(
            "git",
            "API PATCH -> 200 (committed, pushed, applied), p50",
            statistics.median(writes) * 1000,
            "ms",
            "push -> applied with the webhook",
            p50 * 1000,
            statistics.median(writes) / p50,
            note=note,
        ),
        Row("git", "daemon cold start (clone, fetch, load) to READY=1", cold_start, "s", note=note),
    ]
