"""A campaign's sequence and its sending window: the steps, their variants, the days and hours.

Part of the configuration schema (see :mod:`mailopsd.config.models`, which holds the
campaign): frozen models that forbid unknown keys, checked as that module's are.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from mailopsd.config.scalars import (
    WEEKDAYS,
    ClockTime,
    Id,
    Line,
    PeriodValue,
    PositiveInt,
    Text,
    Weekday,
    describe,
    failure,
)

__all__ = ["LEAD_ZONE_COLUMN", "LeadZones", "SendWindow", "Step", "Variant", "check_sequence"]

LEAD_ZONE_COLUMN = "timezone"
"""The leads file's column that ``send_window.timezone: lead`` names."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeadZones(_Model):
    """Each lead's window is in the time zone of a column of the leads file."""

    column: Line = Field(
        description="The leads file's column holding each lead's IANA time zone "
        "(America/New_York); an empty or unknown value uses the campaign's timezone."
    )


def _lead_zones(value: object) -> object:
    """``lead`` is the ``timezone`` column; a mapping is checked as :class:`LeadZones`."""
    if value == "lead":
        return {"column": LEAD_ZONE_COLUMN}
    if isinstance(value, str):
        raise failure(
            f"must be lead (the leads file's timezone column) or {{column: NAME}}, not "
            f"{describe(value)}; the campaign's own zone is set by the campaign's timezone"
        )
    return value


class SendWindow(_Model):
    """When a campaign may send, in its time zone."""

    days: tuple[Weekday, ...] = Field(
        default=WEEKDAYS, min_length=1, description="Weekdays on which sending is allowed."
    )
    start: ClockTime = Field(
        default="00:00", description="Local time of day sending starts, HH:MM."
    )
    end: ClockTime = Field(
        default="24:00", description="Local time of day sending stops, HH:MM (exclusive)."
    )
    timezone: Annotated[LeadZones, BeforeValidator(_lead_zones)] | None = Field(
        default=None,
        description="lead: each lead's days and hours are in the zone of the leads file's "
        "timezone column; {column: NAME}: of that column. A lead whose value is empty or not "
        "an IANA zone uses the campaign's timezone. Absent: the campaign's timezone for all.",
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Absent, it is left out: a campaign written before it has the same snapshot.
        dumped = handler(self)
        if isinstance(dumped, dict) and dumped.get("timezone") is None:
            dumped.pop("timezone", None)
        return dumped

    @property
    def zone_column(self) -> str | None:
        """The leads file's column of each lead's zone (``None``: the campaign's zone for all)."""
        return None if self.timezone is None else self.timezone.column

    @property
    def start_minute(self) -> int:
        """Minutes after local midnight at which the window opens."""
        return int(self.start[:2]) * 60 + int(self.start[3:])

    @property
    def end_minute(self) -> int:
        """Minutes after local midnight at which the window closes."""
        return int(self.end[:2]) * 60 + int(self.end[3:])

    def contains(self, moment: datetime, timezone: str) -> bool:
        """Tell whether ``moment`` falls inside the window, in ``timezone``'s local time."""
        local = moment.astimezone(ZoneInfo(timezone))
        minute = local.hour * 60 + local.minute
        day = WEEKDAYS[local.weekday()]
        return day in self.days and self.start_minute <= minute < self.end_minute

    @property
    def is_always_open(self) -> bool:
        """Tell whether the window never closes (every day, 00:00 to 24:00)."""
        return len(self.days) == len(WEEKDAYS) and (self.start_minute, self.end_minute) == (0, 1440)

    def next_opening(self, moment: datetime, timezone: str) -> datetime:
        """Return ``moment`` if the window is open then, else the next instant it opens."""
        if self.contains(moment, timezone):
            return moment
        zone = ZoneInfo(timezone)
        start = time(self.start_minute // 60, self.start_minute % 60)
        first = moment.astimezone(zone).date()
        for offset in range(8):
            day = first + timedelta(days=offset)
            opening = datetime.combine(day, start, tzinfo=zone)
            if WEEKDAYS[day.weekday()] in self.days and opening > moment:
                return opening
        raise AssertionError("a valid window opens within a week")  # pragma: no cover

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.days)) != len(self.days):
            raise failure("lists a day twice", field="days")
        if self.start_minute >= self.end_minute:
            raise failure(
                f"end {self.end} must be after start {self.start} "
                "(windows do not wrap past midnight)",
                field="end",
            )
        return self


class Variant(_Model):
    """One version of a step: its own subject and/or body; what it does not set, the step gives."""

    subject: Line | None = Field(default=None, description="Subject template of this version.")
    body: Text | None = Field(default=None, description="Body template (Jinja2), plain text.")
    body_file: Text | None = Field(
        default=None,
        description="Path of a body template file, as for the step's body_file.",
    )
    weight: PositiveInt = Field(
        default=1, description="Share of the leads given this version: weight / sum of weights."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.body is not None and self.body_file is not None:
            raise failure("give at most one of body or body_file", field="body")
        if self.subject is None and self.body is None and self.body_file is None:
            raise failure("a variant sets a subject, a body or both")
        return self

    @property
    def has_body(self) -> bool:
        """Tell whether this version has a body of its own."""
        return self.body is not None or self.body_file is not None


class Step(_Model):
    """One message of a campaign's sequence."""

    subject: Line | None = Field(
        default=None,
        description="Subject template; required on step 1, later steps default to Re: step 1.",
    )
    body: Text | None = Field(default=None, description="Body template (Jinja2), plain text.")
    body_file: Text | None = Field(
        default=None,
        description="Path of a body template file, relative to the config file, inside the "
        "config directory (symlinks included); a regular file of at most 1 MiB.",
    )
    delay: PeriodValue | None = Field(
        default=None, description="Wait after the previous step was sent; not on step 1."
    )
    variants: dict[Id, Variant] | None = Field(
        default=None,
        min_length=1,
        description="Versions of this step by id (A/B/n): each lead is given one when it "
        "enters the sequence and keeps it; a version's subject or body replaces the step's.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.body is not None and self.body_file is not None:
            raise failure("give exactly one of body or body_file", field="body")
        if self.body is None and self.body_file is None:
            lacking = [name for name, v in (self.variants or {}).items() if not v.has_body]
            if self.variants is None:
                raise failure("give exactly one of body or body_file", field="body")
            if lacking:
                raise failure(
                    f"variant {lacking[0]} has no body and the step has none: give the step "
                    "a body (or body_file), or the variant one",
                    field=f"variants.{lacking[0]}",
                )
        return self

    def subject_of(self, variant: str | None) -> str | None:
        """The subject template of one version of the step (its own, else the step's)."""
        chosen = (self.variants or {}).get(variant or "")
        return chosen.subject if chosen is not None and chosen.subject else self.subject


def check_sequence(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """Check the steps together: step 1 has a subject and no delay, the others a delay."""
    if steps[0].subject is None:
        lacking = [name for name, v in (steps[0].variants or {}).items() if v.subject is None]
        if steps[0].variants is None:
            raise failure("step 1 needs a subject", field="0")
        if lacking:
            raise failure(
                f"step 1 needs a subject: variant {lacking[0]} has none and the step has none",
                field=f"0.variants.{lacking[0]}",
            )
    if steps[0].delay is not None:
        raise failure("step 1 is sent to new leads at once; remove its delay", field="0.delay")
    for number, step in enumerate(steps[1:], start=2):
        if step.delay is None:
            raise failure(
                f'step {number} needs a delay (e.g. "3 days") after step {number - 1}',
                field=str(number - 1),
            )
    return steps
