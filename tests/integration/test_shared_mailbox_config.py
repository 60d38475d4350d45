"""``validate`` of a config with shared mailboxes, as an operator reads it."""

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
