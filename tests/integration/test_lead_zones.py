"""Recipient time zones against the real SMTP server: each lead is sent each step only
inside the campaign's window in its own zone, a lead without a valid zone in the
campaign's; validate and status say how many leads fall back, and where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailopsd import cli
from tests.dispatch_setup import credential, run_once, write_campaign
from tests.servers.smtp import SmtpServer

PLAIN = "--allow-plaintext-secrets"
TOKYO, NEW_YORK, MARS = "tokyo@example.net", "ny@example.net", "mars@example.net"
# Line 4 names no zone there is: that lead uses the campaign's Europe/Paris.
ROWS = [f"{TOKYO},Tok,Asia/Tokyo", f"{NEW_YORK},Nyc,America/New_York", f"{MARS},Mar,Mars/Olympus"]
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}


def _write(
    directory: Path, server: SmtpServer, zones: Any = "lead", column: str = "timezone"
) -> Path:
    path = write_campaign(
        directory,
        {"a": credential(server, "ada")},
        leads=ROWS,
        timezone="Europe/Paris",
        send_window={**WINDOW, "timezone": zones},
    )
    (directory / "leads.csv").write_text(
        f"email,first_name,{column}\n" + "".join(f"{row}\n" for row in ROWS)
    )
    return path


def _received(server: SmtpServer) -> list[str]:
    found = sorted(m.rcpt_tos[0] for m in server.handler.messages)
    server.handler.messages.clear()
    return found


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_each_lead_gets_each_step_in_its_own_window(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mon-Fri 09:00-17:00 is 00:00-08:00 UTC in Tokyo, 08:00-16:00 in Paris (the lead
    without a valid zone) and 14:00-22:00 in New York, in November; follow-ups a day
    later wait for their lead's window too."""
    path = _write(tmp_path, smtp_server)
    state = tmp_path / "state"
    expected = {
        "2026-11-22T23:30:00Z": [],  # Monday 08:30 in Tokyo; Sunday elsewhere
        "2026-11-23T01:00:00Z": [TOKYO],  # Monday 10:00 in Tokyo
        "2026-11-23T07:30:00Z": [],  # 16:30 in Tokyo (sent), 08:30 in Paris
        "2026-11-23T09:00:00Z": [MARS],  # 10:00 in Paris
        "2026-11-23T13:00:00Z": [],  # 08:00 in New York
        "2026-11-23T15:00:00Z": [NEW_YORK],  # 10:00 in New York
        "2026-11-24T00:30:00Z": [],  # Tokyo open, its follow-up due at 01:00
        "2026-11-24T05:00:00Z": [TOKYO],  # step 2, 14:00 in Tokyo
        "2026-11-24T16:30:00Z": [NEW_YORK],  # Paris closed (17:30): the lead on Mars waits
        "2026-11-25T07:59:00Z": [],  # 08:59 in Paris
        "2026-11-25T08:30:00Z": [MARS],  # step 2, 09:30 in Paris
    }
    got = {}
    for now in expected:
        assert run_once(path, state, now) == 0
        got[now] = _received(smtp_server)
    assert got == expected


def test_validate_reports_the_leads_without_a_zone(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning, not an error: how many, and the file:line of each."""
    path = _write(tmp_path, smtp_server, zones={"column": "tz"}, column="tz")
    code, out, err = _cli(capsys, "validate", str(path), PLAIN)
    assert code == 0, err
    assert out.startswith("ok:")
    leads = tmp_path / "leads.csv"
    assert (
        f"warning: {leads}: 1 of 3 leads have no valid time zone in column tz (empty, or not "
        "an IANA name such as America/New_York) and send in the campaign's Europe/Paris "
        f"window: {leads}:4\n"
    ) in err


def test_a_missing_zone_column_is_an_error_at_the_field(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, smtp_server, zones={"column": "tz"}, column="zone")
    code, _, err = _cli(capsys, "validate", str(path), PLAIN)
    assert code != 0
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if text.strip() == "column: tz")
    assert f"c.yaml:{line}:" in err
    assert "send_window.timezone" in err
    assert "has no tz column" in err
    assert "columns: email, first_name, zone" in err


def test_a_zone_name_is_refused_where_a_column_is_expected(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, smtp_server, zones="Asia/Tokyo")
    code, _, err = _cli(capsys, "validate", str(path), PLAIN)
    assert code != 0
    assert "send_window.timezone: must be lead" in err


def test_status_counts_the_leads_in_an_open_window(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, smtp_server)
    state = tmp_path / "state"
    assert run_once(path, state, "2026-11-23T09:00:00Z") == 0
    assert _received(smtp_server) == [MARS]
    now = "2026-11-23T13:00:00Z"
    code, out, err = _cli(capsys, "status", "--state-dir", str(state), "--json", "--now", now)
    assert code == 0, err
    window = json.loads(out)["campaigns"][0]["window"]
    zones = window["lead_zones"]
    assert window["open_now"] is True
    assert zones["column"] == "timezone"
    assert (zones["zones"], zones["leads"], zones["leads_open_now"]) == (3, 3, 1)
    assert zones["next_zone"] == "America/New_York"
    assert zones["next_zone_opens"]["at"] == "2026-11-23T14:00:00Z"
    assert zones["fallback"]["leads"] == 1
    assert zones["fallback"]["lines"] == [4]
    code, out, err = _cli(capsys, "status", "--state-dir", str(state), "--now", now)
    assert code == 0, err
    assert "in each lead's time zone (column timezone, else Europe/Paris)" in out
    assert "1 of 3 leads to send in an open window now, 3 zones" in out
    assert "next opens America/New_York at Mon 2026-11-23 15:00 Europe/Paris" in out
    assert "leads.csv:4" in out
