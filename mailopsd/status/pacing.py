"""A credential's pace in ``status``: its effective daily cap (ramp) and its next send.

Read from the credential's snapshot in the ledger and the ledger's per-credential usage
row (for a shared mailbox, all its uses' rows put together), with the rules of
:mod:`mailopsd.config.pacing` that the dispatcher applies, so status shows the cap and
the wait the dispatcher goes by.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import TypeAdapter

from mailopsd.config import pacing
from mailopsd.config.pacing import MinInterval, Ramp
from mailopsd.refs import CredentialRef
from mailopsd.state.schema import unstamp
from mailopsd.state.sends import CredentialUsage
from mailopsd.state.statefile import CredentialState, format_time

__all__ = ["pace_report"]

_SPREAD = TypeAdapter(MinInterval | None)


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def _ramp(
    snapshot: Mapping[str, object], first: datetime | None, entry: CredentialState, now: datetime
) -> tuple[int, dict[str, object] | None]:
    """The daily cap, and the ramp's report (``None``: no ramp)."""
    daily_limit = int(str(snapshot.get("daily_limit")))
    raw = snapshot.get("ramp")
    if not isinstance(raw, dict):
        return daily_limit, None
    ramp = Ramp.model_validate(raw)
    restart = snapshot.get("ramp_restart_on_reenable") is True
    day = pacing.ramp_day(
        ramp,
        daily_limit=daily_limit,
        restart_on_reenable=restart,
        first_send=first,
        reenabled_at=entry.reenabled_at,
        now=now,
    )
    return day.cap, {
        **ramp.model_dump(mode="json"),
        "restart_on_reenable": restart,
        "counted_from": day.origin,
        "day_one": _time(day.day_one),
        "day": day.day,
        "next_rise_at": _time(day.next_rise_at),
    }


def pace_report(
    ids: CredentialRef,
    snapshot: Mapping[str, object],
    usage: CredentialUsage,
    *,
    entry: CredentialState,
    now: datetime,
) -> dict[str, object]:
    """A credential's ``daily_cap``, ``ramp`` and ``next_send_at``, in status's JSON form.

    Args:
        ids: ``(campaign id, credential id)``; of a shared mailbox, the use that sent
            last (the gap after a send is drawn for the credential that made it).
        snapshot: The credential's snapshot in the ledger.
        usage: Its usage row (see ``Sends.usage``); of a shared mailbox, its uses' rows
            put together (``state.mailboxes.combine_usage``).
        entry: Its entry in the state file (the last re-enable applied).
        now: The current time.

    Returns:
        ``daily_cap`` (the ramp's cap today, else ``daily_limit``), ``ramp`` (its
        settings, what it counts from, its day, its next rise; ``None`` without one) and
        ``next_send_at`` (until when ``min_interval`` holds the mailbox back; ``None`` if
        it does not at ``now``).
    """
    _, _, last, gap_s, first = usage
    cap, ramp = _ramp(snapshot, unstamp(first) if first else None, entry, now)
    until = pacing.next_send_at(
        _SPREAD.validate_python(snapshot.get("min_interval")),
        campaign_id=ids[0],
        credential_id=ids[1],
        last=unstamp(last) if last else None,
        recorded_gap_s=gap_s,
    )
    return {
        "daily_cap": cap,
        "ramp": ramp,
        "next_send_at": _time(until) if until is not None and until > now else None,
    }
