"""The cost of picking the credential of the next step-1 send, by number of credentials.

    python -m bench pick [--quick]

``mailopsd.dispatch.rotation``: a ``Picker`` over 10, 1,000 and 10,000 eligible
credentials (each with budget left today, uneven use so far) picks, again and again, the
least used one and counts the send, as the dispatcher does for every new lead. The sizes
alternate over the rounds; medians in microseconds per pick. Building the picker (once
per tick) is reported in the notes. Target: at most 20 µs per pick at 10,000 credentials,
and flat in the number of credentials (10,000 within 2x of 10).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.report import Row
from bench.timing import alternate
from mailopsd.dispatch.rotation import Budget, Picker

SIZES = (10, 1_000, 10_000)
TARGET_US = 20.0
FLAT = 2.0


def _budgets(count: int) -> list[Budget]:
    return [
        Budget(f"cred{i:05d}", sent_today=i % 7, daily_left=10**9, tick_left=10**9)
        for i in range(count)
    ]


def _build_us(count: int) -> float:
    budgets = _budgets(count)
    start = time.perf_counter()
    Picker.of(budgets)
    return (time.perf_counter() - start) * 1e6


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
            note=f"{note}; building the picker: {_build_us(count):,.0f} µs{quick_note}",
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
