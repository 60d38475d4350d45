"""The overview's conditions: what holds a campaign back, and a config error with its place."""

from __future__ import annotations

from mailopsd.pages import html

CAMPAIGN: dict[str, object] = {
    "id": "acme",
    "name": "ACME <outreach>",
    "account": "default",
    "window": {"open_now": False, "next_open": {"at_local": "2026-11-24T09:00:00+01:00"}},
    "progress": {"new": 3, "in_sequence": 2, "replied": 1},
    "sends": {"today": 4, "step1_today": 3},
    "smtp_credentials": [
        {
            "id": "a",
            "state": "active",
            "daily_cap": 50,
            "sends_in_window": 20,
            "bounces_in_window": 1,
            "blocks_in_window": 0,
            "inbox_error": "login refused",
        },
        {
            "id": "b",
            "state": "disabled",
            "daily_cap": 50,
            "disabled_reason": "bounce rate 9%",
            "sends_in_window": 20,
            "bounces_in_window": 3,
            "blocks_in_window": 1,
        },
    ],
}
STATUS: dict[str, object] = {
    "conditions": [
        {
            "type": "ConfigError",
            "status": "True",
            "message": "1 error",
            "errors": ["c.yaml:18:22: campaigns.acme.smtp_credentials.a.daily_limit: must be ≥ 1"],
        },
    ],
}


def test_the_overview_row() -> None:
    """Leads by state, sends against the sending mailboxes' capacity, rates, conditions."""
    page = html.overview(STATUS, [CAMPAIGN], href="/dashboard/campaigns/{id}")
    assert '<a href="/dashboard/campaigns/acme">ACME &lt;outreach&gt;</a>' in page
    assert "new 3, in sequence 2, replied 1" in page
    assert "3 / 50" in page  # the disabled mailbox's cap is not capacity
    assert "10.0%" in page  # 4 hard bounces over 40 sends
    assert "2.5%" in page  # 1 block over 40 sends
    assert "send window closed until 2026-11-24T09:00:00+01:00" in page
    assert "mailbox b disabled: bounce rate 9%" in page
    assert "mailbox a inbox error: login refused" in page
    assert (
        "config error (running on the last good config): c.yaml:18:22: "
        "campaigns.acme.smtp_credentials.a.daily_limit: must be ≥ 1"
    ) in page


def test_no_campaign() -> None:
    assert "No campaign of this account yet." in html.overview({}, [], href="")
