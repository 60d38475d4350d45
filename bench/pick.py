"""The cost of picking the credential of the next step-1 send, by number of credentials.

    python -m bench pick [--quick]

``mailopsd.dispatch.rotation``: a ``Picker`` over 10, 1,000 and 10,000 eligible
credentials (each with budget left today, uneven use so far) picks, again and again, the
least used one and counts the send, as the dispatcher does for every new lead. Every
credential is on a warm-up ramp, its first send on one of the last 30 days: its budget's
daily cap is the ramp's, computed as ``dispatch.budgets`` does. Half of them are shared
mailboxes, each named by two campaigns: their budget in the campaign picking is its share
of what the mailbox has left, as ``TickUsage.share`` gives it. The sizes alternate over
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
from mailopsd.config.cache import validate_config
from mailopsd.config.models import Config, Credential
from mailopsd.dispatch.budgets import TickUsage, daily_cap
from mailopsd.dispatch.rotation import Budget, Picker
from mailopsd.state.schema import stamp
from mailopsd.state.statefile import CredentialState

SIZES = (10, 1_000, 10_000)
TARGET_US = 20.0
FLAT = 2.0
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
# A ramp that never reaches its daily_limit here: the picker never runs out of budget.
_RAMPED_FIELDS = {
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "smtp_username": "bench",
    "smtp_password": "bench",
    "from_name": "Bench",
    "from_email": "bench@example.com",
    "daily_limit": 10**9,
    "ramp": {"start": 10**7, "step": 10**7, "every": "1 day"},
}
RAMPED = Credential.model_validate(_RAMPED_FIELDS)
_NO_STATE = CredentialState()


def _shared_config(count: int) -> Config:
    """Mailboxes ``box00000``... each named by campaigns ``a`` and ``b``."""
    boxes = {f"box{i:05d}": dict(_RAMPED_FIELDS) for i in range(count)}
    names = {f"box{i:05d}": {"mailbox": f"box{i:05d}"} for i in range(count)}
    campaign = {"name": "x", "leads": "l.csv", "sequence": [{"subject": "s", "body": "b"}]}
    campaigns = {cid: {**campaign, "smtp_credentials": names} for cid in ("a", "b")}
    return validate_config({"mailboxes": boxes, "campaigns": campaigns}, None)


def _budgets(count: int, config: Config | None = None) -> list[Budget]:
    """Budgets of ``count`` credentials; the first half shared in ``config`` when given."""
    reads = None if config is None else TickUsage(None, config, NOW)  # type: ignore[arg-type]
    budgets = []
    for i in range(count):
        first = stamp(NOW - timedelta(days=i % 30, minutes=i % 600))
        cap = daily_cap(RAMPED, first_send=first, entry=_NO_STATE, now=NOW)
        budget = Budget(f"box{i:05d}", sent_today=i % 7, daily_left=cap - i % 7, tick_left=10**9)
        if reads is not None and i < count // 2:
            budget = reads.share(budget.credential_id, "a", budget)
        budgets.append(budget)
    return budgets


def _build_us(count: int, config: Config) -> tuple[float, float]:
    """µs to build the budgets (ramp caps, shares), and to build the picker over them."""
    start = time.perf_counter()
    budgets = _budgets(count, config)
    built = time.perf_counter()
    Picker.of(budgets)
    return (built - start) * 1e6, (time.perf_counter() - built) * 1e6


def _build_note(count: int, config: Config) -> str:
    budgets_us, picker_us = _build_us(count, config)
    return (
        f"building the budgets (ramp caps, shares): {budgets_us:,.0f} µs, the picker: "
        f"{picker_us:,.0f} µs"
    )


def run(quick: bool) -> list[Row]:
    """Median µs per pick at each size, and the ratio of the largest to the smallest."""
    picks, rounds = (2_000, 1) if quick else (50_000, 7)
    configs = {count: _shared_config(count // 2) for count in SIZES}
    pickers = {count: Picker.of(_budgets(count, configs[count])) for count in SIZES}

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
            note=f"{note}; {_build_note(count, configs[count])}{quick_note}",
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
