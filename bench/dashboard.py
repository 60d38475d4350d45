"""The dashboard's pages on a large ledger, against ``status --json`` of the same data.

    python -m bench dashboard [--quick]

One campaign with 100 mailboxes (quick: 10) is reconciled into a state directory by
``mailopsd run --once``; then 1,000,000 sends (quick: 20,000) over 90 days, with their
hard bounces, are written straight into its ledger (the per-day counters follow by the
ledger's own triggers). Timed, median of several calls: the daemon's answer to the
campaign's page and to the overview, signed in (``mailopsd.http.dashboard.answer``, as
the daemon answers the HTTP process: the HTTP hop adds well under a millisecond), and,
as the reference, ``mailopsd status --json`` run as a command on the same state
directory, and its figures (``build_status``) alone, in this process.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bench.ledger import _median_ms
from bench.report import Row
from mailopsd.config.loader import LoadOptions, load_config
from mailopsd.http import dashboard
from mailopsd.http.apikeys import hash_api_key
from mailopsd.state.ledger import LEDGER_FILE
from mailopsd.state.schema import stamp
from mailopsd.status.report import build_status

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
CAMPAIGN = "bench"
KEY = "mk_bench-dashboard-key-0123456789abcdefghijklm"
TARGET_MS = 200.0
DAYS = 90


def _config(directory: Path, mailboxes: int) -> Path:
    credentials = {
        f"box-{n:03d}": {
            "smtp_host": "127.0.0.1",
            "smtp_port": 2525,
            "smtp_username": f"user{n}",
            "smtp_password": f"pw-{n}",
            "from_name": "Bench",
            "from_email": f"box{n}@example.com",
            "daily_limit": 500,
            "status": "sandbox",
        }
        for n in range(mailboxes)
    }
    (directory / "leads.csv").write_text("email,first_name\n")
    config = {
        "campaigns": {
            CAMPAIGN: {
                "name": "Bench campaign",
                "leads": "leads.csv",
                "sequence": [
                    {"subject": "Hello", "body": "Hi."},
                    {"delay": "2 days", "body": "Again."},
                    {"delay": "3 days", "body": "Last."},
                ],
                "smtp_credentials": credentials,
            }
        },
        "http": {
            "listen": "127.0.0.1:0",
            "public_base_url": "https://mail.example.com",
            "signing_key": "bench-dashboard-signing-key-0123456789abcdef",
            "dashboard": True,
        },
        "api_keys": {"bench": {"account": "default", "sha256": hash_api_key(KEY)}},
    }
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _reconcile(config: Path, state: Path) -> None:
    subprocess.run(  # noqa: S603 - our own program, fixed arguments
        [
            *(sys.executable, "-m", "mailopsd", "run", "--once", "--config", str(config)),
            *("--state-dir", str(state), "--allow-plaintext-secrets", "--now", NOW.isoformat()),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )


def _fill(state: Path, rows: int, mailboxes: int) -> None:
    """Write ``rows`` sends over ``DAYS`` days, 3% of them hard-bounced, into the ledger."""
    span = timedelta(days=DAYS).total_seconds()
    first = NOW - timedelta(days=DAYS)
    rng = random.Random(11)
    db = sqlite3.connect(state / LEDGER_FILE, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")

        def sends() -> Iterator[tuple[object, ...]]:
            for i in range(rows):
                at = stamp(first + timedelta(seconds=span * i / rows))
                outcome = "bounced" if rng.random() < 0.03 else "sent"
                yield (
                    *(CAMPAIGN, f"box-{i % mailboxes:03d}", f"lead{i // 3}@example.net"),
                    *(rng.choice((1, 1, 2, 3)), f"<{i}.bench@example.com>", at, outcome, at),
                    *(at[:10], "example.net"),
                )

        db.executemany(
            "INSERT INTO sends (campaign_id, credential_id, email, step, message_id, "
            "intent_at, outcome, outcome_at, day, domain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sends(),
        )
        db.execute(
            "INSERT INTO bounces (campaign_id, credential_id, email, send_id, at, permanent, "
            "status, source, kind) SELECT campaign_id, credential_id, email, id, outcome_at, "
            "1, '550', 'smtp', 'hard' FROM sends WHERE outcome = 'bounced'"
        )
        db.execute("COMMIT")
    finally:
        db.close()


def _page(board: dashboard.Board, cookie: str, path: str) -> bytes:
    page = dashboard.answer(board, "GET", path, {"HTTP_COOKIE": cookie})
    if page.status != "200 OK":
        raise RuntimeError(f"{path} answered {page.status}")
    return page.body


def _cookie(board: dashboard.Board) -> str:
    page = dashboard.answer(board, "POST", "/dashboard/sign-in", {}, f"key={KEY}".encode())
    return dict(page.headers)["Set-Cookie"].split(";")[0]


def run(quick: bool) -> list[Row]:
    """Reconcile, fill the ledger, then time the pages and the status."""
    rows, mailboxes = (20_000, 10) if quick else (1_000_000, 100)
    calls = 1 if quick else 11
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        directory = Path(tmp)
        config, state = _config(directory, mailboxes), directory / "state"
        _reconcile(config, state)
        _fill(state, rows, mailboxes)
        loaded = load_config(config, LoadOptions(allow_plaintext_secrets=True))
        board = dashboard.board_for(loaded, state, NOW)
        if board is None:
            raise RuntimeError("the dashboard is off in the bench config")
        cookie = _cookie(board)
        page = f"/dashboard/campaigns/{CAMPAIGN}"
        if _page(board, cookie, page).count(b'<g class="day"') != 30 * mailboxes:
            raise RuntimeError("the campaign page lacks days")
        campaign_ms = _median_ms(lambda: _page(board, cookie, page), calls)
        overview_ms = _median_ms(lambda: _page(board, cookie, "/dashboard"), calls)
        status_ms = _median_ms(lambda: build_status(state, NOW), calls)
        command = [sys.executable, "-m", "mailopsd", "status", "--json", "--state-dir", str(state)]
        command_ms = _median_ms(
            lambda: subprocess.run(command, check=True, capture_output=True, timeout=600),  # noqa: S603
            calls,
        )
    note = f"{rows:,} sends over {DAYS} days, {mailboxes} mailboxes; median of {calls} calls"
    full = not quick
    return [
        Row(
            "dashboard",
            "campaign page (charts of 30 days)",
            campaign_ms,
            "ms",
            "status --json (command)",
            command_ms,
            campaign_ms / command_ms,
            f"≤ {TARGET_MS:g} ms" if full else "",
            campaign_ms <= TARGET_MS if full else None,
            note,
        ),
        Row(
            "dashboard",
            "campaign page, vs the status figures alone",
            campaign_ms,
            "ms",
            "build_status",
            status_ms,
            campaign_ms / status_ms,
            note=note,
        ),
        Row(
            "dashboard",
            "overview page",
            overview_ms,
            "ms",
            "status --json (command)",
            command_ms,
            overview_ms / command_ms,
            note=note,
        ),
    ]
