"""Text for people: what ``status`` shows and what a ``run --once`` did.

A campaign's progress and the accounts' suppression lists for ``status``. Both read the
status report (see ``mailopsd.status.report``); the run summary adds the outcomes the
run counted. Times are shown in the campaign's time zone and in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mailopsd.config.scalars import WEEKDAYS
from mailopsd.diagnosis import CLASSES, parse_reason
from mailopsd.dispatch.report import TickReport
from mailopsd.lifecycle import MailKind, SendOutcome
from mailopsd.state.statefile import format_time
from mailopsd.status.progress import local_time

__all__ = [
    "campaign_lines",
    "list_lines",
    "mailbox_lines",
    "pace_lines",
    "reason_lines",
    "run_lines",
]

Report = Mapping[str, Any]

_FAILED = (SendOutcome.BOUNCED, SendOutcome.INVALID)
_RETRIED = (SendOutcome.DEFERRED, SendOutcome.NOT_SENT, SendOutcome.AUTH_FAILED)


def _count(number: int, word: str, plural: str | None = None) -> str:
    return f"{number} {word if number == 1 else plural or word + 's'}"


def _when(moment: Report, timezone: str) -> str:
    """``Wed 2026-12-09 03:00 Europe/Paris (2026-12-09T02:00:00Z)``."""
    at = datetime.fromisoformat(str(moment["at_local"]))
    return f"{local_time(at, timezone)} ({moment['at']})"


def _window_line(window: Report) -> str:
    zone = window["timezone"]
    if window["always_open"]:
        return f"  send window: any time ({zone})"
    days = window["days"]
    named = "every day" if len(days) == len(WEEKDAYS) else ",".join(days)
    per_lead = window.get("lead_zones")
    if per_lead:
        return _lead_zones_line(f"{named} {window['start']}-{window['end']}", per_lead, zone)
    shape = f"{named} {window['start']}-{window['end']} {zone}"
    if window["open_now"]:
        return f"  send window {shape}: open now"
    return f"  send window {shape}: closed; opens {_when(window['next_open'], zone)}"


def _lead_zones_line(shape: str, zones: Report, zone: str) -> str:
    """The window of a campaign sending in each lead's zone, and the leads falling back."""
    line = (
        f"  send window {shape} in each lead's time zone (column {zones['column']}, else "
        f"{zone}): {zones['leads_open_now']} of {zones['leads']} leads to send in an open "
        f"window now, {_count(zones['zones'], 'zone')}"
    )
    if zones["next_zone"] is not None:
        line += f"; next opens {zones['next_zone']} at {_when(zones['next_zone_opens'], zone)}"
    fallback = zones.get("fallback") or {}
    if fallback.get("note"):
        line += f"\n  warning: {fallback['note']}"
    return line


def _leads_line(progress: Report) -> str:
    by_step = ", ".join(
        f"after step {sent}: {count}"
        for sent, count in progress["in_sequence_by_step"].items()
        if count
    )
    line = (
        f"  leads: {progress['new']} new, {progress['in_sequence']} in sequence"
        + (f" ({by_step})" if by_step else "")
        + f", {progress['finished']} finished, {progress['replied']} replied, "
        f"{progress['bounced']} bounced, {progress['unsubscribed']} unsubscribed, "
        f"{progress['stopped']} stopped"
    )
    extra = [
        f"{progress[name]} {label}"
        for name, label in (
            ("sending", "sending"),
            ("failed", "failed"),
            ("suppressed", "suppressed (address suppressed for the account: never sent)"),
            ("held_by_lists", "held back by the suppression lists"),
            ("domain_replied", "stopped because a colleague at their domain replied"),
        )
        if progress[name]
    ]
    return line + (f"; {', '.join(extra)}" if extra else "")


def _domains_line(domains: Report) -> str | None:
    """The campaign's rules by recipient domain, if it has any."""
    rules = []
    if domains["stop_on_domain_reply"]:
        rules.append("a reply stops the other leads at its domain (free-mail domains excepted)")
    cap = domains["max_per_recipient_domain_per_day"]
    if cap is not None:
        rules.append(
            f"at most {_count(cap, 'send')} a UTC day to each recipient domain, "
            f"{_count(domains['domains_at_cap_today'], 'domain')} at the cap today"
        )
    return f"  domains: {'; '.join(rules)}" if rules else None


def _new_line(new: Report, timezone: str) -> str:
    what = f"  next: step 1 for {_count(new['leads'], 'new lead')}"
    held_by = new["held_by"]
    if held_by is None:
        return f"{what}, due now (as each mailbox's rate_limit and min_interval allow)"
    if held_by == "no_mailbox":
        return f"{what}: no mailbox can send (each is disabled, paused, blocked or failing AUTH)"
    if held_by == "daily_limits":
        return f"{what} from {_when(new, timezone)}, when the daily limits reset (00:00 UTC)"
    return f"{what} from {_when(new, timezone)}, when the send window opens"


def _next_lines(campaign: Report) -> list[str]:
    zone = campaign["window"]["timezone"]
    upcoming = campaign["next"]
    lines = []
    if upcoming["new_leads"] is not None:
        lines.append(_new_line(upcoming["new_leads"], zone))
    followup = upcoming["followup"]
    if followup is not None:
        what = f"  next: step {followup['step']} for {_count(followup['leads'], 'lead')}"
        first = ", the first" if followup["leads"] > 1 else ","
        due = " due now" if followup["due_now"] else f" from {_when(followup, zone)}"
        lines.append(what + first + due)
    at_cap = campaign["domains"]["domains_at_cap_today"]
    if at_cap and lines:
        lines.append(
            f"  next: leads at the {_count(at_cap, 'domain')} at the daily cap wait for the "
            "next UTC day (00:00 UTC)"
        )
    return lines or ["  next: nothing is due; no lead has a step left to send"]


def _finish_line(campaign: Report) -> str:
    finish = campaign["finish"]
    if finish["finished"]:
        return "  finish: every lead has finished its sequence or stopped"
    if finish["at"] is None:
        return f"  finish: no estimate yet ({finish['note']})"
    when = _when(finish, campaign["window"]["timezone"])
    if campaign["progress"]["new"]:
        pace = _count(finish["step1_per_day"], "new lead")
        return f"  finish: about {when}, at today's pace of {pace} a day"
    return f"  finish: about {when}, when the last lead's last step is due"


def campaign_lines(campaign: Report) -> list[str]:
    """The status lines of a campaign's window, leads, sends, domain rules, next work, finish."""
    sends = campaign["sends"]
    domains = _domains_line(campaign["domains"])
    return [
        _window_line(campaign["window"]),
        _leads_line(campaign["progress"]),
        f"  sends: {sends['today']} today (UTC day), {sends['total']} in total",
        *([domains] if domains else []),
        *_next_lines(campaign),
        _finish_line(campaign),
    ]


def list_lines(report: Report) -> list[str]:
    """The status lines of each account's suppression lists."""
    lines = []
    for listed in report["suppression_lists"]:
        lines.append(
            f"suppression lists of account {listed['account']}: "
            f"{_count(listed['addresses'], 'address', 'addresses')} and "
            f"{_count(listed['domains'], 'domain')} never mailed "
            f"({', '.join(listed['files'])}; applied {listed['applied_at']})"
        )
    return lines


def _outcome_line(campaign_id: str, work: TickReport) -> str:
    kinds: dict[str, int] = {}
    for (campaign, _, kind), count in work.sends.items():
        if campaign == campaign_id:
            kinds[kind] = kinds.get(kind, 0) + count
    failed = sum(kinds.get(kind, 0) for kind in _FAILED) + work.failed_leads[campaign_id]
    line = f"campaign {campaign_id}: sent {kinds.get(SendOutcome.SENT, 0)}, failed {failed}"
    retried = sum(kinds.get(kind, 0) for kind in _RETRIED)
    if retried:
        line += f", {retried} to retry later"
    if kinds.get(SendOutcome.UNKNOWN):
        line += f", {kinds[SendOutcome.UNKNOWN]} with outcome unknown (never sent again)"
    return line


def _sandbox_line(campaign: Report, work: TickReport, state_dir: Path) -> str | None:
    copies = []
    for credential in campaign["smtp_credentials"]:
        sent = work.sends[campaign["id"], credential["id"], SendOutcome.SENT]
        if credential["status"] == "sandbox" and sent:
            box = state_dir / "sandbox" / campaign["id"] / credential["id"] / "new"
            copies.append(f"{box}/ ({sent})")
    if not copies:
        return None
    return f"  sandbox copies (delivered nowhere): {', '.join(copies)}"


_ORIGINS = {
    "from": "from",
    "first_send": "from its first send",
    "reenabled_at": "from its re-enable",
}


def mailbox_lines(credential: Report) -> list[str]:
    """What a credential that names a shared mailbox shares, and this campaign's part."""
    mailbox = credential["mailbox"]
    if mailbox is None:
        return []
    others = credential["shared_with"]
    uses = f"also {', '.join(others)}" if others else "no other campaign names it now"
    return [
        f"    shared mailbox {mailbox} ({uses}): sent today and the daily cap, ramp "
        "and min_interval are the mailbox's, across its campaigns; "
        f"{credential['sent_today_here']} of today's {credential['sent_today']} step-1 sends "
        "from this campaign"
    ]


def reason_lines(credential: Report) -> list[str]:
    """The window's bounced addresses by reason (``userunknown 3, spamdetected 1``).

    The class is named only where the reason does not say it: ``undefined``, ``onhold``
    and ``notaccept`` follow the code, ``unknown`` was recorded before reasons were kept.
    Unconfirmed reports have a line of their own.
    """
    shown = []
    for found in credential["bounces_by_reason"]:
        if found["kind"] == MailKind.UNCONFIRMED:
            continue
        reason = parse_reason(found["reason"])
        kind = "" if reason is not None and reason in CLASSES else f" ({found['kind']})"
        shown.append(f"{found['reason']} {found['addresses']}{kind}")
    if not shown:
        return []
    return [f"    bounces by reason since {credential['bounce_window_start']}: {', '.join(shown)}"]


def pace_lines(credential: Report) -> list[str]:
    """A credential's ramp and ``min_interval`` wait, when it has them."""
    lines = []
    ramp = credential["ramp"]
    if ramp is not None:
        shape = f"start {ramp['start']}, +{ramp['step']} every {ramp['every']}"
        if ramp["day"] is None:
            where = "not started (it starts with the first send)"
        else:
            counted = _ORIGINS[ramp["counted_from"]]
            where = f"day {ramp['day']} (counted {counted} {ramp['day_one']})"
        rise = f"; next rise {ramp['next_rise_at']}" if ramp["next_rise_at"] else "; at daily_limit"
        lines.append(
            f"    ramp ({shape}): {where}, cap today {credential['daily_cap']} of daily_limit "
            f"{credential['daily_limit']}{rise}"
        )
    if credential["next_send_at"] is not None:
        lines.append(f"    min_interval: next send from {credential['next_send_at']}")
    return lines


def run_lines(report: Report, work: TickReport, *, state_dir: Path, now: datetime) -> list[str]:
    """What a ``run --once`` did, per campaign, and what comes next.

    Args:
        report: The status report, read after the run.
        work: The outcomes the run counted.
        state_dir: The state directory (where the sandbox copies are).
        now: The time of the run.

    Returns:
        The lines to print.
    """
    lines = [f"run --once at {format_time(now)}: revision {report['revision']} applied"]
    if not report["campaigns"]:
        lines.append("no campaigns in the config")
    for campaign in report["campaigns"]:
        lines.append(_outcome_line(campaign["id"], work))
        sandbox = _sandbox_line(campaign, work, state_dir)
        if sandbox is not None:
            lines.append(sandbox)
        lines.extend(_next_lines(campaign))
    lines.append(f"details: mailopsd status --state-dir {state_dir}")
    return lines
