"""What a benchmark returns: rows of numbers, each with its reference, ratio and target.

Every benchmark module has ``run(quick: bool) -> list[Row]``. ``python -m bench`` runs
them, prints one table and writes ``bench/results.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Row:
    """One measured number.

    Attributes:
        benchmark: The benchmark's name (``load``, ``smtp``...).
        metric: What was measured, e.g. ``10,000 credentials`` or ``msg/s``.
        value: The median measured for mailopsd.
        unit: ``s``, ``ms``, ``µs``, ``msg/s``, ``MB``, ``%``...
        reference: The reference tool or run it is compared with (None: no reference).
        reference_value: The reference's median, measured in the same run, same unit.
        ratio: ``value / reference_value`` when there is a reference (else None), or a
            ratio the target is stated in (e.g. large vs small mailbox).
        target: The target, as a person reads it (``≤ 1 s``, ``≥ 2.5x naive``).
        met: Whether the target is met (None: no target for this row).
        note: Anything a reader needs (rounds, sizes, why a reference is missing).
    """

    benchmark: str
    metric: str
    value: float
    unit: str
    reference: str | None = None
    reference_value: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def as_json(self) -> dict[str, object]:
        """The row as a JSON-ready mapping."""
        return asdict(self)


def fmt(value: float | None, unit: str = "") -> str:
    """A number for the table: three significant digits, thousands separated."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()
