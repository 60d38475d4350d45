"""Lead addresses at send time: one mailbox, one message; a refused spelling is not a bounce."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd import cli
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import load_state
from tests.dispatch_setup import credential, run_once, write_campaign
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

NOW = "2026-11-23T10:00:00Z"
FULL_WIDTH = "".join(chr(ord(letter) + 0xFEE0) for letter in "example")


def _box(state: Path, capsys: pytest.CaptureFixture[str], now: str) -> dict[str, object]:
    capsys.readouterr()
    assert cli.main(["status", "--state-dir", str(state), "--json", "--now", now]) == 0
    report = json.loads(capsys.readouterr().out)
    return report["campaigns"][0]["smtp_credentials"][0]  # type: ignore[no-any-return]


def test_spellings_of_one_mailbox_get_one_message(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """An IDN and its A-label, a soft hyphen and full-width letters reach the mailbox once."""
    leads = [
        "a@bücher.de,A",
        "a@xn--bcher-kva.de,A2",
        "b@bü\u00adcher.de,B",
        "b@bücher.de,B2",
        f"c@{FULL_WIDTH}.net,C",
        "c@example.net,C2",
    ]
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=leads, steps=1)
    run_once(path, tmp_path / "state", NOW)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages) == [
        "a@xn--bcher-kva.de",
        "b@xn--bcher-kva.de",
        "c@example.net",
    ]


@pytest.mark.parametrize(
    ("suppressed", "lead"),
    [("a@bücher.de", "a@xn--bcher-kva.de"), ("a@xn--bcher-kva.de", "A@BÜCHER.de")],
)
def test_a_suppressed_mailbox_is_not_mailed_under_another_spelling(
    tmp_path: Path, smtp_server: SmtpServer, suppressed: str, lead: str
) -> None:
    """A suppression of one spelling of an address stops every spelling of it."""
    state = tmp_path / "state"
    state.mkdir()
    ledger = Ledger.open(state)
    with ledger.transaction():
        ledger.suppressions.add(
            "default", suppressed, "unsubscribed", datetime(2026, 1, 1, tzinfo=UTC)
        )
    ledger.close()
    leads = [f"{lead},Suppressed", "other@example.net,Other"]
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=leads, steps=1)
    run_once(path, state, NOW)
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["other@example.net"]]


@pytest.mark.parametrize(
    "reply",
    [
        "553 5.1.3 Bad destination mailbox address syntax",
        "501 5.1.3 Bad recipient address syntax",
        "501 5.5.4 Invalid command arguments",
        "550 5.5.2 Syntax error",
        "501 Syntax error in parameters or arguments",
    ],
)
def test_a_refused_address_syntax_is_not_a_bounce(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str], reply: str
) -> None:
    """A server refusing the lead's address as bad syntax leaves the mailbox's bounces alone:
    the mailbox stays enabled, the lead fails and is never tried again."""
    server = start_smtp(test_ca, {"ada": "pw-ada"}, rules={"lead0000@example.net": ("RCPT", reply)})
    try:
        path = write_campaign(
            tmp_path,
            {"a": credential(server, "ada")},
            leads=2,
            steps=2,
            bounce_threshold="10%",
            bounce_min_sends=1,
        )
        state = tmp_path / "state"
        run_once(path, state, NOW)
        assert [m.rcpt_tos for m in server.handler.messages] == [["lead0001@example.net"]]
        box = _box(state, capsys, NOW)
        assert (box["state"], box["bounces_in_window"]) == ("active", 0)
        assert load_state(state).credential("camp/a").disabled_at is None
        ledger = Ledger.open(state)
        lead = ledger.leads.get("camp", "lead0000@example.net")
        suppression = ledger.suppressions.reason("default", "lead0000@example.net")
        ledger.close()
        assert lead is not None
        assert lead.state == "failed"
        assert lead.last_error is not None
        assert lead.last_error.startswith(f"address refused as malformed: {reply[:3]}")
        assert suppression is None
        run_once(path, state, "2026-11-24T10:00:00Z")  # step 2: only to the other lead
        assert [m.rcpt_tos[0] for m in server.handler.messages] == ["lead0001@example.net"] * 2
        with sqlite3.connect(state / "ledger.sqlite3") as db:
            tries = db.execute(
                "SELECT count(*) FROM sends WHERE email = 'lead0000@example.net'"
            ).fetchone()[0]
        assert tries == 1
    finally:
        server.controller.stop()
