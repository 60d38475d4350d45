"""The tests' one waiting loop: the first truthy answer, or a failure that says what."""

from __future__ import annotations

import pytest

from tests.waiting import poll_until


def test_returns_the_first_truthy_answer() -> None:
    """Falsy answers are asked again; the first truthy one is returned as it is."""
    answers = iter([None, [], 0, ["done"], ["later"]])
    assert poll_until(lambda: next(answers), timeout_s=5, interval_s=0, what="x") == ["done"]


def test_runs_between_after_each_falsy_answer() -> None:
    """``between`` runs once after each falsy answer, never after the truthy one."""
    ticks: list[int] = []
    assert poll_until(
        lambda: len(ticks) >= 3,
        timeout_s=5,
        interval_s=0,
        what="x",
        between=lambda: ticks.append(1),
    )
    assert ticks == [1, 1, 1]


def test_fails_with_what_and_the_last_answer() -> None:
    """At the limit the failure names what was awaited and the last answer."""
    replies: list[str] = []
    with pytest.raises(AssertionError, match=r"waiting for a reply; last seen: \[\]$"):
        poll_until(lambda: replies, timeout_s=0.05, interval_s=0.01, what="a reply")


def test_a_failing_between_ends_the_wait() -> None:
    """An AssertionError from ``between`` (the daemon died) ends the wait at once."""

    def dead() -> None:
        raise AssertionError("the daemon exited with 1")

    with pytest.raises(AssertionError, match="the daemon exited with 1"):
        poll_until(lambda: False, timeout_s=60, what="x", between=dead)
