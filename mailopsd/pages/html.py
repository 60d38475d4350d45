"""The pages as HTML: the overview of an account's campaigns, a campaign's page, sign-in.

One set of functions serves the dashboard and the report file: they take the status
report's entries (:mod:`mailopsd.pages.model`) and return markup, every value escaped.
No page holds a script, an inline style or a secret: figures, addresses, ids, and
the line or command that re-enables a mailbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from mailopsd.pages.svg import bar_chart, rate_chart
from mailopsd.pages.views import CampaignView, Hint, MailboxView

__all__ = [
    "campaign_conditions",
    "campaign_section",
    "daemon_conditions",
    "document",
    "overview",
    "sign_in_form",
]

_LEAD_STATES = (
    "new",
    "in_sequence",
    "finished",
    "replied",
    "bounced",
    "unsubscribed",
    "stopped",
    "failed",
    "suppressed",
)

_STEP_RATES = (
    ("replies", "reply_rate"),
    ("bounces", "bounce_rate"),
    ("unsubscribes", "unsubscribe_rate"),
)
_NOT_SENDING = ("disabled", "paused", "blocked")
_NONE = "\N{EN DASH}"  # in a cell: no figure


def document(title: str, body: str, *, stylesheet: str, inline: bool, icon: str = "") -> str:
    """A whole HTML page.

    Args:
        title: The page's title.
        body: Its ``<body>`` content.
        stylesheet: The stylesheet's address, or (``inline``) its text.
        inline: Write the stylesheet into the page (a report file, opened offline).
        icon: The page's icon's address (none: the browser asks for /favicon.ico).
    """
    style = (
        f"<style>{stylesheet}</style>"
        if inline
        else f'<link rel="stylesheet" href="{escape(stylesheet)}">'
    )
    if icon:
        style += f'<link rel="icon" href="{escape(icon)}">'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{style}</head><body>{body}</body></html>"
    )


def _dig(data: Mapping[str, object], *keys: str) -> object:
    found: object = data
    for key in keys:
        found = found.get(key) if isinstance(found, Mapping) else None
    return found


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else _NONE


def _percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else _NONE


def _rows(data: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    found = data.get(key)
    return [row for row in found if isinstance(row, Mapping)] if isinstance(found, list) else []


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _summed(rows: Sequence[Mapping[str, object]], key: str) -> int:
    return sum(value for row in rows if isinstance(value := row.get(key), int))


def campaign_conditions(campaign: Mapping[str, object]) -> list[str]:
    """What holds a campaign back now, each as a short line (plain text)."""
    found = []
    if _dig(campaign, "window", "open_now") is False:
        at = _dig(campaign, "window", "next_open", "at_local") or _dig(
            campaign, "window", "next_open", "at"
        )
        found.append(f"send window closed until {at}" if at else "send window closed")
    for row in _rows(campaign, "smtp_credentials"):
        if row.get("state") == "disabled":
            found.append(f"mailbox {row.get('id')} disabled: {row.get('disabled_reason')}")
        if row.get("inbox_error"):
            found.append(f"mailbox {row.get('id')} inbox error: {row.get('inbox_error')}")
        if row.get("smtp_error"):
            found.append(f"mailbox {row.get('id')} SMTP error: {row.get('smtp_error')}")
    return found


def daemon_conditions(status: Mapping[str, object]) -> list[str]:
    """The daemon's own conditions that hold: a config error with its file:line."""
    found = []
    for condition in _rows(status, "conditions"):
        if condition.get("type") == "ConfigError" and condition.get("status") == "True":
            errors = condition.get("errors")
            lines = [str(error) for error in errors] if isinstance(errors, list) else []
            found.append(
                "config error (running on the last good config): "
                + ("; ".join(lines) or str(condition.get("message")))
            )
    return found


def _list(items: Sequence[str], css: str) -> str:
    if not items:
        return '<span class="muted">none</span>'
    entries = "".join(f'<li class="{css}">{escape(item)}</li>' for item in items)
    return f'<ul class="conditions">{entries}</ul>'


def overview(
    status: Mapping[str, object], campaigns: Sequence[Mapping[str, object]], *, href: str
) -> str:
    """The overview: each campaign's progress, today's sends, answers and conditions.

    Args:
        status: The whole status report (for the daemon's conditions).
        campaigns: The campaigns shown (the viewer's account's), status entries.
        href: Each campaign's link, with ``{id}`` for its id (``""``: no links).
    """
    head = (
        "<tr><th>campaign</th><th>leads</th><th class=number>sent today</th>"
        "<th class=number>step 1 today / capacity</th><th class=number>replied</th>"
        "<th class=number>bounce rate</th><th class=number>block rate</th>"
        "<th>conditions</th></tr>"
    )
    rows = "".join(_overview_row(campaign, href) for campaign in campaigns)
    daemon = daemon_conditions(status)
    notes = f"<p class=condition-error>{escape('; '.join(daemon))}</p>" if daemon else ""
    empty = "" if campaigns else '<p class="muted">No campaign of this account yet.</p>'
    return f"<h1>Campaigns</h1>{notes}<table class=overview>{head}{rows}</table>{empty}"


def _overview_row(campaign: Mapping[str, object], href: str) -> str:
    campaign_id = str(campaign.get("id"))
    name = escape(str(campaign.get("name") or campaign_id))
    link = (
        f'<a href="{escape(href.format(id=campaign_id))}">{name}</a>' if href else name
    ) + f' <span class="muted">{escape(campaign_id)}</span>'
    progress = _dig(campaign, "progress")
    states = progress if isinstance(progress, Mapping) else {}
    leads = ", ".join(
        f"{state.replace('_', ' ')} {_count(states.get(state))}"
        for state in _LEAD_STATES
        if states.get(state)
    )
    credentials = _rows(campaign, "smtp_credentials")
    capacity = sum(
        cap
        for row in credentials
        if row.get("state") not in _NOT_SENDING and isinstance(cap := row.get("daily_cap"), int)
    )
    sends = _summed(credentials, "sends_in_window")
    return (
        f"<tr data-campaign={escape(campaign_id)}><td>{link}</td><td>{escape(leads) or _NONE}</td>"
        f"<td class=number>{_count(_dig(campaign, 'sends', 'today'))}</td>"
        f"<td class=number>{_count(_dig(campaign, 'sends', 'step1_today'))} / "
        f"{_count(capacity)}</td>"
        f"<td class=number>{_count(states.get('replied'))}</td>"
        f"<td class=number>{_percent(_rate(_summed(credentials, 'bounces_in_window'), sends))}</td>"
        f"<td class=number>{_percent(_rate(_summed(credentials, 'blocks_in_window'), sends))}</td>"
        f"<td>{_list(campaign_conditions(campaign), 'condition')}</td></tr>"
    )


def campaign_section(view: CampaignView, reenable: Hint) -> str:
    """A campaign's page: its mailboxes with their charts, then its steps and versions.

    Args:
        view: The campaign and its days.
        reenable: Asked for each disabled mailbox: what re-enables it (the YAML line to
            write and where, or the command), as text; ``None`` shows nothing.
    """
    campaign = view.status
    campaign_id = str(campaign.get("id"))
    title = escape(str(campaign.get("name") or campaign_id))
    conditions = _list(campaign_conditions(campaign), "condition")
    mailboxes = "".join(_mailbox(view, mailbox, reenable) for mailbox in view.mailboxes)
    return (
        f"<h1>{title} <span class=muted>{escape(campaign_id)}</span></h1>"
        f"<p>Account {escape(str(campaign.get('account')))}; bounce threshold "
        f"{view.bounce_threshold:.1%} over {escape(view.bounce_window)}; charts from "
        f"{escape(view.days[0])} to {escape(view.days[-1])} (UTC days).</p>"
        f"<h2>Conditions</h2>{conditions}"
        f"<h2>Mailboxes</h2>{_legend()}{mailboxes}"
        f"<h2>Steps and versions</h2>{_steps(campaign)}"
    )


def _legend() -> str:
    return (
        '<p class="legend"><span><i class="swatch step1"></i>step 1</span>'
        '<span><i class="swatch followups"></i>follow-ups</span>'
        '<span><i class="swatch rate"></i>bounce rate</span>'
        '<span><i class="swatch threshold"></i>threshold</span></p>'
    )


def _mailbox(view: CampaignView, mailbox: MailboxView, reenable: Hint) -> str:
    row = mailbox.row
    state = str(row.get("state"))
    line = (
        f'<p><span class="state-{escape(state)}">{escape(state)}</span> · '
        f"{escape(str(row.get('from_email')))} via {escape(str(row.get('smtp_host')))} · "
        f"sent today {_count(row.get('sent_today'))} / {_count(row.get('daily_cap'))} · "
        f"bounce rate {_percent(row.get('bounce_rate'))} "
        f"({_count(row.get('bounces_in_window'))}/{_count(row.get('sends_in_window'))})</p>"
    )
    if state == "disabled":
        line += (
            f'<p class="state-disabled">disabled at {escape(str(row.get("disabled_at")))}: '
            f"{escape(str(row.get('disabled_reason')))}</p>"
        )
        hint = reenable(str(view.status.get("id")), mailbox.id)
        if hint:
            line += f'<pre class="reenable">{escape(hint)}</pre>'
    sends = bar_chart(f"{mailbox.id}: sends per day", mailbox.bars)
    rates = rate_chart(
        f"{mailbox.id}: bounce rate over {view.bounce_window}",
        mailbox.rates,
        view.bounce_threshold,
    )
    return (
        f'<section class="mailbox" data-mailbox="{escape(mailbox.id)}">'
        f"<h3>{escape(mailbox.id)}</h3>{line}<div class=charts>{sends}{rates}</div></section>"
    )


def _steps(campaign: Mapping[str, object]) -> str:
    head = (
        "<tr><th>step</th><th>version</th><th class=number>sends</th>"
        "<th class=number>replies</th><th class=number>bounces</th>"
        "<th class=number>unsubscribes</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{_count(step.get('step'))}</td>"
        f"<td>{escape(str(step.get('variant') or _NONE))}</td>"
        f"<td class=number>{_count(step.get('sends'))}</td>"
        + "".join(
            f"<td class=number>{_count(step.get(kind))} ({_percent(step.get(rate))})</td>"
            for kind, rate in _STEP_RATES
        )
        + "</tr>"
        for step in _rows(campaign, "steps")
    )
    return f"<table class=steps>{head}{rows}</table>"


def sign_in_form(action: str, error: str | None) -> str:
    """The sign-in form: an API key of the account, posted to ``action``."""
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    return (
        "<h1>Sign in</h1>"
        "<p>Sign in with an API key of your account (the key the API takes as "
        "<code>Authorization: Bearer</code>; <code>mailopsd apikey new</code> makes one).</p>"
        f'{problem}<form class="sign-in" method="post" action="{escape(action)}">'
        '<label for="key">API key</label> <input id="key" name="key" type="password" '
        'autocomplete="off" required autofocus> <button type="submit">Sign in</button></form>'
    )
