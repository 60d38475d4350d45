"""A/B variants against a real SMTP server (and a real IMAP server for the answers).

Each lead is given a variant of each step when it enters the sequence and keeps it: the
server's record shows which one each lead got, follow-ups thread under the subject that
lead was sent, a reload with other weights changes no one's variant, a removed variant
gives way to the first one left (``plan`` says so), and ``stats`` counts by variant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd.config.models import Campaign
from mailopsd.dispatch.variants import draw
from tests import inbox_mail
from tests.commands import run_cli
from tests.dispatch_setup import ADA, credential, imap_fields, parsed, run_once, write_campaign
from tests.ledger_setup import read_ledger
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer

# Each test on a state directory tmp_path / "state" runs on both ledgers.
pytestmark = pytest.mark.usefixtures("state_ledger")

DAY1 = "2026-11-23T10:00:00Z"
DAY2 = "2026-11-24T10:00:01Z"
LATER = "2026-11-24T12:00:00Z"
LEADS = 40
SEQUENCE = [
    {
        "subject": "Hello {{ first_name }}",
        "body": "Hi {{ first_name }}, step 1.",
        "variants": {
            "plain": {"subject": "Hello {{ first_name }}"},
            "short": {"subject": "Quick one, {{ first_name }}", "weight": 1},
        },
    },
    {
        "delay": "1 day",
        "body": "Step 2.",
        "variants": {"warm": {"body": "Warm follow-up."}, "brief": {"body": "Brief follow-up."}},
    },
]


def _setup(tmp_path: Path, smtp_server: SmtpServer, **imap: Any) -> Path:
    box = credential(smtp_server, "ada", daily_limit=100, **imap)
    return write_campaign(tmp_path, {"a": box}, leads=LEADS, sequence=SEQUENCE)


def _campaign(path: Path) -> Campaign:
    return Campaign.model_validate(yaml.safe_load(path.read_text())["campaigns"]["camp"])


def _edit_step2(path: Path, variants: dict[str, Any]) -> None:
    config = yaml.safe_load(path.read_text())
    config["campaigns"]["camp"]["sequence"][1]["variants"] = variants
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _received(smtp_server: SmtpServer) -> dict[str, Any]:
    received = {m.rcpt_tos[0]: parsed(m) for m in smtp_server.handler.messages}
    smtp_server.handler.messages.clear()
    return received


def test_each_lead_keeps_its_variant_and_threads_under_what_it_was_sent(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Step 1 goes out in both variants as drawn; after a reload that makes ``warm`` weigh
    99 times more, each lead still gets the step-2 variant drawn when it entered, threaded
    under its own step-1 subject."""
    path = _setup(tmp_path, smtp_server)
    campaign = _campaign(path)
    state = tmp_path / "state"
    assert run_once(path, state, DAY1) == 0
    first = _received(smtp_server)
    assert len(first) == LEADS
    step1, step2 = campaign.sequence[0].variants, campaign.sequence[1].variants
    assert step1 is not None
    assert step2 is not None
    given = {email: draw("camp", 1, step1, email) for email in first}
    assert set(given.values()) == {"plain", "short"}
    for email, message in first.items():
        name = f"Lead{int(email[4:8])}"
        expected = "Hello " if given[email] == "plain" else "Quick one, "
        assert str(message["Subject"]) == expected + name

    heavier = {"body": "Warm follow-up.", "weight": 99}
    _edit_step2(path, {"warm": heavier, "brief": {"body": "Brief follow-up."}})
    assert run_once(path, state, DAY2) == 0
    second = _received(smtp_server)
    assert sorted(second) == sorted(first)
    later = {email: draw("camp", 2, step2, email) for email in second}
    assert set(later.values()) == {"warm", "brief"}  # as drawn at entry, not by new weights
    for email, message in second.items():
        assert str(message["Subject"]) == "Re: " + str(first[email]["Subject"])
        assert message["In-Reply-To"] == first[email]["Message-ID"]
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert body.startswith("Warm follow-up." if later[email] == "warm" else "Brief")
    with read_ledger(state) as ledger:
        leads = [ledger.leads.get("camp", email) for email in second]
    assert all(
        lead is not None and dict(lead.variants) == {"1": given[lead.email], "2": later[lead.email]}
        for lead in leads
    )


def test_a_removed_variant_sends_nothing_again_and_plan_says_so(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removing ``brief`` before step 2: plan names it and what its leads get; every lead
    then gets ``warm``, once, and nothing of step 1 goes again."""
    path = _setup(tmp_path, smtp_server)
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    _received(smtp_server)
    capsys.readouterr()
    _edit_step2(path, {"warm": {"body": "Warm follow-up."}})
    plain = "--allow-plaintext-secrets"
    code, out, _ = run_cli(capsys, "plan", "--config", str(path), "--state-dir", str(state), plain)
    assert code == 2
    assert (
        "step 2 variant brief removed: leads given it get variant warm if they have not been "
        "sent that step yet (nothing is sent again)"
    ) in out
    assert run_once(path, state, DAY2) == 0
    second = _received(smtp_server)
    assert len(second) == LEADS
    for message in second.values():
        assert str(message["Subject"]).startswith("Re: ")
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert body.startswith("Warm follow-up.")
    assert run_once(path, state, LATER) == 0
    assert smtp_server.handler.messages == []


def test_stats_count_sends_and_answers_by_variant(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two replies and an unsubscribe after step 2 count for the variant each lead was
    sent; stats, status --json and the numbers behind each rate agree."""
    user, _ = dovecot.add_user()
    path = _setup(tmp_path, smtp_server, **imap_fields(dovecot, user))
    state = tmp_path / "state"
    run_once(path, state, DAY1)
    _received(smtp_server)
    run_once(path, state, DAY2)
    second = _received(smtp_server)
    campaign = _campaign(path)
    step2 = campaign.sequence[1].variants
    assert step2 is not None
    by_variant: dict[str, list[str]] = {"warm": [], "brief": []}
    for email in sorted(second):
        by_variant[draw("camp", 2, step2, email)].append(email)
    warm, brief = by_variant["warm"], by_variant["brief"]
    dovecot.append(user, inbox_mail.reply(warm[0], ADA, str(second[warm[0]]["Message-ID"])))
    dovecot.append(user, inbox_mail.reply(warm[1], ADA, str(second[warm[1]]["Message-ID"])))
    dovecot.append(user, inbox_mail.unsubscribe(brief[0], ADA))
    assert run_once(path, state, LATER) == 0
    capsys.readouterr()

    code, out, _ = run_cli(capsys, "stats", "camp", "--state-dir", str(state), "--json")
    assert code == 0
    steps = json.loads(out)["steps"]
    rows = {(row["step"], row["variant"]): row for row in steps}
    assert sorted(rows) == [(1, "plain"), (1, "short"), (2, "brief"), (2, "warm")]
    assert rows[1, "plain"]["sends"] + rows[1, "short"]["sends"] == LEADS
    assert rows[2, "warm"]["sends"] == len(warm)
    assert (rows[2, "warm"]["replies"], rows[2, "warm"]["unsubscribes"]) == (2, 0)
    assert rows[2, "warm"]["reply_rate"] == round(2 / len(warm), 4)
    assert (rows[2, "brief"]["replies"], rows[2, "brief"]["unsubscribes"]) == (0, 1)
    assert rows[1, "plain"]["replies"] == rows[1, "short"]["replies"] == 0

    code, out, _ = run_cli(capsys, "stats", "camp", "--state-dir", str(state))
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("2     warm"))
    assert f"{100 * 2 / len(warm):.1f}% (2/{len(warm)})" in line

    code, out, _ = run_cli(capsys, "status", "--state-dir", str(state), "--json", "--now", LATER)
    assert json.loads(out)["campaigns"][0]["steps"] == steps

    code, _, err = run_cli(capsys, "stats", "nope", "--state-dir", str(state))
    assert code == 1
    assert err == f"error: no campaign nope in the daemon state in {state} (campaigns: camp)\n"
