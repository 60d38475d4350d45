"""``validate`` and ``plan`` of a config with shared mailboxes, as an operator reads them.

The mailboxes are sandboxed: ``run --once`` applies the config without a server.
"""

from __future__ import annotations

import pytest

from tests.commands import run_cli
from tests.configs import Writer

PLAIN = "--allow-plaintext-secrets"


def _box(login: str, *, daily_limit: int = 40, indent: str = "    ") -> str:
    fields = (
        "smtp_host: smtp.example.com",
        "smtp_port: 587",
        f"smtp_username: {login}@example.com",
        "smtp_password: pw",
        f"from_name: {login.capitalize()}",
        f"from_email: {login}@example.com",
        f"daily_limit: {daily_limit}",
        "status: sandbox",
    )
    return "".join(f"{indent}{field}\n" for field in fields)


def _config(north: str, *, ada_limit: int = 40, west: bool = False) -> str:
    """Mailboxes ada and bob; campaign north with the credentials given; west naming ada."""
    campaign = (
        "  {cid}:\n    name: {cid}\n    leads: leads.csv\n    sequence:\n"
        '      - subject: "Hello"\n        body: "Hi"\n    smtp_credentials:\n'
    )
    text = "mailboxes:\n  ada:\n" + _box("ada", daily_limit=ada_limit) + "  bob:\n" + _box("bob")
    text += "campaigns:\n" + campaign.format(cid="north") + north
    if west:
        text += campaign.format(cid="west") + "      main: {mailbox: ada}\n"
    return text


OWN_ADA = "      one:\n" + _box("ada", indent="        ")


def test_validate_prints_the_notes_and_counts_the_mailboxes(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """bob is named by no campaign, and north declares ada's login again beside naming
    ada: two warnings, each at its place with what to do; the summary counts 2 mailboxes."""
    write_config(_config("      two: {mailbox: ada}\n" + OWN_ADA))
    code, out, err = run_cli(capsys, "validate", "c.yaml", PLAIN)
    assert code == 0
    assert out == "ok: 1 campaign, 2 credentials (0 with reply detection), 2 shared mailboxes\n"
    assert err.splitlines() == [
        "warning: c.yaml:11:3: mailboxes.bob: no campaign uses this mailbox; name it in a "
        "campaign's smtp_credentials ({mailbox: bob}), or remove it",
        "warning: c.yaml:32:24: campaigns.north.smtp_credentials.one.smtp_username: the same "
        "SMTP login (smtp.example.com:587) as mailboxes.ada (c.yaml:2:3): each place has its "
        "own daily_limit and rate limit, so together they send more than either allows; "
        "remove it: this campaign already sends from mailboxes.ada as smtp_credentials.two",
    ]


def test_plan_says_when_a_credential_starts_or_stops_sharing_a_mailbox(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new credential names its mailbox; turning to a shared mailbox, leaving one, or
    moving to another is said first, in words; a mailbox's own change says it holds in
    every campaign that names it."""
    write_config(_config(OWN_ADA + "      two: {mailbox: ada}\n", west=True))
    code, out, _ = run_cli(capsys, "plan", "--config", "c.yaml", "--state-dir", "st", PLAIN)
    assert code == 2
    assert (
        "  + credential north/two (ada@example.com via smtp.example.com:587, shared mailbox ada)"
        in out
    )
    assert "  + credential north/one (ada@example.com via smtp.example.com:587)" in out
    run = ("run", "--config", "c.yaml", "--state-dir", "st", "--once", PLAIN)
    assert run_cli(capsys, *run, "--now", "2026-11-23T10:00:00Z")[0] == 0

    two_own = "      two:\n" + _box("ada", daily_limit=30, indent="        ")
    write_config(_config("      one: {mailbox: ada}\n" + two_own, west=True))
    code, out, _ = run_cli(capsys, "plan", "--config", "c.yaml", "--state-dir", "st", PLAIN)
    assert code == 2
    assert out.splitlines()[1:] == [
        "  ~ credential north/one: now names shared mailbox ada",
        "  ~ credential north/two: no longer names shared mailbox ada, has settings of its "
        "own; daily_limit 40 -> 30",
    ]

    write_config(_config("      one: {mailbox: ada}\n      two: {mailbox: bob}\n", west=True))
    assert run_cli(capsys, *run, "--now", "2026-11-23T11:00:00Z")[0] == 0
    write_config(
        _config("      one: {mailbox: bob}\n      two: {mailbox: ada}\n", ada_limit=50, west=True)
    )
    code, out, _ = run_cli(capsys, "plan", "--config", "c.yaml", "--state-dir", "st", PLAIN)
    assert code == 2
    assert out.splitlines()[1:] == [
        "  ~ credential north/one: shared mailbox ada -> bob; from_email ada@example.com -> "
        "bob@example.com, from_name Ada -> Bob, smtp_username (changed)",
        "  ~ credential north/two: shared mailbox bob -> ada; daily_limit 40 -> 50, from_email "
        "bob@example.com -> ada@example.com, from_name Bob -> Ada, smtp_username (changed)",
        "  ~ credential west/main: daily_limit 40 -> 50 (shared mailbox ada: in every campaign "
        "that names it)",
    ]
