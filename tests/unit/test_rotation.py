"""Rotation: the picker takes the least-used credential first, ties by id, within budgets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailopsd.dispatch.rotation import Budget, Picker


def _budget(
    index: int, sent: int, left: int, rate: int | None = None, tick: int | None = None
) -> Budget:
    return Budget(f"c{index:03d}", sent_today=sent, daily_left=left, rate_left=rate, tick_left=tick)


budgets = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.integers(0, 4),
        st.none() | st.integers(0, 4),
        st.none() | st.integers(0, 4),
        st.booleans(),
    ),
    max_size=12,
)


def _reference(table: list[Budget]) -> Budget | None:
    """The rule, by brute force: least used today among those that can send, then by id."""
    ready = [b for b in table if b.can_send(step=1)]
    if not ready:
        return None
    chosen = min(ready, key=lambda b: (b.sent_today, b.credential_id))
    chosen.use(step=1)
    return chosen


@settings(max_examples=300, deadline=None)
@given(budgets, st.lists(st.integers(0, 11), max_size=8))
def test_picks_follow_the_rule(
    specs: list[tuple[int, int, int | None, int | None, bool]], follow_ups: list[int]
) -> None:
    """Every pick is the brute-force choice, follow-ups in between included."""
    mine = [_budget(i, *spec[:4]) for i, spec in enumerate(specs)]
    theirs = [_budget(i, *spec[:4]) for i, spec in enumerate(specs)]
    for budget, spec in zip(mine + theirs, specs + specs, strict=True):
        budget.one_per_tick = spec[4]
    picker = Picker.of(mine)
    room = sum(b.step1_room() for b in mine)
    picked = 0
    for turn in range(60):
        if follow_ups and turn % 3 == 2:
            index = follow_ups[turn % len(follow_ups)]
            if index < len(mine):
                assert picker.follow_up(mine[index].credential_id) == theirs[index].can_send(step=2)
                if theirs[index].can_send(step=2):
                    theirs[index].use(step=2)
            continue
        got, expected = picker.pick(), _reference(theirs)
        assert (got and got.credential_id) == (expected and expected.credential_id)
        picked += got is not None
    if not follow_ups:
        assert picked == min(room, 40)


def test_least_used_first_then_by_id() -> None:
    picker = Picker.of(
        [_budget(2, sent=1, left=5), _budget(1, sent=3, left=5), _budget(3, sent=1, left=5)]
    )
    order = [picker.pick() for _ in range(6)]
    assert [b.credential_id if b else None for b in order] == [
        "c002",
        "c003",
        "c002",
        "c003",
        "c001",
        "c002",
    ]


def test_budgets_run_out() -> None:
    picker = Picker.of([_budget(1, sent=0, left=2), _budget(2, sent=0, left=5, tick=1)])
    names = [b.credential_id for b in iter(picker.pick, None)]
    assert names == ["c001", "c002", "c001"]


def test_step1_room() -> None:
    assert _budget(1, sent=0, left=7, rate=3).step1_room() == 3
    assert _budget(1, sent=0, left=2, tick=50).step1_room() == 2
    assert _budget(1, sent=0, left=0).step1_room() == 0
    paced = Budget("p", sent_today=0, daily_left=9, one_per_tick=True)
    assert paced.step1_room() == 1
    paced.interval_free = False
    assert paced.step1_room() == 0


def test_flat_with_many_credentials() -> None:
    """10,000 credentials: every one is used once before any is used twice."""
    picker = Picker.of(_budget(i, sent=i % 3, left=10) for i in range(10_000))
    first = [picker.pick() for _ in range(10_000)]
    assert all(b is not None for b in first)
    sent = sorted(b.sent_today for b in picker.budgets.values())
    assert sent[-1] - sent[0] <= 1
