"""Each chart day's figures: the bars as counted, the rate over the window ending that day."""

from __future__ import annotations

from datetime import date, timedelta
from random import Random

from mailopsd.pages.model import _mailbox, _window_days


def _brute(
    sends: dict[str, tuple[int, int]], bounces: dict[str, int], day: date, span: int
) -> tuple[int, int]:
    window = [(day - timedelta(days=back)).isoformat() for back in range(span)]
    return (
        sum(bounces.get(one, 0) for one in window),
        sum(sum(sends.get(one, (0, 0))) for one in window),
    )


def test_each_day_counts_its_window() -> None:
    """Against a count made day by day, over random days, windows and gaps."""
    rng = Random(5)
    for _ in range(50):
        span = rng.randint(1, 12)
        shown = [date(2026, 11, 1) + timedelta(days=n) for n in range(rng.randint(1, 40))]
        days = [shown[0] + timedelta(days=n) for n in range(-span, len(shown))]
        sends = {
            d.isoformat(): (rng.randint(0, 9), rng.randint(0, 4))
            for d in days
            if rng.random() < 0.7
        }
        bounces = {d.isoformat(): rng.randint(0, 3) for d in days if rng.random() < 0.4}
        view = _mailbox({"id": "a"}, sends, bounces, shown, span)
        assert [bar.day for bar in view.bars] == [d.isoformat() for d in shown]
        assert [(b.step1, b.followups) for b in view.bars] == [
            sends.get(d.isoformat(), (0, 0)) for d in shown
        ]
        assert [(p.bounces, p.sends) for p in view.rates] == [
            _brute(sends, bounces, d, span) for d in shown
        ]


def test_window_days() -> None:
    assert [_window_days(text) for text in ("7 days", "36:00:00", "1 month", "nonsense")] == [
        7,
        2,
        30,
        7,
    ]
