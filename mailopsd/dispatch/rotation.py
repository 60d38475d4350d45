"""Rotation among a campaign's credentials, within their limits.

Pure: budgets are computed from counts the ledger gives, for one instant. For a step-1
send the picker takes, among the credentials with budget left, the one least used today
(ties broken by id, so the order is stable); a heap keeps each pick O(log n), so 10,000
credentials cost no more per send than ten. Follow-ups never use the daily budget, but
do use the rate-limit budget and ``min_interval``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Budget", "Picker"]


@dataclass
class Budget:
    """What one credential may still send at the instant of the tick.

    Attributes:
        credential_id: The credential.
        sent_today: Step-1 sends in the current UTC day.
        daily_left: Step-1 sends left today (``daily_limit - sent_today``).
        rate_left: Sends of any step left in the rate-limit window (``None``: no limit).
        interval_free: ``min_interval`` has passed since the last send (or there is none).
        one_per_tick: ``min_interval`` is set, so at most one send per instant.
        tick_left: Sends left in this tick (a batch bound; ``None``: no bound).
    """

    credential_id: str
    sent_today: int
    daily_left: int
    rate_left: int | None = None
    interval_free: bool = True
    one_per_tick: bool = False
    tick_left: int | None = None

    def can_send(self, *, step: int) -> bool:
        """Tell whether a send of ``step`` fits now."""
        if not self.interval_free:
            return False
        if any(left is not None and left <= 0 for left in (self.rate_left, self.tick_left)):
            return False
        return step > 1 or self.daily_left > 0

    def use(self, *, step: int) -> None:
        """Account for one send of ``step``."""
        if step == 1:
            self.sent_today += 1
            self.daily_left -= 1
        if self.rate_left is not None:
            self.rate_left -= 1
        if self.tick_left is not None:
            self.tick_left -= 1
        if self.one_per_tick:
            self.interval_free = False


@dataclass
class Picker:
    """Chooses credentials for step-1 sends: least used today first, stable ties."""

    budgets: dict[str, Budget]
    _heap: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def of(cls, budgets: Iterable[Budget]) -> Picker:
        """A picker over ``budgets`` (the eligible credentials only)."""
        table = {budget.credential_id: budget for budget in budgets}
        heap = [(b.sent_today, b.credential_id) for b in table.values() if b.can_send(step=1)]
        heapq.heapify(heap)
        return cls(table, heap)

    def pick(self) -> Budget | None:
        """Take the least-used credential that can send a step 1 now, and count the send."""
        while self._heap:
            sent, credential_id = heapq.heappop(self._heap)
            budget = self.budgets[credential_id]
            if sent != budget.sent_today:  # a follow-up or an earlier pick changed it
                heapq.heappush(self._heap, (budget.sent_today, credential_id))
                continue
            if not budget.can_send(step=1):
                continue
            budget.use(step=1)
            if budget.can_send(step=1):
                heapq.heappush(self._heap, (budget.sent_today, credential_id))
            return budget
        return None

    def follow_up(self, credential_id: str) -> bool:
        """Count a follow-up on its own credential, if it may send now."""
        budget = self.budgets.get(credential_id)
        if budget is None or not budget.can_send(step=2):
            return False
        budget.use(step=2)
        return True
