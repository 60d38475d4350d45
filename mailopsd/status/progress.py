"""A campaign's progress, for ``mailopsd status``: its leads, sends, window and outlook.

Read from the ledger only (the campaign's snapshot, one pass over its leads, the daily
send counters), so it needs no config or key. What comes next and when the campaign
ends are estimates from what the ledger holds now: the next follow-up due, when new
leads can get step 1 (send window, daily limits, usable mailboxes), and when the last
step of the last lead goes at today's pace of step-1 sends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mailopsd.clock import next_utc_day_start, utc_day_start
from mailopsd.config.models import SendWindow
from mailopsd.config.periods import parse_period
from mailopsd.config.zones import EXAMPLE_LINES, fallback_note
from mailopsd.state.leads import LeadTally
from mailopsd.state.ledger import Ledger
from mailopsd.state.schema import unstamp
from mailopsd.state.sends import SendTally
from mailopsd.state.statefile import format_time

__all__ = ["USABLE_STATES", "campaign_progress", "local_time"]

USABLE_STATES = frozenset({"active", "sandbox", "outside_window"})
"""Credential states (as status shows them) in which a mailbox may send."""

Snapshot = Mapping[str, object]


def local_time(moment: datetime, timezone: str) -> str:
    """``moment`` as a person reads it in ``timezone``: ``Wed 2026-12-09 03:00 Europe/Paris``."""
    return f"{moment.astimezone(ZoneInfo(timezone)):%a %Y-%m-%d %H:%M} {timezone}"


def _moment(moment: datetime | None, timezone: str) -> dict[str, str | None]:
    """A time in the JSON form: UTC, and local with its offset."""
    if moment is None:
        return {"at": None, "at_local": None}
    local = moment.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")
    return {"at": format_time(moment), "at_local": local}


class _Outlook:
    """What status computes for one campaign, from its snapshot and the ledger's tallies."""

    def __init__(
        self,
        snapshot: Snapshot,
        tally: LeadTally,
        sends: SendTally,
        now: datetime,
        zones: Mapping[str | None, int] | None = None,
    ) -> None:
        self.now = now
        self.tally = tally
        self.sends = sends
        self.timezone = str(snapshot.get("timezone") or "UTC")
        raw = snapshot.get("send_window")
        self.window = SendWindow.model_validate(raw) if isinstance(raw, dict) else None
        column = self.window.zone_column if self.window else None
        # Per-lead zones: the zones of the new and waiting leads, with how many each.
        self.zones = (
            {self.timezone if zone is None else zone: 0 for zone in (zones or {})} if column else {}
        )
        for zone, count in (zones or {}).items() if column else ():
            self.zones[self.timezone if zone is None else zone] += count
        sequence = snapshot.get("sequence")
        steps = sequence if isinstance(sequence, list) else []
        delays = [step.get("delay") if isinstance(step, dict) else None for step in steps]
        self.delays = [parse_period(str(delay)) if delay else None for delay in delays]

    def opening(self, moment: datetime) -> datetime:
        """``moment``, or the next opening of the send window after it.

        With per-lead zones: the next opening of the window in any zone of the leads.
        """
        if self.window is None:
            return moment
        window = self.window
        zones = self.zones or {self.timezone: 0}
        return min(window.next_opening(moment, zone) for zone in zones)

    def after_steps(self, sent: int, moment: datetime) -> datetime:
        """When a lead whose ``sent``-th step goes at ``moment`` gets its last step."""
        for delay in self.delays[sent:]:
            moment = delay.add_to(moment) if delay is not None else moment
        return moment

    def suppressed(self, state: str, sent: int | None = None, *, listed: bool = False) -> int:
        """Suppressed leads in ``state`` (after ``sent`` steps, or all).

        With ``listed``: the leads held back by the suppression lists instead.
        """
        held = self.tally.listed if listed else self.tally.suppressed
        return sum(
            count
            for (kind, steps), count in held.items()
            if kind == state and (sent is None or steps == sent)
        )

    def held(self, state: str, sent: int | None = None) -> int:
        """Leads in ``state`` never sent their next step now: suppressed, or listed."""
        return self.suppressed(state, sent) + self.suppressed(state, sent, listed=True)

    @property
    def new_leads(self) -> int:
        """New leads that can still get step 1."""
        return self.tally.by_state["new"] - self.held("new")

    def waiting(self, sent: int) -> int:
        """Leads that have sent ``sent`` steps and can get the next one."""
        wait = self.tally.waiting.get(sent)
        return (wait.leads if wait else 0) - self.held("waiting", sent)

    def window_report(self) -> dict[str, object]:
        """The send window: its shape, whether it is open now, when it opens next."""
        window = self.window
        if window is not None and window.zone_column is not None:
            return self._lead_zones_report(window)
        is_open = window is None or window.contains(self.now, self.timezone)
        return {
            "timezone": self.timezone,
            "days": list(window.days) if window else None,
            "start": window.start if window else None,
            "end": window.end if window else None,
            "always_open": window is None or window.is_always_open,
            "open_now": is_open,
            "next_open": _moment(None if is_open else self.opening(self.now), self.timezone),
            "lead_zones": None,
        }

    def _lead_zones_report(self, window: SendWindow) -> dict[str, object]:
        """The window of a campaign with per-lead zones: open now if open in any lead's zone.

        ``lead_zones`` says how many new and waiting leads are in an open window now, in
        how many zones, and when the next zone not open now opens.
        """
        open_zones = [zone for zone in self.zones if window.contains(self.now, zone)]
        closed = [zone for zone in self.zones if zone not in open_zones]
        openings = [(window.next_opening(self.now, zone), zone) for zone in closed]
        first = min(openings) if openings else None
        return {
            "timezone": self.timezone,
            "days": list(window.days),
            "start": window.start,
            "end": window.end,
            "always_open": window.is_always_open,
            "open_now": bool(open_zones),
            "next_open": _moment(None if open_zones or first is None else first[0], self.timezone),
            "lead_zones": {
                "column": window.zone_column,
                "zones": len(self.zones),
                "leads_open_now": sum(self.zones[zone] for zone in open_zones),
                "leads": sum(self.zones.values()),
                "next_zone": None if first is None else first[1],
                "next_zone_opens": _moment(None if first is None else first[0], self.timezone),
            },
        }

    def progress_report(self) -> dict[str, object]:
        """The leads by where they stand; each lead is counted once."""
        by_state = self.tally.by_state
        steps = range(1, max(len(self.delays), 1))
        return {
            "new": self.new_leads,
            "in_sequence": by_state["waiting"] - self.held("waiting"),
            "in_sequence_by_step": {str(sent): self.waiting(sent) for sent in steps},
            "sending": by_state["sending"],
            "finished": by_state["done"],
            "replied": by_state["replied"],
            "bounced": by_state["bounced"],
            "unsubscribed": by_state["unsubscribed"],
            "domain_replied": by_state["domain_replied"],
            "stopped": by_state["stopped"],
            "failed": by_state["failed"],
            "suppressed": self.suppressed("new") + self.suppressed("waiting"),
            "held_by_lists": self.suppressed("new", listed=True)
            + self.suppressed("waiting", listed=True),
        }

    def next_followup(self) -> dict[str, object] | None:
        """The next follow-up step due: which step, for how many leads, from when.

        The earliest due time may be a suppressed or listed lead's: they are few, and a
        query telling them apart would read every waiting lead once more.
        """
        due = [
            (unstamp(wait.first_due), sent)
            for sent, wait in self.tally.waiting.items()
            if wait.first_due is not None and self.waiting(sent) > 0
        ]
        if not due:
            return None
        first, sent = min(due)
        at = self.opening(max(first, self.now))
        return {
            "step": sent + 1,
            "leads": self.waiting(sent),
            "due_now": at <= self.now,
            **_moment(at, self.timezone),
        }

    def new_outlook(self, credentials: Sequence[Mapping[str, object]]) -> dict[str, object] | None:
        """When the new leads can get step 1, and what holds them until then."""
        if self.new_leads <= 0:
            return None
        usable = [c for c in credentials if c.get("state") in USABLE_STATES]
        room = sum(int(str(c["daily_cap"])) - int(str(c["sent_today"])) for c in usable)
        held_by: str | None = None
        at: datetime | None = self.now
        if not usable:
            held_by, at = "no_mailbox", None
        elif room <= 0:
            held_by, at = "daily_limits", self.opening(next_utc_day_start(self.now))
        elif self.opening(self.now) != self.now:
            held_by, at = "send_window", self.opening(self.now)
        return {"leads": self.new_leads, "held_by": held_by, **_moment(at, self.timezone)}

    def finish_estimate(self) -> dict[str, object]:
        """When the last step of the last lead goes, at today's pace of step-1 sends."""
        pace = self.sends.step1_today
        report: dict[str, object] = {"finished": False, "step1_per_day": pace, "note": None}
        ends = [
            self.after_steps(sent + 1, unstamp(wait.last_due))
            for sent, wait in self.tally.waiting.items()
            if wait.last_due is not None and self.waiting(sent) > 0
        ]
        if self.tally.by_state["sending"]:
            ends.append(self.now)
        if self.new_leads > 0:
            if pace <= 0:
                note = "no step-1 sends today, so no pace to go by"
                return {**report, **_moment(None, self.timezone), "note": note}
            days = math.ceil(self.new_leads / pace)
            last_start = self.opening(utc_day_start(self.now) + timedelta(days=days))
            ends.append(self.after_steps(1, last_start))
        if not ends:
            return {**report, **_moment(None, self.timezone), "finished": True}
        return {**report, **_moment(self.opening(max(ends)), self.timezone)}


def campaign_progress(
    ledger: Ledger,
    campaign_id: str,
    snapshot: Snapshot,
    credentials: Sequence[Mapping[str, object]],
    now: datetime,
) -> dict[str, object]:
    """Return a campaign's progress, in status's JSON form.

    Args:
        ledger: An open ledger connection.
        campaign_id: The campaign.
        snapshot: Its snapshot in the ledger (settings, sequence, window).
        credentials: Its credentials as status reports them (state, daily cap, sent today).
        now: The current time.

    Returns:
        ``leads`` (active leads), ``window``, ``progress``, ``sends``, ``next`` and
        ``finish``.
    """
    sequence = snapshot.get("sequence")
    steps = len(sequence) if isinstance(sequence, list) else 1
    account = str(snapshot.get("account") or "default")
    tally = ledger.leads.tally(campaign_id, account, steps=steps)
    sends = ledger.sends.tally(campaign_id, utc_day_start(now))
    raw = snapshot.get("send_window")
    column = raw.get("timezone") if isinstance(raw, dict) else None
    zones = ledger.leads.by_zone(campaign_id) if column else None
    outlook = _Outlook(snapshot, tally, sends, now, zones)
    upcoming = {"followup": outlook.next_followup(), "new_leads": outlook.new_outlook(credentials)}
    window = outlook.window_report()
    if isinstance(window["lead_zones"], dict) and isinstance(column, dict):
        count, lines = ledger.leads.without_zone(campaign_id, EXAMPLE_LINES)
        window["lead_zones"]["fallback"] = {
            "leads": count,
            "lines": lines,
            "note": fallback_note(
                str(snapshot.get("leads") or "leads file"),
                str(column.get("column")),
                outlook.timezone,
                count=count,
                total=tally.total,
                lines=lines,
            )
            if count
            else None,
        }
    return {
        "leads": tally.total,
        "window": window,
        "progress": outlook.progress_report(),
        "sends": {"today": sends.today, "step1_today": sends.step1_today, "total": sends.total},
        "next": upcoming,
        "finish": outlook.finish_estimate(),
    }
