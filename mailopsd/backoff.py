"""How long mailopsd waits after failures in a row: one named policy per kind of failure.

Every retry doubles its wait after each failure, up to a cap; the policies differ only in
their first wait and their cap, so they are named here side by side. Pure: callers count
the failures and keep the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFERRED_LEAD",
    "HTTP_PROCESS",
    "IMAP_MAX_S",
    "SMTP_AUTH",
    "SMTP_TROUBLE",
    "Backoff",
    "imap_idle",
    "imap_poll",
]

# 2.0 ** 1023 is the largest power of two a float holds; past it ``2 ** n`` cannot be
# turned into a float and the product raises instead of reaching the cap.
_MAX_DOUBLINGS = 1023


@dataclass(frozen=True, slots=True)
class Backoff:
    """Doubling delays: ``first_s`` after one failure, twice that after two, at most ``cap_s``.

    Attributes:
        first_s: The wait after the first failure, in seconds.
        cap_s: The longest wait, in seconds.
    """

    first_s: float
    cap_s: float

    def delay_s(self, failures: int) -> float:
        """The wait, in seconds, after ``failures`` failures in a row (1 for the first).

        Args:
            failures: Failures in a row so far; below 1 counts as 1.

        Returns:
            ``first_s * 2 ** (failures - 1)``, never more than ``cap_s``.
        """
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.first_s * 2.0**doublings, self.cap_s)


DEFERRED_LEAD = Backoff(first_s=120.0, cap_s=6 * 3600.0)
"""A lead whose message got a 4xx: tried again 2 minutes later, then 4, 8, … at most 6 hours."""

SMTP_AUTH = Backoff(first_s=60.0, cap_s=3600.0)
"""A credential whose login was refused: 1 minute, then 2, 4, … at most 1 hour."""

SMTP_TROUBLE = Backoff(first_s=30.0, cap_s=1800.0)
"""A credential whose server is unreachable or failing: 30 s, then 60, … at most 30 minutes."""

HTTP_PROCESS = Backoff(first_s=1.0, cap_s=60.0)
"""The HTTP process, when it exits soon after its start: 1 s, then 2, 4, … at most 1 minute."""

IMAP_MAX_S = 3600.0
"""The longest wait between tries of a mailbox that cannot be read."""


def imap_idle(retry_s: float) -> Backoff:
    """The waits of a mailbox's IDLE connection that keeps failing: from ``retry_s``."""
    return Backoff(first_s=retry_s, cap_s=IMAP_MAX_S)


def imap_poll(retry_s: float, interval_s: float) -> Backoff:
    """The waits of a mailbox whose polls fail, polled every ``interval_s`` when well.

    It starts from the retry delay and never waits past the poll interval (nor past
    ``IMAP_MAX_S``): a mailbox that comes back is read as soon as it would have been anyway.
    """
    return Backoff(
        first_s=min(retry_s, interval_s), cap_s=min(IMAP_MAX_S, max(interval_s, retry_s))
    )
