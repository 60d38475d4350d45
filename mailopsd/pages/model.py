"""What the pages show: the status report, and each mailbox's days, read from the ledger.

The figures are those of ``mailopsd status --json`` (:func:`mailopsd.status.report.
build_status`), so the dashboard, the report file and ``status`` never disagree. The
charts add what the status has no room for: each mailbox's counted sends per UTC day
(step 1 and follow-ups, from the per-day counters the ledger keeps) and, for each day,
its bounce rate over the campaign's ``bounce_window`` ending that day (hard-bounced
addresses over counted sends, the auto-disable's rule, counted by whole days).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from mailopsd.config.periods import PeriodSyntaxError, parse_period
from mailopsd.pages.svg import DayBar, RatePoint
from mailopsd.pages.views import CampaignView, MailboxView
from mailopsd.state.ledger import Ledger

__all__ = ["DEFAULT_DAYS", "campaign_view"]

DEFAULT_DAYS = 30
"""Days a chart covers unless asked otherwise."""

_DAY_S = 86_400


def _window_days(text: str) -> int:
    """Whole days a bounce window spans (at least 1; a month counts 30 days)."""
    try:
        period = parse_period(text)
    except PeriodSyntaxError:
        return 7
    return max(1, math.ceil((period.months * 30 * _DAY_S + period.seconds) / _DAY_S))


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def campaign_view(
    ledger: Ledger,
    status: Mapping[str, object],
    snapshot: Mapping[str, object],
    *,
    days: int,
    now: datetime,
) -> CampaignView:
    """Read a campaign's days from the ledger, beside its status entry.

    Args:
        ledger: An open ledger connection (read-only will do).
        status: The campaign's entry in the status report.
        snapshot: The campaign as the ledger keeps it (thresholds, window).
        days: How many days the charts cover, today (UTC) included.
        now: The current time.
    """
    campaign_id = str(status["id"])
    window = str(snapshot.get("bounce_window") or "7 days")
    span = _window_days(window)
    today = now.date()
    shown = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
    first = shown[0] - timedelta(days=span - 1)
    sends: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for row in ledger.stats.days(campaign_id, first.isoformat()):
        sends[row.credential_id][row.day] = (row.step1, row.followups)
    bounces: dict[str, dict[str, int]] = defaultdict(dict)
    for found in ledger.stats.bounce_days(campaign_id, first.isoformat()):
        bounces[found.credential_id][found.day] = found.bounces
    rows = status.get("smtp_credentials")
    mailboxes = tuple(
        _mailbox(row, sends[str(row["id"])], bounces[str(row["id"])], shown, span)
        for row in (rows if isinstance(rows, list) else [])
        if isinstance(row, dict)
    )
    block = snapshot.get("block_threshold")
    return CampaignView(
        status=status,
        bounce_threshold=_float(snapshot.get("bounce_threshold"), 0.05),
        block_threshold=float(block) if isinstance(block, int | float) else None,
        bounce_window=window,
        days=tuple(day.isoformat() for day in shown),
        mailboxes=mailboxes,
    )


def _mailbox(
    row: Mapping[str, object],
    sends: Mapping[str, tuple[int, int]],
    bounces: Mapping[str, int],
    shown: Sequence[date],
    span: int,
) -> MailboxView:
    """A mailbox's bars, and its rate over the ``span`` days ending each shown day.

    Running totals over the days from the first window's start: each day's window is
    a difference of two totals, whatever the window's length.
    """
    first = shown[0] - timedelta(days=span - 1)
    every = [
        (first + timedelta(days=offset)).isoformat() for offset in range(len(shown) + span - 1)
    ]
    sent_total, bounced_total = [0], [0]
    for day in every:
        step1, followups = sends.get(day, (0, 0))
        sent_total.append(sent_total[-1] + step1 + followups)
        bounced_total.append(bounced_total[-1] + bounces.get(day, 0))
    bars, rates = [], []
    for index, day in enumerate(every[span - 1 :]):
        end, start = index + span, index
        bars.append(DayBar(day, *sends.get(day, (0, 0))))
        rates.append(
            RatePoint(
                day,
                bounced_total[end] - bounced_total[start],
                sent_total[end] - sent_total[start],
            )
        )
    return MailboxView(row, tuple(bars), tuple(rates))
