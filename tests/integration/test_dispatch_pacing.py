"""Warm-up ramps, min_interval spreads and delay_jitter, against a real SMTP server on loopback.

Each ``run_once`` is ``mailopsd run --once --now`` in this process: a new daemon, a new
dispatcher, the ledger and state file read again, as after a restart.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd import cli
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import unstamp
from mailopsd.state.statefile import load_state, save_state
from tests.commands import status_json
from tests.dispatch_setup import credential, parsed, run_once, write_campaign
from tests.servers.smtp import Received, SmtpServer

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")

DAY1 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(state: Path, capsys: pytest.CaptureFixture[str], now: datetime) -> dict[str, Any]:
    return status_json(capsys, state, _at(now))


def _credential_status(
    state: Path, capsys: pytest.CaptureFixture[str], now: datetime
) -> dict[str, Any]:
    report = _status(state, capsys, now)
    row: dict[str, Any] = report["campaigns"][0]["smtp_credentials"][0]
    return row


def _kinds(messages: list[Received]) -> Counter[str]:
    """Step-1 messages and follow-ups (``Re:`` step 1's subject) among ``messages``."""
    return Counter(
        "followup" if str(parsed(m)["Subject"]).startswith("Re: ") else "step1" for m in messages
    )


def _edit(path: Path, **fields: Any) -> None:
    """Set (``None``: remove) fields of credential ``a`` of campaign ``camp``."""
    config = yaml.safe_load(path.read_text())
    entry = config["campaigns"]["camp"]["smtp_credentials"]["a"]
    for name, value in fields.items():
        if value is None:
            entry.pop(name, None)
        else:
            entry[name] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _sent_at(message: Received) -> datetime:
    return parsedate_to_datetime(str(parsed(message)["Date"]))


class TestRamp:
    """The effective daily cap of step-1 sends while a ramp rises."""

    def test_caps_over_four_days_and_followups_do_not_count(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """start 2, step 2, every day, daily_limit 5: 2, 4, 5, 5 step-1 messages; the
        follow-ups of earlier leads go out besides, and status shows the cap."""
        ramp = {"start": 2, "step": 2, "every": "1 day"}
        path = write_campaign(
            tmp_path, {"a": credential(smtp_server, "ada", daily_limit=5, ramp=ramp)}, leads=20
        )
        state = tmp_path / "state"
        days, rows = [], []
        for day in range(4):
            smtp_server.handler.messages.clear()
            assert run_once(path, state, _at(DAY1 + day * DAY)) == 0
            assert run_once(path, state, _at(DAY1 + day * DAY + timedelta(hours=13))) == 0
            days.append(_kinds(smtp_server.handler.messages))
            rows.append(_credential_status(state, capsys, DAY1 + day * DAY + timedelta(hours=13)))
        assert [kinds["step1"] for kinds in days] == [2, 4, 5, 5]
        assert [kinds["followup"] for kinds in days] == [0, 2, 4, 5]
        day2, day4 = rows[1], rows[3]
        assert (day2["daily_cap"], day2["daily_limit"], day2["sent_today"]) == (4, 5, 4)
        assert day2["ramp"]["counted_from"] == "first_send"
        assert day2["ramp"]["day_one"] == "2026-11-23T00:00:00Z"
        assert (day2["ramp"]["day"], day2["ramp"]["next_rise_at"]) == (2, "2026-11-25T00:00:00Z")
        assert (day4["daily_cap"], day4["ramp"]["day"], day4["ramp"]["next_rise_at"]) == (
            5,
            4,
            None,
        )

    def test_status_day_cap_and_next_rise(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """status (JSON and text) shows the cap of the day, the ramp's day and next rise."""
        ramp = {"start": 1, "step": 3, "every": "1 day", "from": "2026-11-22"}
        path = write_campaign(
            tmp_path, {"a": credential(smtp_server, "ada", daily_limit=10, ramp=ramp)}, leads=20
        )
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        assert len(smtp_server.handler.messages) == 4  # day 2 of the ramp: 1 + 3
        row = _credential_status(state, capsys, DAY1)
        assert row["daily_cap"] == 4
        assert row["sent_today"] == 4
        assert row["ramp"] == {
            "start": 1,
            "step": 3,
            "every": "1 day",
            "from": "2026-11-22T00:00:00Z",
            "restart_on_reenable": False,
            "counted_from": "from",
            "day_one": "2026-11-22T00:00:00Z",
            "day": 2,
            "next_rise_at": "2026-11-24T00:00:00Z",
        }
        capsys.readouterr()
        assert cli.main(["status", "--state-dir", str(state), "--now", _at(DAY1)]) == 0
        text = capsys.readouterr().out
        assert "sent today 4/4," in text
        assert (
            "    ramp (start 1, +3 every 1 day): day 2 (counted from 2026-11-22T00:00:00Z), "
            "cap today 4 of daily_limit 10; next rise 2026-11-24T00:00:00Z"
        ) in text.splitlines()

    @pytest.mark.parametrize(("restart", "caps"), [(True, [1, 2]), (False, [3, 3])])
    def test_restart_after_reenable(
        self, tmp_path: Path, smtp_server: SmtpServer, restart: bool, caps: list[int]
    ) -> None:
        """After an auto-disable and its re-enable, ramp_restart_on_reenable starts the ramp
        over from the re-enable's day; without it the ramp goes on from the first send."""
        ramp = {"start": 1, "step": 1, "every": "1 day"}
        path = write_campaign(
            tmp_path,
            {"a": credential(smtp_server, "ada", daily_limit=3, ramp=ramp)},
            leads=20,
            steps=1,
        )
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        assert len(smtp_server.handler.messages) == 1
        saved = load_state(state)
        entry = saved.credential("camp/a").model_copy(
            update={"disabled_at": DAY1 + timedelta(hours=2), "disabled_reason": "test"}
        )
        save_state(state, saved.model_copy(update={"credentials": {"camp/a": entry}}))
        smtp_server.handler.messages.clear()
        assert run_once(path, state, _at(DAY1 + DAY)) == 0
        assert smtp_server.handler.messages == []  # disabled
        _edit(
            path,
            reenabled_at="2026-11-25T09:00:00Z",
            ramp_restart_on_reenable=restart,
        )
        sent = []
        for day in (2, 3):
            smtp_server.handler.messages.clear()
            assert run_once(path, state, _at(DAY1 + day * DAY)) == 0
            sent.append(len(smtp_server.handler.messages))
        assert sent == caps

    def test_plan_shows_a_ramp_change(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """plan names each changed field of a ramp, and a new spread or jitter with its value."""
        ramp = {"start": 2, "step": 2, "every": "1 day"}
        path = write_campaign(
            tmp_path, {"a": credential(smtp_server, "ada", ramp=ramp)}, leads=2, steps=2
        )
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        _edit(
            path,
            ramp={"start": 3, "step": 2, "every": "2 days"},
            min_interval={"min": "90 seconds", "max": "140 seconds"},
        )
        config = yaml.safe_load(path.read_text())
        config["campaigns"]["camp"]["delay_jitter"] = "2 hours"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        capsys.readouterr()
        plan = ["plan", "--config", str(path), "--state-dir", str(state)]
        assert cli.main([*plan, "--allow-plaintext-secrets"]) == 2
        lines = capsys.readouterr().out.splitlines()
        assert "  ~ campaign camp: delay_jitter None -> 2 hours" in lines
        assert (
            "  ~ credential camp/a: min_interval None -> {min: 90 seconds, max: 140 seconds}, "
            "ramp.start 2 -> 3, ramp.every 1 day -> 2 days"
        ) in lines


class TestSpread:
    """min_interval {min, max}: the gap after each send is drawn in the range, and kept."""

    def test_gaps_are_within_the_range_and_not_all_equal(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Over several ticks, each gap the server sees is the one drawn: nothing goes a
        second earlier, every gap is in [min, max], and the gaps differ."""
        spread = {"min": "1 minute", "max": "5 minutes"}
        path = write_campaign(
            tmp_path,
            {"a": credential(smtp_server, "ada", min_interval=spread)},
            leads=20,
            steps=1,
        )
        state = tmp_path / "state"
        now = DAY1
        for _ in range(7):
            assert run_once(path, state, _at(now)) == 0
            due = _credential_status(state, capsys, now)["next_send_at"]
            assert due is not None
            now = datetime.fromisoformat(due)
            count = len(smtp_server.handler.messages)
            assert run_once(path, state, _at(now - timedelta(seconds=1))) == 0
            assert len(smtp_server.handler.messages) == count  # the gap holds to the second
        times = [_sent_at(message) for message in smtp_server.handler.messages]
        assert len(times) == 7
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
        assert all(60 <= gap <= 300 for gap in gaps), gaps
        assert len(set(gaps)) > 1, gaps

    def test_a_restart_or_a_shorter_setting_keeps_the_drawn_gap(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The gap drawn after a send is recorded: a new process with min_interval cut to
        one second still waits for it."""
        spread = {"min": "10 minutes", "max": "20 minutes"}
        path = write_campaign(
            tmp_path,
            {"a": credential(smtp_server, "ada", min_interval=spread)},
            leads=5,
            steps=1,
        )
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        due = datetime.fromisoformat(_credential_status(state, capsys, DAY1)["next_send_at"])
        assert DAY1 + timedelta(minutes=10) <= due <= DAY1 + timedelta(minutes=20)
        _edit(path, min_interval="1 second")
        for moment in (DAY1 + timedelta(seconds=2), due - timedelta(seconds=1)):
            assert run_once(path, state, _at(moment)) == 0
            assert len(smtp_server.handler.messages) == 1
        assert run_once(path, state, _at(due)) == 0
        assert len(smtp_server.handler.messages) == 2
        # From then on the new setting applies: one second after that send.
        assert run_once(path, state, _at(due + timedelta(seconds=1))) == 0
        assert len(smtp_server.handler.messages) == 3


def test_delay_jitter_spreads_followups(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """20 leads that got step 1 in one tick get step 2 at 20 distinct times within
    [delay, delay + jitter]: recorded so in the ledger, and sent so over the ticks."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=20,
        steps=2,
        delay="1 day",
        delay_jitter="2 hours",
    )
    state = tmp_path / "state"
    assert run_once(path, state, _at(DAY1)) == 0
    assert len(smtp_server.handler.messages) == 20
    ledger = Ledger.open(state)
    try:
        leads = [ledger.leads.get("camp", f"lead{i:04d}@example.net") for i in range(20)]
    finally:
        ledger.close()
    dues = [unstamp(lead.next_due_at) for lead in leads if lead and lead.next_due_at]
    assert len(set(dues)) == 20
    assert all(DAY1 + DAY <= due <= DAY1 + DAY + timedelta(hours=2) for due in dues)
    smtp_server.handler.messages.clear()
    assert run_once(path, state, _at(DAY1 + DAY - timedelta(seconds=1))) == 0
    assert smtp_server.handler.messages == []  # never before the delay
    by_tick = []
    for minutes in range(0, 121, 10):
        before = len(smtp_server.handler.messages)
        assert run_once(path, state, _at(DAY1 + DAY + timedelta(minutes=minutes))) == 0
        by_tick.append(len(smtp_server.handler.messages) - before)
    assert sum(by_tick) == 20
    assert sum(1 for count in by_tick if count) >= 5, by_tick  # spread, not one burst
    assert max(by_tick) < 20
