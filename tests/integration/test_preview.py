"""preview against the real thing: its forecast is what run --once then sends.

Ten days of a campaign with a ramp, a plain mailbox, two variants, a send window and a
follow-up: preview's forecast, made before anything ran, is compared per UTC day and
mailbox with what the SMTP server receives from ``run --once --now`` at the same times.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.commands import run_cli
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    parsed,
    run_once,
    write_campaign,
    write_config,
    write_leads,
)
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
EVERY = timedelta(hours=3)
DAYS = 10
PLAIN = "--allow-plaintext-secrets"


def _write(tmp_path: Path, smtp_server: SmtpServer) -> Path:
    boxes = {
        "ramped": credential(
            smtp_server, "ada", daily_limit=6, ramp={"start": 2, "step": 2, "every": "1 day"}
        ),
        "steady": credential(smtp_server, "box2", daily_limit=3),
    }
    sequence = [
        {
            "subject": "Hello {{ first_name }}",
            "body": "Hi {{ first_name }}.",
            "variants": {"a": {"subject": "Hi {{ first_name }}"}, "b": {"body": "Hey."}},
        },
        {"delay": "2 days", "body": "Following up."},
    ]
    window = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
    return write_campaign(
        tmp_path,
        boxes,
        leads=70,
        sequence=sequence,
        timezone="Europe/Paris",
        send_window=window,
    )


def test_the_forecast_is_what_run_once_then_sends(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str], state_ledger: str
) -> None:
    """Per day and mailbox, step 1 and follow-ups: forecast and SMTP record are equal."""
    path = _write(tmp_path, smtp_server)
    state = tmp_path / "state"
    code, out, err = run_cli(
        capsys,
        *("preview", "camp", "--config", str(path), "--state-dir", str(state), PLAIN),
        *("--now", START.isoformat(), "--days", str(DAYS), "--every", "3 hours", "--json"),
    )
    assert code == 0, err
    report = json.loads(out)
    forecast = {
        (row["day"], row["credential_id"]): (row["step1"], row["followups"])
        for row in report["forecast"]["sends"]
    }
    # The forecast ran on a private copy: the state directory holds what it held before.
    pointer = [] if state_ledger == "sqlite" else ["ledger.url"]
    assert sorted(p.name for p in state.glob("*")) == pointer

    logins = {"ada": "ramped", "box2": "steady"}
    seen: Counter[tuple[str, str, bool]] = Counter()
    moment = START
    while moment < START + timedelta(days=DAYS):
        assert run_once(path, state, moment.isoformat()) == 0
        for message in smtp_server.handler.messages:
            follow_up = str(parsed(message)["Subject"]).startswith("Re: ")
            seen[f"{moment:%Y-%m-%d}", logins[message.login], follow_up] += 1
        smtp_server.handler.messages.clear()
        moment += EVERY
    capsys.readouterr()
    actual = {(day, box): (seen[day, box, False], seen[day, box, True]) for day, box, _ in seen}
    assert forecast == actual
    # 8 weekdays: the ramp sends 2, 4, then 6 a day (42), the other mailbox 3 a day (24)
    assert sum(step1 for step1, _ in actual.values()) == 66
    assert sum(followups for _, followups in actual.values()) > 0
    assert forecast["2026-11-23", "ramped"] == (2, 0)  # the ramp's first day
    assert forecast["2026-11-23", "steady"] == (3, 0)
    assert ("2026-11-28", "ramped") not in forecast  # Saturday: the window is closed


def test_the_messages_are_composed_for_the_lead(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """preview --lead prints each step as it would go: headers, threading, its variant."""
    path = _write(tmp_path, smtp_server)
    code, out, err = run_cli(
        capsys,
        *("preview", "camp", "--config", str(path), "--state-dir", str(tmp_path / "s"), PLAIN),
        *("--lead", "LEAD0003@Example.NET", "--days", "0", "--now", START.isoformat()),
    )
    assert code == 0, err
    assert "--- step 1 (variant " in out
    assert "for lead0003@example.net, from ramped:" in out
    assert "To: lead0003@example.net" in out
    assert "In-Reply-To: <preview-step1@sender.example.com>" in out
    assert "Subject: Re: " in out
    code, _, err = run_cli(
        capsys,
        *("preview", "camp", "--config", str(path), "--state-dir", str(tmp_path / "s"), PLAIN),
        *("--lead", "nobody@example.net", "--days", "0"),
    )
    assert code == 1
    assert err == f"error: no lead nobody@example.net in {tmp_path / 'leads.csv'}\n"


@pytest.mark.usefixtures("state_ledger")
def test_the_forecast_counts_a_shared_mailbox_across_campaigns(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """north's forecast is its part of a ramped mailbox that south uses too: per day and
    mailbox, what run --once then sends to north's leads."""
    ramped = credential(
        smtp_server, "ada", daily_limit=6, ramp={"start": 2, "step": 2, "every": "1 day"}
    )
    campaigns = {}
    for name in ("north", "south"):
        write_leads(
            tmp_path / f"{name}.csv", [f"{name}{i:02d}@example.net,L{i}" for i in range(40)]
        )
        boxes: dict[str, Any] = {"shared": {"mailbox": "ada"}}
        if name == "north":
            boxes["steady"] = credential(smtp_server, "box2", daily_limit=3)
        campaigns[name] = campaign_tree(boxes, leads=f"{name}.csv", delay="2 days")
    path = write_config(tmp_path, campaigns, mailboxes={"ada": ramped})
    state = tmp_path / "state"
    code, out, err = run_cli(
        capsys,
        *("preview", "north", "--config", str(path), "--state-dir", str(state), PLAIN),
        *("--now", START.isoformat(), "--days", "6", "--every", "3 hours", "--json"),
    )
    assert code == 0, err
    forecast = {
        (row["day"], row["credential_id"]): (row["step1"], row["followups"])
        for row in json.loads(out)["forecast"]["sends"]
    }
    seen: Counter[tuple[str, str, bool]] = Counter()
    moment = START
    while moment < START + timedelta(days=6):
        assert run_once(path, state, moment.isoformat()) == 0
        for message in smtp_server.handler.messages:
            if message.rcpt_tos[0].startswith("north"):
                box = "shared" if message.login == "ada" else "steady"
                follow_up = str(parsed(message)["Subject"]).startswith("Re: ")
                seen[f"{moment:%Y-%m-%d}", box, follow_up] += 1
        smtp_server.handler.messages.clear()
        moment += EVERY
    capsys.readouterr()
    actual = {(day, box): (seen[day, box, False], seen[day, box, True]) for day, box, _ in seen}
    assert forecast == actual
    assert 0 < forecast["2026-11-23", "shared"][0] < 2  # day one's cap of 2, shared with south
