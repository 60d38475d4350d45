"""How fast a mailbox may send: the spread of ``min_interval``, follow-up jitter, the ramp.

The config shapes and the rules they state, pure and clock-free, so that the dispatcher,
``status``, ``/metrics`` (and a forecast) compute the same numbers, as the send window's
rules live on :class:`~mailopsd.config.models.SendWindow`:

- ``min_interval`` is a period (``90 seconds``), or a spread (``{min: 90 seconds, max:
  140 seconds}``) in which the gap after each send is drawn.
- ``delay_jitter`` (a campaign's) adds a time drawn from 0 to it to each follow-up's
  delay: never earlier than the delay, at most the jitter later.
- ``ramp`` (``{start: 10, step: 5, every: 1 day}``) caps a mailbox's step-1 sends per UTC
  day below its ``daily_limit``: ``start`` on the ramp's first day, ``step`` more every
  ``every``, never above ``daily_limit``. The ramp counts from 00:00 UTC of the day it
  starts: ``from`` when set, else the mailbox's first send, or, with
  ``ramp_restart_on_reenable``, the re-enable that ended its last auto-disable, if later.

Draws are pseudo-random but reproducible: each is the sha256 of what it is about (the
campaign, the mailbox or the lead, the step, the send's time), read as a fraction of
[0, 1) and mapped into the range, in whole seconds. The same inputs give the same draw in
every process, so a forecast made with this code sends what ``run`` will send, and a
restart draws nothing anew. Every draw is also recorded where it is used: the gap with
its send in the ledger, the jitter in the lead's ``next_due_at``. A gap once recorded
holds even if ``min_interval`` is shortened or removed afterwards; a longer
``min_interval`` applies at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_serializer,
    model_validator,
)

from mailopsd.clock import utc_day_start
from mailopsd.config import periods
from mailopsd.config.periods import Period
from mailopsd.config.scalars import (
    PeriodValue,
    PositiveInt,
    aware_moment,
    check_period,
    describe,
    failure,
)

__all__ = [
    "MinInterval",
    "Ramp",
    "RampDay",
    "RampOrigin",
    "Spread",
    "followup_due",
    "gap_after",
    "next_send_at",
    "ramp_cap",
    "ramp_day",
    "span_s",
]

RampOrigin = Literal["from", "first_send", "reenabled_at", "not_started"]
"""What a ramp counts from: its ``from``, the first send, a re-enable, or nothing yet."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def span_s(period: Period, moment: datetime) -> int:
    """The length in whole seconds of ``period`` starting at ``moment`` (months vary)."""
    return int((period.add_to(moment) - moment).total_seconds())


class Spread(_Model):
    """A time between two sends of one mailbox: at least ``min``, drawn up to ``max``."""

    min: PeriodValue = Field(description="Shortest time between two sends.")
    max: PeriodValue = Field(
        description="Longest drawn time between two sends; the gap after each send is drawn "
        "between min and max (pseudo-random, reproducible)."
    )

    @property
    def is_fixed(self) -> bool:
        """Tell whether there is nothing to draw (``min`` and ``max`` are the same)."""
        return (self.min.months, self.min.seconds) == (self.max.months, self.max.seconds)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.max.approx_seconds < self.min.approx_seconds:
            raise failure(
                f"max ({self.max}) is shorter than min ({self.min}); max must be at least min",
                field="max",
            )
        return self

    @model_serializer
    def _serialize(self) -> str | dict[str, str]:
        # A plain period stays the text it was written as, so snapshots made before
        # spreads existed compare equal (no spurious change in plan).
        if self.is_fixed:
            return str(self.min)
        return {"min": str(self.min), "max": str(self.max)}


def _spread_or_period(value: object) -> object:
    """A period's text becomes a spread of one value; a mapping is checked as a spread."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str | int):
        check_period(value)  # its errors at the field itself, not at its min and max
        return {"min": value, "max": value}
    raise failure(
        f'must be a period such as "90 seconds", or a spread such as {{min: 90 seconds, '
        f"max: 140 seconds}} (got {describe(value)}); {periods.SYNTAX}"
    )


MinInterval = Annotated[Spread, BeforeValidator(_spread_or_period)]
"""``min_interval``: a period, or a ``{min, max}`` spread."""


def _ramp_start(value: object) -> datetime:
    moment = aware_moment(value, date_alone_is_utc=True)
    if moment is None:
        raise failure(
            "must be a date such as 2026-11-23, or a timestamp with a time zone such as "
            f"2026-11-23T12:00:00Z (got {describe(value)})"
        )
    return moment


RampStart = Annotated[datetime, PlainValidator(_ramp_start)]


class Ramp(_Model):
    """A warm-up: the daily cap of step-1 sends rises from ``start`` to ``daily_limit``."""

    start: PositiveInt = Field(description="Step-1 sends allowed on the ramp's first UTC day.")
    step: PositiveInt = Field(description="Step-1 sends added to the daily cap every `every`.")
    every: PeriodValue = Field(description='How often the cap rises, e.g. "1 day".')
    from_: RampStart | None = Field(
        default=None,
        alias="from",
        description="Date (or timestamp) the ramp counts from, from 00:00 UTC of its day; "
        "absent: from the mailbox's first send.",
    )

    @model_serializer
    def _serialize(self) -> dict[str, int | str]:
        # The key as written ("from"), and only when set: the snapshot reads back as a Ramp.
        data: dict[str, int | str] = {
            "start": self.start,
            "step": self.step,
            "every": str(self.every),
        }
        if self.from_ is not None:
            data["from"] = self.from_.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return data

    def steps_to_full(self, daily_limit: int) -> int:
        """How many rises take the cap from ``start`` to ``daily_limit``."""
        return max(0, -(-(daily_limit - self.start) // self.step))

    def rise(self, day_one: datetime, count: int) -> datetime:
        """When the ``count``-th rise happens, for a ramp whose first day is ``day_one``."""
        if not self.every.months:
            return day_one + timedelta(seconds=self.every.seconds * count)
        times = Period(self.every.months * count, self.every.seconds * count, "")
        return times.add_to(day_one)

    def rises_by(self, day_one: datetime, moment: datetime, *, most: int) -> int:
        """How many rises (at most ``most``) have happened at ``moment``."""
        if moment < day_one:
            return 0
        if not self.every.months:  # the common case, asked for every mailbox at every tick
            return min(most, int((moment.timestamp() - day_one.timestamp()) // self.every.seconds))
        count = int((moment - day_one).total_seconds() // self.every.approx_seconds)
        count = min(count, most)
        while count > 0 and self.rise(day_one, count) > moment:  # months are shorter
            count -= 1
        while count < most and self.rise(day_one, count + 1) <= moment:  # or longer
            count += 1
        return count


@dataclass(frozen=True)
class RampDay:
    """Where a mailbox's ramp stands at an instant.

    Attributes:
        cap: Step-1 sends allowed in the UTC day (at most ``daily_limit``).
        origin: What the ramp counts from.
        day_one: 00:00 UTC of the ramp's first day (``None``: not started).
        day: The ramp's day at the instant, 1 on its first day (``None``: not started).
        next_rise_at: When the cap rises next (``None``: it is at ``daily_limit``, or the
            ramp has not started).
    """

    cap: int
    origin: RampOrigin
    day_one: datetime | None = None
    day: int | None = None
    next_rise_at: datetime | None = None


_DAY_S = 86400


def _origin(
    ramp: Ramp, first_send: datetime | None, reenabled_at: datetime | None
) -> tuple[RampOrigin, datetime | None]:
    origin: RampOrigin
    if ramp.from_ is not None:
        origin, moment = "from", ramp.from_
    elif first_send is not None:
        origin, moment = "first_send", first_send
    else:
        origin, moment = "not_started", None
    if reenabled_at is not None and (moment is None or reenabled_at > moment):
        origin, moment = "reenabled_at", reenabled_at
    return origin, moment


def _progress(
    ramp: Ramp,
    *,
    daily_limit: int,
    restart_on_reenable: bool,
    first_send: datetime | None,
    reenabled_at: datetime | None,
    now: datetime,
) -> tuple[RampOrigin, datetime | None, int, int]:
    """What a ramp counts from, its first day, the rises so far and the rises in all."""
    restart = reenabled_at if restart_on_reenable else None
    origin, moment = _origin(ramp, first_send, restart)
    most = ramp.steps_to_full(daily_limit)
    if moment is None:
        return origin, None, 0, most
    day_one = utc_day_start(moment)
    return origin, day_one, ramp.rises_by(day_one, now, most=most), most


def ramp_cap(
    ramp: Ramp,
    *,
    daily_limit: int,
    restart_on_reenable: bool,
    first_send: datetime | None,
    reenabled_at: datetime | None,
    now: datetime,
) -> int:
    """Return the effective daily cap of a mailbox with a ramp, at ``now``.

    The cap alone, as the dispatcher asks it for every mailbox at every tick: see
    :func:`ramp_day` for the arguments and for where the ramp stands.
    """
    _, _, rises, _ = _progress(
        ramp,
        daily_limit=daily_limit,
        restart_on_reenable=restart_on_reenable,
        first_send=first_send,
        reenabled_at=reenabled_at,
        now=now,
    )
    return min(daily_limit, ramp.start + ramp.step * rises)


def ramp_day(
    ramp: Ramp,
    *,
    daily_limit: int,
    restart_on_reenable: bool,
    first_send: datetime | None,
    reenabled_at: datetime | None,
    now: datetime,
) -> RampDay:
    """Return the effective daily cap of a mailbox with a ramp at ``now``, and its day.

    Args:
        ramp: The mailbox's ramp.
        daily_limit: Its ``daily_limit``, which the ramp never passes.
        restart_on_reenable: Its ``ramp_restart_on_reenable``.
        first_send: When it first sent (counted sends), if ever.
        reenabled_at: The last re-enable applied after an auto-disable (the state
            file's), if any; the ramp restarts from it with ``restart_on_reenable``.
        now: The instant.

    Returns:
        The cap and where the ramp stands.
    """
    origin, day_one, rises, most = _progress(
        ramp,
        daily_limit=daily_limit,
        restart_on_reenable=restart_on_reenable,
        first_send=first_send,
        reenabled_at=reenabled_at,
        now=now,
    )
    cap = min(daily_limit, ramp.start + ramp.step * rises)
    if day_one is None:
        return RampDay(cap=cap, origin=origin)
    return RampDay(
        cap=cap,
        origin=origin,
        day_one=day_one,
        day=max(1, int((now.timestamp() - day_one.timestamp()) // _DAY_S) + 1),
        next_rise_at=ramp.rise(day_one, rises + 1) if rises < most else None,
    )


# Draws -----------------------------------------------------------------------------------

_SEPARATOR = "\x1f"  # the ASCII unit separator: in no id, address or time


def _fraction(*parts: str) -> float:
    """A number in [0, 1) drawn from ``parts`` (the same parts, the same number)."""
    digest = hashlib.sha256(_SEPARATOR.join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _between(low: int, high: int, *parts: str) -> int:
    """A whole number from ``low`` to ``high`` (both included), drawn from ``parts``."""
    if high <= low:
        return low
    return low + int(_fraction(*parts) * (high - low + 1))


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def gap_after(
    spread: Spread | None, *, campaign_id: str, credential_id: str, at: datetime
) -> int | None:
    """The time in seconds a mailbox waits after its send at ``at``, drawn in ``spread``.

    Args:
        spread: The mailbox's ``min_interval`` (``None``: no wait).
        campaign_id: The campaign.
        credential_id: The mailbox.
        at: The send's time (its intent's).

    Returns:
        From ``min`` to ``max``, both included (exactly ``min`` for a plain period);
        ``None`` without ``min_interval``.
    """
    if spread is None:
        return None
    low = span_s(spread.min, at)
    if spread.is_fixed:
        return low
    high = span_s(spread.max, at)
    return _between(low, high, "min_interval", campaign_id, credential_id, _time(at))


def next_send_at(
    spread: Spread | None,
    *,
    campaign_id: str,
    credential_id: str,
    last: datetime | None,
    recorded_gap_s: int | None,
) -> datetime | None:
    """When a mailbox may send again, after its last send ``last``.

    The gap recorded with that send holds; the one ``min_interval`` draws now applies
    if it is longer (the setting was raised since).

    Returns:
        The instant, or ``None`` if nothing holds the mailbox back.
    """
    if last is None:
        return None
    drawn = gap_after(spread, campaign_id=campaign_id, credential_id=credential_id, at=last)
    gaps = [gap for gap in (drawn, recorded_gap_s) if gap is not None]
    return last + timedelta(seconds=max(gaps)) if gaps else None


def followup_due(
    delay: Period,
    jitter: Period | None,
    *,
    campaign_id: str,
    email: str,
    step: int,
    sent_at: datetime,
) -> datetime:
    """When step ``step`` of a lead is due, its previous step sent at ``sent_at``.

    Args:
        delay: The step's ``delay``.
        jitter: The campaign's ``delay_jitter`` (``None``: none).
        campaign_id: The campaign.
        email: The lead's address (as the ledger keeps it).
        step: The step that becomes due (2 for the first follow-up).
        sent_at: When the previous step was sent.

    Returns:
        ``delay`` after ``sent_at``, plus a time drawn from 0 to ``jitter`` (both
        included), never before the delay.
    """
    due = delay.add_to(sent_at)
    if jitter is None:
        return due
    spread = _between(0, span_s(jitter, due), "delay_jitter", campaign_id, email, str(step))
    return due + timedelta(seconds=spread)
