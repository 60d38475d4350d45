"""Rotation among a campaign's credentials, within their limits.

Pure: budgets are computed from counts the ledger gives, for one instant. For a step-1
send the picker takes, among the credentials with budget left, the one least used today
(ties broken by id, so the order is stable). The credentials are kept in buckets by their
use today: the lowest bucket is sorted by id once, then taken in order, and each credential
picked moves to the next bucket up. Within a bucket the arrivals come in id order, so
sorting a bucket costs about its length: a pick costs the same among 10,000 credentials
as among ten. Follow-ups never use the daily budget, but do use the rate-limit budget and
``min_interval``.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

__all__ = ["Budget", "Picker"]


@dataclass
class Budget:
    """What one credential may still send at the instant of the tick.

    Attributes:
        credential_id: The credential.
        sent_today: Step-1 sends in the current UTC day.
        daily_left: Step-1 sends left today: its daily cap (``daily_limit``, or its
            ramp's) less ``sent_today``.
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
        if (self.rate_left is not None and self.rate_left <= 0) or (
            self.tick_left is not None and self.tick_left <= 0
        ):
            return False
        return step > 1 or self.daily_left > 0

    def step1_room(self) -> int:
        """How many step-1 sends fit now (each one counted as it is used)."""
        if not self.can_send(step=1):
            return 0
        limits = [self.daily_left]
        limits += [left for left in (self.rate_left, self.tick_left) if left is not None]
        if self.one_per_tick:
            limits.append(1)
        return min(limits)

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


_BY_ID = attrgetter("credential_id")


@dataclass
class Picker:
    """Chooses credentials for step-1 sends: least used today first, stable ties."""

    budgets: dict[str, Budget]
    _buckets: dict[int, list[Budget]] = field(default_factory=dict)
    _levels: list[int] = field(default_factory=list)  # a heap of the keys of _buckets
    _level: int = -1
    _current: list[Budget] = field(default_factory=list)  # bucket _level, sorted by id
    _next: int = 0  # the next one to take in _current

    @classmethod
    def of(cls, budgets: Iterable[Budget]) -> Picker:
        """A picker over ``budgets`` (the eligible credentials only)."""
        table = {budget.credential_id: budget for budget in budgets}
        picker = cls(table)
        for budget in sorted(table.values(), key=_BY_ID):
            if budget.can_send(step=1):
                picker._file(budget)
        return picker

    def _file(self, budget: Budget) -> None:
        """Put a credential in the bucket of its use today."""
        level = budget.sent_today
        if level == self._level:  # only if a count changed behind the picker's back
            bisect.insort(self._current, budget, lo=self._next, key=_BY_ID)
            return
        bucket = self._buckets.get(level)
        if bucket is None:
            bucket = self._buckets[level] = []
            heapq.heappush(self._levels, level)
        bucket.append(budget)

    def _advance(self) -> bool:
        """Make the lowest non-empty bucket the current one; ``False`` if none is left."""
        if not self._levels:
            return False
        self._level = heapq.heappop(self._levels)
        self._current = self._buckets.pop(self._level)
        self._current.sort(key=_BY_ID)  # a few sorted runs: linear
        self._next = 0
        return True

    def pick(self) -> Budget | None:
        """Take the least-used credential that can send a step 1 now, and count the send."""
        while self._next < len(self._current) or self._advance():
            budget = self._current[self._next]
            self._next += 1
            if budget.sent_today != self._level:  # changed since it was filed
                self._file(budget)
                continue
            if not budget.can_send(step=1):
                continue
            budget.use(step=1)
            if budget.can_send(step=1):
                self._file(budget)
            return budget
        return None

    def follow_up(self, credential_id: str) -> bool:
        """Count a follow-up on its own credential, if it may send now."""
        budget = self.budgets.get(credential_id)
        if budget is None or not budget.can_send(step=2):
            return False
        budget.use(step=2)
        return True
