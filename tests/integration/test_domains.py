"""Recipient domains against the real SMTP and IMAP servers: a reply stops the colleagues,
suppression lists hold leads back, and a per-domain daily cap spreads the sends."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mailopsd import cli
from tests import inbox_mail
from tests.commands import status_json
from tests.dispatch_setup import ADA, credential, imap_fields, run_once, sent_ids, write_campaign
from tests.ledger_setup import read_ledger
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.usefixtures("state_ledger")

DAY1 = "2026-11-23T10:00:00Z"
DAY1_LATER = "2026-11-23T12:00:00Z"
DAY2 = "2026-11-24T10:00:01Z"
DAY2_LATER = "2026-11-24T16:00:00Z"
DAY3 = "2026-11-25T10:00:02Z"


def _status(state: Path, capsys: pytest.CaptureFixture[str], now: str) -> dict[str, Any]:
    return status_json(capsys, state, now)


def _status_text(state: Path, capsys: pytest.CaptureFixture[str], now: str) -> str:
    capsys.readouterr()
    assert cli.main(["status", "--state-dir", str(state), "--now", now]) == 0
    return capsys.readouterr().out


def _received(server: SmtpServer) -> list[str]:
    """The recipients the server took mail for since it was last cleared, sorted."""
    found = sorted(m.rcpt_tos[0] for m in server.handler.messages)
    server.handler.messages.clear()
    return found


def _rows(state: Path, sql: str) -> list[tuple[Any, ...]]:
    with read_ledger(state) as ledger:
        return [tuple(row) for row in ledger._database.connection.execute(sql).fetchall()]


def test_a_reply_stops_the_colleagues_at_its_domain(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With stop_on_domain_reply, a reply from ada@acme.example stops her two colleagues
    (they get no follow-up) without suppressing them, while a reply from a gmail.com lead
    or from a domain the config lists as free mail stops only that lead."""
    user, _ = dovecot.add_user()
    leads = [
        "ada@acme.example",
        "bob@acme.example",
        "cy@acme.example",
        "dee@gmail.com",
        "eve@gmail.com",
        "fay@isp.example",
        "gus@isp.example",
    ]
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada", **imap_fields(dovecot, user))},
        leads=[f"{email},{email[0].upper()}" for email in leads],
        stop_on_domain_reply=True,
    )
    text = path.read_text() + "free_mail_domains: [isp.example]\n"
    path.write_text(text)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    ids = sent_ids(smtp_server)
    assert _received(smtp_server) == sorted(leads)
    for lead in ("ada@acme.example", "dee@gmail.com", "fay@isp.example"):
        dovecot.append(user, inbox_mail.reply(lead, ADA, ids[lead]))

    capsys.readouterr()
    assert run_once(path, state, DAY2) == 0
    log = capsys.readouterr().err
    assert _received(smtp_server) == ["eve@gmail.com", "gus@isp.example"]
    stopped = dict(_rows(state, "SELECT email, stop_reason FROM leads WHERE state = 'stopped'"))
    assert stopped == {
        "ada@acme.example": "replied",
        "bob@acme.example": "domain_replied",
        "cy@acme.example": "domain_replied",
        "dee@gmail.com": "replied",
        "fay@isp.example": "replied",
    }
    for colleague in ("bob@acme.example", "cy@acme.example"):
        line = f"reason=domain_replied lead={colleague} replied=ada@acme.example"
        assert log.count(line) == 1
    assert _rows(state, "SELECT count(*) FROM suppressions") == [(0,)]
    progress = _status(state, capsys, DAY2)["campaigns"][0]["progress"]
    assert (progress["replied"], progress["domain_replied"], progress["stopped"]) == (3, 2, 0)
    text = _status_text(state, capsys, DAY2)
    assert "2 stopped because a colleague at their domain replied" in text
    assert "domains: a reply stops the other leads at its domain" in text


def _listed_campaign(tmp_path: Path, smtp_server: SmtpServer, listed: str) -> Path:
    """Campaign camp of 2 steps a day apart, 6 leads at 3 domains; the account's list holds
    ``listed``."""
    (tmp_path / "suppress").mkdir(exist_ok=True)
    (tmp_path / "suppress" / "do-not-contact.txt").write_text(listed)
    leads = [
        "ada@acme.example",
        "bob@acme.example",
        "dee@other.example",
        "eve@other.example",
        "fay@third.example",
        "gus@third.example",
    ]
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=[f"{email},{email[0].upper()}" for email in leads],
    )
    path.write_text(path.read_text() + "suppress:\n  default: [suppress/do-not-contact.txt]\n")
    return path


def test_suppression_lists_hold_leads_back_until_the_list_changes(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A list with an address and a domain holds those leads back at every run; status
    counts them; removing the domain from the file lets its leads go on the next run."""
    listed = "# asked not to be written to\ndee@other.example\n@acme.example  # a customer\n"
    path = _listed_campaign(tmp_path, smtp_server, listed)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    assert _received(smtp_server) == ["eve@other.example", "fay@third.example", "gus@third.example"]
    assert run_once(path, state, DAY1_LATER) == 0
    assert _received(smtp_server) == []

    report = _status(state, capsys, DAY1_LATER)
    assert report["suppression_lists"] == [
        {
            "account": "default",
            "files": ["suppress/do-not-contact.txt"],
            "addresses": 1,
            "domains": 1,
            "applied_at": "2026-11-23T10:00:00Z",
        }
    ]
    progress = report["campaigns"][0]["progress"]
    assert (progress["new"], progress["held_by_lists"], progress["suppressed"]) == (0, 3, 0)
    text = _status_text(state, capsys, DAY1_LATER)
    assert (
        "suppression lists of account default: 1 address and 1 domain never mailed "
        "(suppress/do-not-contact.txt; applied 2026-11-23T10:00:00Z)"
    ) in text
    assert "3 held back by the suppression lists" in text

    (tmp_path / "suppress" / "do-not-contact.txt").write_text("dee@other.example\n")
    capsys.readouterr()
    plan = ["plan", "--config", str(path), "--state-dir", str(state), "--allow-plaintext-secrets"]
    assert cli.main(plan) == 2
    assert (
        "~ suppression lists of account default: -1 domain (suppress/do-not-contact.txt): "
        "-@acme.example"
    ) in capsys.readouterr().out
    assert run_once(path, state, DAY2) == 0
    assert _received(smtp_server) == [
        "ada@acme.example",
        "bob@acme.example",
        "eve@other.example",
        "fay@third.example",
        "gus@third.example",
    ]
    assert _status(state, capsys, DAY2)["campaigns"][0]["progress"]["held_by_lists"] == 1


def test_malformed_list_lines_are_located_by_validate(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate names each malformed line of a list as file:line:col, with the field."""
    path = _listed_campaign(tmp_path, smtp_server, "dee@other.example\nacme.example\n\n bob@@x\n")
    capsys.readouterr()
    assert cli.main(["validate", str(path), "--allow-plaintext-secrets"]) == 1
    errors = capsys.readouterr().err.splitlines()
    where = tmp_path / "suppress" / "do-not-contact.txt"
    assert errors == [
        f'{where}:2:1: suppress.default.0: neither an address nor a domain (got "acme.example"):'
        " write an address such as ada@example.com, or a whole domain with its @, as in "
        "@acme.example",
        f'{where}:4:2: suppress.default.0: not an address (got "bob@@x"): the part after the '
        "@-sign contains invalid characters: '@'",
        "invalid: 2 errors",
    ]


def _per_day(server: SmtpServer) -> Counter[str]:
    sent = Counter(address.partition("@")[2] for address in _received(server))
    return sent


def test_the_per_domain_cap_spreads_sends_over_days(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """With max_per_recipient_domain_per_day 2, five leads at one domain get step 1 over
    three days, 2 + 2 + 1, never more in a day, even when mailopsd starts again in the
    middle of a day; a lead at another domain is not held."""
    leads = [f"lead{i}@acme.example,L{i}" for i in range(5)] + ["solo@other.example,S"]
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=leads,
        steps=1,
        max_per_recipient_domain_per_day=2,
    )
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    assert _per_day(smtp_server) == {"acme.example": 2, "other.example": 1}
    assert run_once(path, state, DAY1_LATER) == 0  # another process, the same day
    assert _per_day(smtp_server) == {}
    domains = _status(state, capsys, DAY1_LATER)["campaigns"][0]["domains"]
    assert domains == {
        "stop_on_domain_reply": False,
        "max_per_recipient_domain_per_day": 2,
        "domains_at_cap_today": 1,
    }
    text = _status_text(state, capsys, DAY1_LATER)
    assert "at most 2 sends a UTC day to each recipient domain, 1 domain at the cap today" in text
    assert "next: leads at the 1 domain at the daily cap wait for the next UTC day" in text
    assert run_once(path, state, DAY2) == 0
    assert _per_day(smtp_server) == {"acme.example": 2}
    assert run_once(path, state, DAY2_LATER) == 0
    assert _per_day(smtp_server) == {}
    assert run_once(path, state, DAY3) == 0
    assert _per_day(smtp_server) == {"acme.example": 1}
    assert _rows(state, "SELECT count(*) FROM leads WHERE state = 'done'") == [(6,)]


def test_follow_ups_count_toward_the_cap_and_go_first(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Every step counts toward the cap, and due follow-ups take it before new leads: with
    a cap of 2, a third lead at the domain waits while the first two get step 2."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp_server, "ada")},
        leads=[f"lead{i}@acme.example,L{i}" for i in range(3)],
        max_per_recipient_domain_per_day=2,
    )
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    assert _received(smtp_server) == ["lead0@acme.example", "lead1@acme.example"]
    assert run_once(path, state, DAY2) == 0
    assert _received(smtp_server) == ["lead0@acme.example", "lead1@acme.example"]
    steps = _rows(state, "SELECT step, count(*) FROM sends GROUP BY step ORDER BY step")
    assert steps == [(1, 2), (2, 2)]
    assert run_once(path, state, DAY3) == 0
    assert _received(smtp_server) == ["lead2@acme.example"]
