"""``mailopsd status``: what the daemon applied and observed, per campaign and credential.

Built from the state file and the ledger only (opened read-only), so it works while the
daemon runs and when it is stopped, and never needs a key or shows a secret. The JSON
form is a stable interface for scripts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailopsd.clock import utc_day_start
from mailopsd.config.models import SendWindow
from mailopsd.config.periods import Period, parse_period
from mailopsd.config.reasons import CountedReasons, counted_reasons
from mailopsd.errors import StateError
from mailopsd.health import policy
from mailopsd.refs import CredentialRef, credential_key, sender_ref
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.lists import ListedCounts
from mailopsd.state.mailboxes import UsageReads, mailbox_entry
from mailopsd.state.place import LEDGER_POINTER
from mailopsd.state.schema import unstamp
from mailopsd.state.sends import BounceReason, CredentialCounts
from mailopsd.state.statefile import (
    STATE_FILE,
    CredentialState,
    StateFile,
    format_time,
    load_state,
)
from mailopsd.status.pacing import pace_report
from mailopsd.status.progress import campaign_progress
from mailopsd.status.steps import step_report

__all__ = [
    "PUBLIC_FIELDS",
    "CredentialFigures",
    "Scope",
    "build_status",
    "counted_of",
    "measure_credential",
    "require_state",
]

PUBLIC_FIELDS = (
    "label",
    "from_email",
    "from_name",
    "smtp_host",
    "smtp_port",
    "daily_limit",
    "status",
    "enabled",
)


def _state_of(
    credential: Mapping[str, object],
    campaign: Mapping[str, object],
    entry: CredentialState,
    now: datetime,
) -> str:
    if entry.disabled_at is not None:
        return "disabled"
    if entry.auth_failed_at is not None:
        return "auth_failed"
    if credential.get("enabled") is False:
        return "paused"
    if credential.get("status") == "blocked":
        return "blocked"
    window = campaign.get("send_window")
    shape = SendWindow.model_validate(window) if isinstance(window, dict) else None
    # With per-lead zones some lead's window may be open: the campaign's window says.
    if (
        shape is not None
        and shape.zone_column is None
        and not shape.contains(now, str(campaign.get("timezone", "UTC")))
    ):
        return "outside_window"
    return "sandbox" if credential.get("status") == "sandbox" else "active"


@dataclass(frozen=True)
class CredentialFigures:
    """A credential's live counters, and the bounce window they were counted over.

    Attributes:
        counts: Today's sends and the window's sends and bounces, from the ledger.
        window_start: Where the bounce window starts (a re-enable moves it forward).
        bounce_rate: Bounces over sends in the window; ``None`` with no sends.
        reasons: The window's bounced addresses by reason and kind, most first.
    """

    counts: CredentialCounts
    window_start: datetime
    bounce_rate: float | None
    reasons: list[BounceReason]


def measure_credential(
    ledger: Ledger,
    ids: CredentialRef,
    *,
    bounce_window: Period,
    entry: CredentialState,
    now: datetime,
    reasons: CountedReasons,
) -> CredentialFigures:
    """Count a credential's sends and bounces as the auto-disable rule sees them.

    Args:
        ledger: An open ledger connection.
        ids: ``(campaign id, credential id)``.
        bounce_window: The campaign's ``bounce_window``.
        entry: The credential's entry in the state file.
        now: The current time.
        reasons: The reasons the campaign counts toward its bounce and block rates.

    Returns:
        The counters, the window's start, the bounce rate and the bounces by reason.
    """
    window_start = policy.window_start(bounce_window, entry.bounce_window_start, now)
    counts = ledger.sends.counts(
        *ids, day_start=utc_day_start(now), window_start=window_start, reasons=reasons
    )
    sends = counts.sends_in_window
    rate = counts.bounces_in_window / sends if sends else None
    by_reason = ledger.sends.reasons(*ids, since=window_start)
    return CredentialFigures(counts, window_start, rate, by_reason)


def counted_of(campaign: Mapping[str, object]) -> CountedReasons:
    """The reasons a campaign counts, from its snapshot in the ledger (as last applied)."""

    def words(name: str) -> list[str] | None:
        found = campaign.get(name)
        return [str(word) for word in found] if isinstance(found, list) else None

    return counted_reasons(words("bounce_reasons"), words("block_reasons"))


def _mailbox_uses(
    credentials: Mapping[CredentialRef, Mapping[str, object]],
) -> dict[str, list[CredentialRef]]:
    """Each shared mailbox's uses, by the ``mailbox`` of their snapshots in the ledger."""
    uses: dict[str, list[CredentialRef]] = {}
    for key, snapshot in sorted(credentials.items()):
        mailbox = snapshot.get("mailbox")
        if isinstance(mailbox, str):
            uses.setdefault(mailbox, []).append(key)
    return uses


def _uses_of(
    key: CredentialRef, snapshot: Mapping[str, object], shared: Mapping[str, list[CredentialRef]]
) -> list[CredentialRef]:
    """Every use of the credential's shared mailbox, or the credential alone."""
    mailbox = snapshot.get("mailbox")
    return shared.get(mailbox, [key]) if isinstance(mailbox, str) else [key]


def _credential(
    ledger: Ledger,
    ids: CredentialRef,
    snapshot: Mapping[str, object],
    campaign: Mapping[str, object],
    *,
    reads: UsageReads,
    uses: Sequence[CredentialRef],
    state: StateFile,
    now: datetime,
) -> dict[str, object]:
    """A credential's row; ``uses``: every use of its shared mailbox, or itself alone."""
    entry = mailbox_entry(state, ids, uses)
    bounce_window = parse_period(str(campaign.get("bounce_window", "7 days")))
    figures = measure_credential(
        ledger,
        ids,
        bounce_window=bounce_window,
        entry=entry,
        now=now,
        reasons=counted_of(campaign),
    )
    counts, window_start, rate = figures.counts, figures.window_start, figures.bounce_rate
    last_use, usage = reads.usage(uses)
    mailbox = snapshot.get("mailbox")
    # A shared mailbox is read by one poll, for all its uses.
    poll = ledger.inbox.last_poll(*sender_ref(ids, mailbox if isinstance(mailbox, str) else None))
    return {
        "id": ids[1],
        **{name: snapshot.get(name) for name in PUBLIC_FIELDS},
        "mailbox": mailbox if isinstance(mailbox, str) else None,
        "shared_with": [credential_key(*use) for use in uses if use != ids],
        "reply_detection": snapshot.get("imap_host") is not None,
        "state": _state_of(snapshot, campaign, entry, now),
        "disabled_at": format_time(entry.disabled_at) if entry.disabled_at else None,
        "disabled_reason": entry.disabled_reason,
        "auth_failed_reason": entry.auth_failed_reason,
        "sent_today": usage[1] if len(uses) > 1 else counts.sent_today,
        "sent_today_here": counts.sent_today,
        **pace_report(last_use, snapshot, usage, entry=entry, now=now),
        "followups_today": counts.followups_today,
        "bounce_window_start": format_time(window_start),
        "sends_in_window": counts.sends_in_window,
        "bounces_in_window": counts.bounces_in_window,
        "bounce_rate": rate,
        "bounces_by_reason": [
            {"reason": found.reason, "kind": found.kind, "addresses": found.addresses}
            for found in figures.reasons
        ],
        "unknown_outcomes": counts.unknown,
        "last_poll_at": format_time(unstamp(poll[0])) if poll[0] else None,
        "last_poll_result": poll[1],
        "inbox_error": entry.inbox_error,
        "inbox_error_since": format_time(entry.inbox_error_since)
        if entry.inbox_error_since
        else None,
        "blocks_in_window": counts.blocks_in_window,
        "unconfirmed_bounces_in_window": counts.unconfirmed_in_window,
        "smtp_error": entry.smtp_error,
        "smtp_error_since": format_time(entry.smtp_error_since) if entry.smtp_error_since else None,
    }


def _domains(
    ledger: Ledger, campaign_id: str, campaign: Mapping[str, object], now: datetime
) -> dict[str, object]:
    """A campaign's rules by recipient domain, and the domains at their cap today."""
    cap = campaign.get("max_per_recipient_domain_per_day")
    at_cap = (
        ledger.sends.domains_at(campaign_id, utc_day_start(now), int(str(cap)))
        if cap is not None
        else None
    )
    return {
        "stop_on_domain_reply": bool(campaign.get("stop_on_domain_reply")),
        "max_per_recipient_domain_per_day": cap,
        "domains_at_cap_today": at_cap,
    }


def _listed(counts: ListedCounts) -> dict[str, object]:
    """An account's suppression lists as status shows them."""
    return {
        "account": counts.account,
        "files": list(counts.files),
        "addresses": counts.addresses,
        "domains": counts.domains,
        "applied_at": format_time(unstamp(counts.applied_at)),
    }


def _storage(state_dir: Path) -> dict[str, object]:
    """Whether the state directory takes writes, judged without writing to it."""
    try:
        stats = os.statvfs(state_dir)
    except OSError as err:
        return {"writable": False, "free_bytes": None, "problem": err.strerror or str(err)}
    free = stats.f_bavail * stats.f_frsize
    problem = None
    if stats.f_flag & os.ST_RDONLY:
        problem = "the file system is read-only"
    elif free == 0:
        problem = "no space left on the device"
    return {"writable": problem is None, "free_bytes": free, "problem": problem}


def require_state(state_dir: Path) -> None:
    """Check that ``state_dir`` holds a daemon's state (its state file or its ledger).

    Its ledger is its own file, or the PostgreSQL one its ``ledger.url`` names.

    Raises:
        StateError: It does not: where it looked, and where the state usually is.
    """
    ledger = (state_dir / LEDGER_FILE).is_file() or (state_dir / LEDGER_POINTER).is_file()
    if (state_dir / STATE_FILE).is_file() or ledger:
        return
    where = state_dir.absolute()
    if not state_dir.exists():
        found = "that directory does not exist"
    elif not state_dir.is_dir():
        found = "that is not a directory"
    else:
        found = f"it has no {STATE_FILE} or {LEDGER_FILE}"
    raise StateError(
        f"no daemon state in {where} ({found}): give the daemon's state directory with "
        "--state-dir (the service's is /var/lib/mailopsd; the default is "
        "$MAILOPSD_STATE_DIR, then $STATE_DIRECTORY, then ./state), or run "
        "'mailopsd run' first to create it"
    )


@dataclass(frozen=True)
class Scope:
    """Which campaigns a status report covers, and whether with their steps.

    Attributes:
        account: Only this account's campaigns (``None``: every account's).
        campaign: Only this campaign (``None``: every campaign).
        steps: Count sends and answers by step and version (the costliest part).
    """

    account: str | None = None
    campaign: str | None = None
    steps: bool = True

    def covers(self, campaign_id: str, campaign: Mapping[str, object]) -> bool:
        """Whether the report shows this campaign."""
        if self.campaign is not None and campaign_id != self.campaign:
            return False
        return self.account is None or campaign.get("account") == self.account


def build_status(state_dir: Path, now: datetime, scope: Scope | None = None) -> dict[str, object]:
    """Return the status report (JSON-ready): every campaign, or those of ``scope``.

    Raises:
        StateError: There is no daemon state in ``state_dir``, or its state file or
            ledger cannot be read.
    """
    require_state(state_dir)
    state = load_state(state_dir)
    ledger = Ledger.open_readonly(state_dir)
    campaigns: list[dict[str, object]] = []
    lists: list[dict[str, object]] = []
    where: dict[str, object] | None = None
    if ledger is not None:
        try:
            where = ledger.describe()
            credentials = ledger.campaigns.active_credentials()
            shared = _mailbox_uses(credentials)
            reads = UsageReads(ledger, utc_day_start(now))
            scope = scope or Scope()
            for campaign_id, campaign in sorted(ledger.campaigns.active().items()):
                if not scope.covers(campaign_id, campaign):
                    continue
                rows = [
                    _credential(
                        ledger,
                        key,
                        snapshot,
                        campaign,
                        reads=reads,
                        uses=_uses_of(key, snapshot, shared),
                        state=state,
                        now=now,
                    )
                    for key, snapshot in sorted(credentials.items())
                    if key[0] == campaign_id
                ]
                progress = campaign_progress(ledger, campaign_id, campaign, rows, now)
                campaigns.append(
                    {
                        "id": campaign_id,
                        "name": campaign.get("name"),
                        "account": campaign.get("account"),
                        **progress,
                        "domains": _domains(ledger, campaign_id, campaign, now),
                        "lead_problems": ledger.imports.problems(campaign_id),
                        "tracking": ledger.tracking.totals(campaign_id),
                        "steps": step_report(ledger, campaign_id) if scope.steps else [],
                        "smtp_credentials": rows,
                    }
                )
            lists = [_listed(counts) for counts in ledger.suppression_lists.counts()]
        finally:
            ledger.close()
    daemon = state.daemon
    return {
        "revision": daemon.applied_revision,
        "applied_at": format_time(daemon.applied_at) if daemon.applied_at else None,
        "last_reload": daemon.last_reload_result,
        "git": daemon.git.model_dump(mode="json") if daemon.git is not None else None,
        "state_dir": {"path": str(state_dir), **_storage(state_dir)},
        "ledger": where,
        "conditions": [condition.model_dump(mode="json") for condition in state.conditions],
        "suppression_lists": lists,
        "campaigns": campaigns,
    }
