"""A mailbox shared by campaigns, against a real SMTP server on loopback.

Each ``run_once`` is ``mailopsd run --once --now`` in this process: a new daemon, as after
a restart, so what holds across runs holds because the ledger says so.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd.state.statefile import load_state
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    parsed,
    run_once,
    write_config,
    write_leads,
)
from tests.servers.smtp import Received, SmtpServer

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")

DAY1 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _two_campaigns(
    directory: Path, ada: dict[str, Any], *, leads: int = 8, own: dict[str, Any] | None = None
) -> Path:
    """Campaigns ``north`` and ``south`` both naming mailbox ``ada``; ``south`` may have more."""
    campaigns = {}
    for name in ("north", "south"):
        write_leads(
            directory / f"{name}.csv", [f"{name}{i}@example.net,Lead{i}" for i in range(leads)]
        )
        credentials: dict[str, Any] = {"shared": {"mailbox": "ada"}}
        if name == "south" and own is not None:
            credentials["own"] = own
        campaigns[name] = campaign_tree(credentials, leads=f"{name}.csv", name=name)
    return write_config(directory, campaigns, mailboxes={"ada": ada})


def _by_sender_and_kind(messages: list[Received]) -> Counter[tuple[str, str, str]]:
    """(login, campaign of the recipient, step1 or followup) of each message."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for message in messages:
        kind = "followup" if str(parsed(message)["Subject"]).startswith("Re: ") else "step1"
        campaign = "north" if message.rcpt_tos[0].startswith("north") else "south"
        counts[str(message.login), campaign, kind] += 1
    return counts


def test_one_daily_cap_across_campaigns(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """daily_limit 5 for both campaigns together, every day; follow-ups besides; a
    campaign's own credential keeps its own cap."""
    ada = credential(smtp_server, "ada", daily_limit=5)
    path = _two_campaigns(
        tmp_path, ada, leads=20, own=credential(smtp_server, "box2", daily_limit=2)
    )
    state = tmp_path / "state"
    days = []
    for day in range(3):
        smtp_server.handler.messages.clear()
        assert run_once(path, state, _at(DAY1 + day * DAY)) == 0
        assert run_once(path, state, _at(DAY1 + day * DAY + timedelta(hours=2))) == 0
        days.append(_by_sender_and_kind(smtp_server.handler.messages))
    for counts in days:
        ada_step1 = counts["ada", "north", "step1"] + counts["ada", "south", "step1"]
        assert ada_step1 == 5
        assert counts["box2", "south", "step1"] == 2
        assert counts["box2", "north", "step1"] == 0
    # Both campaigns got some of the shared mailbox's day: campaigns take turns.
    assert days[0]["ada", "north", "step1"] > 0
    assert days[0]["ada", "south", "step1"] > 0
    # Day 2's follow-ups are day 1's step 1s, each from the mailbox that sent it.
    assert days[1]["ada", "north", "followup"] == days[0]["ada", "north", "step1"]
    assert days[1]["box2", "south", "followup"] == 2


def test_one_rate_limit_and_min_interval_across_campaigns(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """rate_limit 3 an hour: three sends in the hour from both campaigns together; with a
    min_interval, one send per run whichever campaign it is for."""
    ada = credential(smtp_server, "ada", rate_limit={"value": 3, "period": "1 hour"})
    path = _two_campaigns(tmp_path, ada)
    state = tmp_path / "state"
    for minutes in (0, 10, 20):
        assert run_once(path, state, _at(DAY1 + timedelta(minutes=minutes))) == 0
    assert len(smtp_server.handler.messages) == 3
    assert run_once(path, state, _at(DAY1 + timedelta(hours=1, minutes=1))) == 0
    assert len(smtp_server.handler.messages) == 6

    spaced = tmp_path / "spaced"
    spaced.mkdir()
    smtp_server.handler.messages.clear()
    path = _two_campaigns(spaced, credential(smtp_server, "ada", min_interval="10 minutes"))
    state = spaced / "state"
    for minutes in (0, 5, 10, 21):
        assert run_once(path, state, _at(DAY1 + timedelta(minutes=minutes))) == 0
    assert len(smtp_server.handler.messages) == 3  # at 0, 10 and 21 minutes


def test_a_ramp_counts_the_mailbox_first_send_in_any_campaign(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """ramp start 2, step 2: 2 then 4 step-1 sends a day for both campaigns together."""
    ramp = {"start": 2, "step": 2, "every": "1 day"}
    path = _two_campaigns(tmp_path, credential(smtp_server, "ada", daily_limit=10, ramp=ramp))
    state = tmp_path / "state"
    step1 = []
    for day in range(2):
        smtp_server.handler.messages.clear()
        assert run_once(path, state, _at(DAY1 + day * DAY)) == 0
        counts = _by_sender_and_kind(smtp_server.handler.messages)
        step1.append(counts["ada", "north", "step1"] + counts["ada", "south", "step1"])
    assert step1 == [2, 4]


def test_an_auto_disable_stops_the_mailbox_in_every_campaign(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """north's bounces pass its threshold: the mailbox stops for south too, each entry of
    the state file says why; reenabled_at on the mailbox brings it back in both."""
    for i in range(4):
        smtp_server.handler.rules[f"north{i}@example.net"] = ("RCPT", "550 5.1.1 No such user")
    ada = credential(smtp_server, "ada", daily_limit=8)
    path = _two_campaigns(tmp_path, ada)
    config = yaml.safe_load(path.read_text())
    config["campaigns"]["north"].update(bounce_threshold="50%", bounce_min_sends=4)
    config["campaigns"]["south"]["leads"] = "south-later.csv"  # no leads yet
    write_leads(tmp_path / "south-later.csv", [])
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    state = tmp_path / "state"
    assert run_once(path, state, _at(DAY1)) == 0
    entries = load_state(state).credentials
    reason = (
        "bounce rate 100.0% (4/4) > 50% since 2026-11-16T10:00:00Z in campaign north; "
        "shared mailbox ada is disabled in every campaign that names it"
    )
    assert entries["north/shared"].disabled_reason == reason
    assert entries["south/shared"].disabled_reason == reason
    config["campaigns"]["south"]["leads"] = "south.csv"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    smtp_server.handler.messages.clear()
    assert run_once(path, state, _at(DAY1 + timedelta(hours=1))) == 0
    assert smtp_server.handler.messages == []  # south's leads wait too

    config["mailboxes"]["ada"]["reenabled_at"] = _at(DAY1 + timedelta(hours=2))
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert run_once(path, state, _at(DAY1 + timedelta(hours=3))) == 0
    sent_to = {
        message.rcpt_tos[0].split("@")[0].rstrip("0123456789")
        for message in smtp_server.handler.messages
    }
    assert sent_to == {"north", "south"}
    assert load_state(state).credential("south/shared").disabled_at is None


def test_a_campaign_alone_in_its_window_gets_the_whole_day(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """While north's window is closed, south may use all the mailbox has left today."""
    path = _two_campaigns(tmp_path, credential(smtp_server, "ada", daily_limit=5))
    config = yaml.safe_load(path.read_text())
    config["campaigns"]["north"]["send_window"] = {
        "days": ["sun"],
        "start": "09:00",
        "end": "17:00",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert run_once(path, tmp_path / "state", _at(DAY1)) == 0
    counts = _by_sender_and_kind(smtp_server.handler.messages)
    assert counts == Counter({("ada", "south", "step1"): 5})
