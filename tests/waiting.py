"""Waiting in tests for something that happens in another thread or process.

One loop for every test: it asks, pauses and asks again until the answer is truthy or a
generous limit passes; the failure says what was awaited and the last answer seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
    between: Callable[[], object] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; return that.

    Args:
        check: asks once; a falsy answer means "not yet".
        timeout_s: when to give up: a limit for a hung test, never a claim on speed.
        what: what is awaited, for the failure ("the daemon to be ready").
        interval_s: the pause between two questions.
        between: runs after each falsy answer, before the pause: a tick that moves the
            daemon on, or a check that it still runs (its AssertionError ends the wait).

    Returns:
        The first truthy answer of ``check``.

    Raises:
        AssertionError: no truthy answer within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer:
            return answer
        if between is not None:
            between()
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what}; last seen: {answer!r}"
            )
        time.sleep(interval_s)
