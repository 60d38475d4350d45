"""Sends and answers by step and by version of a step: what ``stats`` and ``status`` show.

A rate is its count over the sends of that step and version, with both numbers given,
so that a reader sees how much a rate rests on (``3/40``, not only ``7.5%``).
"""

from __future__ import annotations

from mailopsd.state.ledger import Ledger
from mailopsd.state.stats import StepCounts

__all__ = ["COUNTED", "step_lines", "step_report"]

COUNTED = {"replies": "reply_rate", "bounces": "bounce_rate", "unsubscribes": "unsubscribe_rate"}
"""The answers counted per step and version, each with the name of its rate over the sends."""


def _entry(counts: StepCounts) -> dict[str, object]:
    entry: dict[str, object] = {
        "step": counts.step,
        "variant": counts.variant or None,
        "sends": counts.sends,
    }
    for name, rate_name in COUNTED.items():
        count = getattr(counts, name)
        rate = counts.rate(count)
        entry[name] = count
        entry[rate_name] = None if rate is None else round(rate, 4)
    return entry


def step_report(ledger: Ledger, campaign_id: str) -> list[dict[str, object]]:
    """A campaign's counts and rates by step and version (JSON-ready), in step order."""
    return [_entry(counts) for counts in ledger.stats.of(campaign_id)]


def _rate(count: object, sends: object) -> str:
    if not isinstance(count, int) or not isinstance(sends, int) or not sends:
        return f"{count}/{sends}"
    return f"{100 * count / sends:.1f}% ({count}/{sends})"


def step_lines(steps: list[dict[str, object]], indent: str = "") -> list[str]:
    """The rows of ``stats``: one per step and version, rates with the numbers behind."""
    if not steps:
        return [f"{indent}no sends yet"]
    header = f"{indent}{'step':<6}{'variant':<14}{'sends':>7}  {'replies':<18}{'bounces':<18}"
    lines = [header + "unsubscribes"]
    for row in steps:
        variant = str(row["variant"] or "-")
        lines.append(
            f"{indent}{row['step']!s:<6}{variant:<14}{row['sends']!s:>7}  "
            f"{_rate(row['replies'], row['sends']):<18}{_rate(row['bounces'], row['sends']):<18}"
            f"{_rate(row['unsubscribes'], row['sends'])}"
        )
    return lines
