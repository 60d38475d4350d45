"""The report file: the dashboard's pages for every campaign, in one HTML file.

``mailopsd report`` writes it from the state directory alone, as ``status`` reads it,
for people who do not expose the HTTP server and for attaching to a ticket. It needs
nothing to open: the stylesheet is written into it and the charts are inline SVG (no
script, no link to anything).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from pathlib import Path

from mailopsd.pages import html
from mailopsd.pages.model import campaign_view
from mailopsd.pages.style import STYLESHEET
from mailopsd.pages.views import CampaignView, Hint
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import format_time
from mailopsd.status.report import build_status

__all__ = ["build_report"]


def build_report(
    state_dir: Path,
    now: datetime,
    *,
    days: int,
    campaign: str | None = None,
    hint: Hint | None = None,
) -> tuple[str, int]:
    """The report's HTML, and how many campaigns it shows.

    Args:
        state_dir: The daemon's state directory.
        now: The time the report is made at (its charts end that UTC day).
        days: How many days the charts cover.
        campaign: Only this campaign (``None``: every campaign).
        hint: What re-enables a disabled mailbox (default: the command, to run where the
            config is).

    Raises:
        StateError: There is no daemon state in ``state_dir``, or it cannot be read.
        KeyError: ``campaign`` is not a campaign of the state.
    """
    status = build_status(state_dir, now)
    entries = _campaigns(status, campaign)
    views = _views(state_dir, entries, days=days, now=now)
    explain = hint or _command
    sections = "".join(
        f'<section class="campaign" id="campaign-{escape(str(view.status.get("id")))}">'
        + html.campaign_section(view, explain)
        + "</section>"
        for view in views
    )
    title = f"mailopsd report, {now.strftime('%Y-%m-%d %H:%M')} UTC"
    intro = (
        f"<p class=muted>Made at {escape(format_time(now))} from the state in "
        f"{escape(str(state_dir))}, revision {escape(str(status.get('revision')))}.</p>"
    )
    overview = html.overview(status, entries, href="#campaign-{id}")
    body = f"<main><h1>{escape(title)}</h1>{intro}{overview}{sections}</main>"
    return html.document(title, body, stylesheet=STYLESHEET, inline=True), len(views)


def _campaigns(status: Mapping[str, object], chosen: str | None) -> list[dict[str, object]]:
    found = status.get("campaigns")
    rows = [row for row in found if isinstance(row, dict)] if isinstance(found, list) else []
    if chosen is None:
        return rows
    picked = [row for row in rows if row.get("id") == chosen]
    if not picked:
        raise KeyError(chosen)
    return picked


def _views(
    state_dir: Path, entries: list[dict[str, object]], *, days: int, now: datetime
) -> list[CampaignView]:
    ledger = Ledger.open_readonly(state_dir)
    if ledger is None:
        return []
    try:
        snapshots = ledger.campaigns.active()
        return [
            campaign_view(ledger, entry, snapshots.get(str(entry["id"]), {}), days=days, now=now)
            for entry in entries
        ]
    finally:
        ledger.close()


def _command(campaign_id: str, credential_id: str) -> str:
    return (
        f"Run mailopsd reenable {campaign_id} {credential_id} --config CONFIG in your config "
        "repository (it writes reenabled_at into the file that declares it), then commit it."
    )
