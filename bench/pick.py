"""The cost of picking the credential of the next step-1 send, by number of credentials.

    python -m bench pick [--quick]

``mailopsd.dispatch.rotation``: a ``Picker`` over 10, 1,000 and 10,000 eligible
credentials (each with budget left today, uneven use so far) picks, again and again, the
least used one and counts the send, as the dispatcher does for every new lead. Every
credential is on a warm-up ramp, its first send on one of the last 30 days: its budget's
daily cap is the ramp's, computed as ``dispatch.budgets`` does. The sizes alternate over
the rounds; medians in microseconds per pick. Building the budgets (their ramp caps) and
the picker, once per tick, are reported in the notes. Target: at most 20 µs per pick at
10,000 credentials, and flat in the number of credentials (10,000 within 2x of 10).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bench.report import Row
from bench.timing import alternate
from mailopsd.config.models import Credential
from mailopsd.dispatch.budgets import daily_cap
from mailopsd.dispatch.rotation import Budget, Picker
from mailopsd.state.schema import stamp
from mailopsd.state.statefile import CredentialState

SIZES = (10, 1_000, 10_000)
TARGET_US = 20.0
FLAT = 2.0
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
# A ramp that never reaches its daily_limit here: the picker never runs out of budget.
RAMPED = Credential.model_validate(
    {
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "smtp_username": "bench",
        "smtp_password": "bench",
        "from_name": "Bench",
        "from_email": "bench@example.com",
        "daily_limit": 10**9,
        "ramp": {"start": 10**7, "step": 10**7, "every": "1 day"},
    }
)
_NO_STATE = CredentialState()


def _budgets(count: int) -> list[Budget]:
    budgets = []
    for i in range(count):
        first = stamp(NOW - timedelta(days=i % 30, minutes=i % 600))
        cap = daily_cap(RAMPED, first_send=first, entry=_NO_STATE, now=NOW)
        budgets.append(
            Budget(f"cred{i:05d}", sent_today=i % 7, daily_left=cap - i % 7, tick_left=10**9)
        )
    return budgets


def _build_us(count: int) -> tuple[float, float]:
    """µs to build the budgets (ramp caps included), and to build the picker over them."""
    start = time.perf_counter()
    budgets = _budgets(count)
    built = time.perf_counter()
    Picker.of(budgets)
    return (built - start) * 1e6, (time.perf_counter() - built) * 1e6


def _build_note(count: int) -> str:
    budgets_us, picker_us = _build_us(count)
    return (
        f"building the budgets (ramp caps): {budgets_us:,.0f} µs, the picker: {picker_us:,.0f} µs"
    )


def run(quick: bool) -> list[Row]:
    """Median µs per pick at each size, and the ratio of the largest to the smallest."""
    picks, rounds = (2_000, 2) if quick else (50_000, 7)
    pickers = {count: Picker.of(_budgets(count)) for count in SIZES}

    def action(picker: Picker) -> Callable[[], object]:
        def many() -> None:
            pick = picker.pick
            for _ in range(picks):
                if pick() is None:
                    raise RuntimeError("the picker ran out of budget")

        return many

    medians = alternate({str(count): action(p) for count, p in pickers.items()}, rounds)
    per_pick = {count: medians[str(count)] / picks * 1e6 for count in SIZES}
    note = f"{picks:,} picks per round, median of {rounds} rounds, sizes alternating"
    quick_note = "; quick run: shows it works, measures nothing" if quick else ""
    rows = [
        Row(
            benchmark="pick",
            metric=f"pick among {count:,} credentials",
            value=per_pick[count],
            unit="µs",
            target=f"≤ {TARGET_US:g} µs",
            met=None if quick else per_pick[count] <= TARGET_US,
            note=f"{note}; {_build_note(count)}{quick_note}",
        )
        for count in SIZES
    ]
    largest, smallest = SIZES[-1], SIZES[0]
    growth = per_pick[largest] / per_pick[smallest]
    rows.append(
        Row(
            benchmark="pick",
            metric=f"per pick, {largest:,} vs {smallest:,} credentials",
            value=growth,
            unit="x",
            ratio=growth,
            target=f"flat (≤ {FLAT:g}x)",
            met=None if quick else growth <= FLAT,
            note=note + quick_note,
        )
    )
    return rows
