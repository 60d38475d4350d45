"""The bounce-rate policy: when a credential is auto-disabled.

Pure. The bounce rate is the addresses that bounced for one of the campaign's
``bounce_reasons`` (default: every hard bounce) over sends since the window start (the
later of the last re-enable and now minus the campaign's ``bounce_window``); the block
rate, those refused for one of its ``block_reasons`` (default: every block). No verdict
on fewer than ``bounce_min_sends`` sends; above ``bounce_threshold`` (or
``block_threshold``) the credential is disabled, with a reason that carries the numbers,
and names the reasons counted when they are not the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mailopsd.config import suggest
from mailopsd.config.models import Campaign
from mailopsd.config.periods import Period
from mailopsd.goyaml import format_go_time

__all__ = ["block_reason", "disable_reason", "window_start"]


def window_start(window: Period, restarted_at: datetime | None, now: datetime) -> datetime:
    """The start of the bounce window: ``window`` before ``now``, or a later restart."""
    start = window.subtract_from(now)
    return restarted_at if restarted_at is not None and restarted_at > start else start


def disable_reason(campaign: Campaign, *, bounces: int, sends: int, since: datetime) -> str | None:
    """Return why to disable (``bounce rate 7.1% (10/140) > 5% since …``), or ``None``."""
    if sends < campaign.bounce_min_sends or sends == 0:
        return None
    rate = bounces / sends
    if rate <= campaign.bounce_threshold:
        return None
    threshold = f"{campaign.bounce_threshold * 100:g}%"
    moment = format_go_time(since.replace(microsecond=0))
    counted = campaign.counted_reasons
    named = "" if counted.bounces_are_default else _counted(counted.bounces)
    return f"bounce rate {rate:.1%} ({bounces}/{sends}) > {threshold} since {moment}{named}"


def block_reason(campaign: Campaign, *, blocks: int, sends: int, since: datetime) -> str | None:
    """Return why to disable for policy rejections (``block_threshold``), or ``None``."""
    threshold = campaign.block_threshold
    if threshold is None or sends < campaign.bounce_min_sends or sends == 0:
        return None
    rate = blocks / sends
    if rate <= threshold:
        return None
    moment = format_go_time(since.replace(microsecond=0))
    counted = campaign.counted_reasons
    return (
        f"block rate {rate:.1%} ({blocks}/{sends}) > {threshold * 100:g}% since {moment}: "
        "servers refuse this mailbox (blocklist, spam filter or policy)"
        + ("" if counted.blocks_are_default else _counted(counted.blocks))
    )


def _counted(reasons: Sequence[str]) -> str:
    """What a reason names as counted when the campaign's lists are not the defaults."""
    return f"; counted: {suggest.listed(reasons)}"
