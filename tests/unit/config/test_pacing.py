"""Pacing settings: min_interval spreads, delay_jitter and ramps, as written and as computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailopsd.config import pacing
from mailopsd.config.pacing import Ramp, Spread
from mailopsd.config.periods import SYNTAX, parse_period
from tests.configs import Writer, errors_of, loads

CRED = "c.yaml:{line}:{col}: campaigns.acme-q4.smtp_credentials.primary.{field}: {message}"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _cred(line: int, col: int, field: str, message: str) -> str:
    return CRED.format(line=line, col=col, field=field, message=message)


def _spread(low: str, high: str) -> Spread:
    return Spread.model_validate({"min": low, "max": high})


def _ramp(**fields: object) -> Ramp:
    return Ramp.model_validate({"start": 2, "step": 2, "every": "1 day", **fields})


class TestSettings:
    """What the YAML may say, and where a wrong value is reported."""

    def test_every_form_loads(self, write_config: Writer) -> None:
        """A spread, a ramp with its from date and restart flag, and delay_jitter load."""
        config = loads(
            write_config(
                replace=(
                    "    name: ACME Q4 outreach\n",
                    "    name: x\n    delay_jitter: 2 hours\n",
                ),
                add=(
                    "        min_interval: {min: 90 seconds, max: 140 seconds}\n"
                    "        ramp: {start: 10, step: 5, every: 1 day, from: 2026-11-01}\n"
                    "        ramp_restart_on_reenable: true\n"
                ),
            )
        ).config
        campaign = config.campaigns["acme-q4"]
        credential = campaign.smtp_credentials["primary"]
        assert campaign.delay_jitter == parse_period("2 hours")
        assert credential.min_interval == _spread("90 seconds", "140 seconds")
        assert credential.ramp == Ramp.model_validate(
            {"start": 10, "step": 5, "every": "1 day", "from": "2026-11-01T00:00:00Z"}
        )
        assert credential.ramp_restart_on_reenable is True

    def test_snapshots_keep_the_written_shape(self, write_config: Writer) -> None:
        """A plain min_interval stays its text (as before spreads); a ramp keeps "from"."""
        credential = (
            loads(
                write_config(
                    add=(
                        "        min_interval: 90 seconds\n"
                        '        ramp: {start: 10, step: 5, every: 1 day, from: "2026-11-01"}\n'
                    )
                )
            )
            .config.campaigns["acme-q4"]
            .smtp_credentials["primary"]
        )
        dumped = credential.model_dump(mode="json")
        assert dumped["min_interval"] == "90 seconds"
        assert dumped["ramp"] == {
            "start": 10,
            "step": 5,
            "every": "1 day",
            "from": "2026-11-01T00:00:00Z",
        }
        assert Ramp.model_validate(dumped["ramp"]) == credential.ramp

    @pytest.mark.parametrize(
        ("add", "expected"),
        [
            (
                "        min_interval: {min: 90 seconds, max: 60 seconds}\n",
                _cred(
                    19,
                    46,
                    "min_interval.max",
                    "max (60 seconds) is shorter than min (90 seconds); max must be at least min",
                ),
            ),
            (
                "        min_interval: {min: 90 seconds}\n",
                _cred(19, 9, "min_interval.max", "required field is missing"),
            ),
            (
                "        min_interval: {min: 90, max: 2 minutes}\n",
                _cred(
                    19,
                    29,
                    "min_interval.min",
                    f'a number needs a unit, e.g. "90 minutes" (got 90); {SYNTAX}',
                ),
            ),
            (
                "        min_interval: [90 seconds]\n",
                _cred(
                    19,
                    23,
                    "min_interval",
                    'must be a period such as "90 seconds", or a spread such as '
                    "{min: 90 seconds, max: 140 seconds} (got a list); " + SYNTAX,
                ),
            ),
            (
                "        ramp: {start: 101, step: 5, every: 1 day}\n",
                _cred(
                    19,
                    23,
                    "ramp.start",
                    "start 101 is above daily_limit 100: the ramp rises up to daily_limit; "
                    "lower start or raise daily_limit",
                ),
            ),
            (
                "        ramp: {start: 0, step: 5, every: 1 day}\n",
                _cred(19, 23, "ramp.start", "must be an integer ≥ 1 (got 0)"),
            ),
            (
                "        ramp: {start: 10, step: 0, every: 1 day}\n",
                _cred(19, 33, "ramp.step", "must be an integer ≥ 1 (got 0)"),
            ),
            (
                "        ramp: {start: 10, step: 5, every: 0 days}\n",
                _cred(19, 43, "ramp.every", 'must be longer than zero (got "0 days")'),
            ),
            (
                "        ramp: {start: 10, step: 5}\n",
                _cred(19, 9, "ramp.every", "required field is missing"),
            ),
            (
                "        ramp: {start: 10, step: 5, every: 1 day, from: 2026-13-01}\n",
                _cred(
                    19,
                    56,
                    "ramp.from",
                    "must be a date such as 2026-11-23, or a timestamp with a time zone such "
                    'as 2026-11-23T12:00:00Z (got "2026-13-01")',
                ),
            ),
            (
                "        ramp: {start: 10, step: 5, every: 1 day, since: 2026-11-01}\n",
                _cred(19, 50, "ramp.since", "unknown field"),
            ),
            (
                "        ramp_restart_on_reenable: true\n",
                _cred(
                    19,
                    35,
                    "ramp_restart_on_reenable",
                    "ramp_restart_on_reenable needs a ramp (e.g. ramp: {start: 10, step: 5, "
                    "every: 1 day})",
                ),
            ),
            (
                "        ramp: {start: 10, step: 5, every: 1 day}\n"
                "        ramp_restart_on_reenable: yes\n",
                _cred(20, 35, "ramp_restart_on_reenable", 'must be true or false (got "yes")'),
            ),
        ],
    )
    def test_bad_value_is_located(self, write_config: Writer, add: str, expected: str) -> None:
        """Each wrong spread or ramp value is reported at its file, line and column."""
        assert errors_of(write_config(add=add)) == [expected]

    def test_misspelt_max(self, write_config: Writer) -> None:
        """A misspelt max is an unknown field with a suggestion, and max is missing."""
        errors = errors_of(
            write_config(add="        min_interval: {min: 90 seconds, maximum: 2 minutes}\n")
        )
        assert errors == [
            _cred(19, 9, "min_interval.max", "required field is missing"),
            _cred(19, 41, "min_interval.maximum", "unknown field; did you mean max?"),
        ]

    def test_every_error_is_located(self, write_config: Writer) -> None:
        """Several wrong pacing values in one file are each reported, at each value."""
        errors = errors_of(
            write_config(
                add=(
                    "        min_interval: {min: 2 minutes, max: 1 fortnight}\n"
                    "        ramp: {start: 0, step: 5, every: 1 day}\n"
                )
            )
        )
        assert [error.split(": ")[0:2] for error in errors] == [
            ["c.yaml:19:45", "campaigns.acme-q4.smtp_credentials.primary.min_interval.max"],
            ["c.yaml:20:23", "campaigns.acme-q4.smtp_credentials.primary.ramp.start"],
        ]

    @pytest.mark.parametrize(
        ("new", "expected"),
        [
            (
                "    delay_jitter: 2\n",
                f'c.yaml:4:19: campaigns.acme-q4.delay_jitter: a number needs a unit, e.g. "2 '
                f'minutes" (got 2); {SYNTAX}',
            ),
            (
                "    delay_jitter: 0 hours\n",
                'c.yaml:4:19: campaigns.acme-q4.delay_jitter: must be longer than zero (got "0 '
                'hours")',
            ),
        ],
    )
    def test_bad_delay_jitter(self, write_config: Writer, new: str, expected: str) -> None:
        """delay_jitter is a period like every other, located at its value."""
        old = "    leads: leads.csv\n"
        assert errors_of(write_config(replace=(old, new + old))) == [expected]

    def test_delay_jitter_needs_a_follow_up(self, write_config: Writer) -> None:
        """A sequence of one step has nothing for delay_jitter to spread: an error at it."""
        text = write_config().read_text()
        one_step = text.replace('      - delay: 3 days\n        body: "Following up"\n', "")
        path = write_config(
            one_step,
            replace=("    leads: leads.csv\n", "    delay_jitter: 1 hour\n    leads: leads.csv\n"),
        )
        assert errors_of(path) == [
            "c.yaml:4:19: campaigns.acme-q4.delay_jitter: delay_jitter spreads follow-ups, and "
            "this sequence has none: remove it, or add a step"
        ]


class TestRamp:
    """The effective daily cap: start, then step more every period, up to daily_limit."""

    def test_cap_rises_by_day_from_the_first_send(self) -> None:
        """Counted from 00:00 UTC of the first send's day: 2, 4, then daily_limit 5."""
        first = NOW.replace(hour=15)
        caps = [
            pacing.ramp_day(
                _ramp(),
                daily_limit=5,
                restart_on_reenable=False,
                first_send=first,
                reenabled_at=None,
                now=NOW.replace(hour=16) + n * DAY,
            )
            for n in range(4)
        ]
        assert [day.cap for day in caps] == [2, 4, 5, 5]
        assert [day.day for day in caps] == [1, 2, 3, 4]
        assert caps[0].origin == "first_send"
        assert caps[0].day_one == NOW.replace(hour=0)
        assert caps[0].next_rise_at == NOW.replace(hour=0) + DAY
        assert caps[1].next_rise_at == NOW.replace(hour=0) + 2 * DAY
        assert caps[2].next_rise_at is None  # at daily_limit: no more rises

    def test_not_started_is_start(self) -> None:
        """A mailbox that never sent is on its ramp's first value, with no day yet."""
        day = pacing.ramp_day(
            _ramp(),
            daily_limit=5,
            restart_on_reenable=False,
            first_send=None,
            reenabled_at=None,
            now=NOW,
        )
        assert (day.cap, day.origin, day.day, day.next_rise_at) == (2, "not_started", None, None)

    def test_from_wins_over_the_first_send(self) -> None:
        """With from, the first send does not matter; a from in the future holds at start."""
        ramp = _ramp(**{"from": "2026-11-20"})
        now = pacing.ramp_day(
            ramp,
            daily_limit=50,
            restart_on_reenable=False,
            first_send=NOW,
            reenabled_at=None,
            now=NOW,
        )
        assert (now.cap, now.origin, now.day) == (2 + 2 * 3, "from", 4)
        early = pacing.ramp_day(
            ramp,
            daily_limit=50,
            restart_on_reenable=False,
            first_send=None,
            reenabled_at=None,
            now=datetime(2026, 11, 1, tzinfo=UTC),
        )
        assert early.cap == 2

    @pytest.mark.parametrize(
        ("restart", "expected"), [(True, (2, "reenabled_at")), (False, (5, "first_send"))]
    )
    def test_restart_on_reenable(self, restart: bool, expected: tuple[int, str]) -> None:
        """With ramp_restart_on_reenable the last re-enable starts the ramp over."""
        day = pacing.ramp_day(
            _ramp(),
            daily_limit=5,
            restart_on_reenable=restart,
            first_send=NOW - 30 * DAY,
            reenabled_at=NOW - timedelta(hours=2),
            now=NOW,
        )
        assert (day.cap, day.origin) == expected

    def test_months(self) -> None:
        """A monthly step counts calendar months: Jan 31 + 1 month is the end of February."""
        ramp = _ramp(every="1 month", **{"from": "2026-01-31"})
        caps = {
            moment: pacing.ramp_day(
                ramp,
                daily_limit=100,
                restart_on_reenable=False,
                first_send=None,
                reenabled_at=None,
                now=datetime(*moment, tzinfo=UTC),
            ).cap
            for moment in ((2026, 2, 27), (2026, 2, 28), (2026, 3, 30), (2026, 3, 31), (2027, 2, 1))
        }
        assert list(caps.values()) == [2, 4, 4, 6, 2 + 2 * 12]


class TestDraws:
    """Spread draws: reproducible, within range, different for different inputs."""

    def test_gap_within_range_reproducible_and_spread(self) -> None:
        """Gaps fall in [min, max], the same for the same send, and not all the same."""
        spread = _spread("90 seconds", "140 seconds")
        sends = [NOW + timedelta(seconds=137 * n) for n in range(200)]
        gaps = [pacing.gap_after(spread, campaign_id="c", credential_id="a", at=at) for at in sends]
        assert all(gap is not None and 90 <= gap <= 140 for gap in gaps)
        assert len(set(gaps)) > 40
        assert {90, 140} <= set(gaps)  # both ends can be drawn
        again = [
            pacing.gap_after(spread, campaign_id="c", credential_id="a", at=at) for at in sends
        ]
        assert again == gaps
        other = [
            pacing.gap_after(spread, campaign_id="c", credential_id="b", at=at) for at in sends
        ]
        assert other != gaps

    def test_plain_period_is_exact(self) -> None:
        """A plain min_interval draws nothing: its gap is the period, as before spreads."""
        month = _spread("1 month", "1 month")
        at = datetime(2026, 1, 31, tzinfo=UTC)
        assert pacing.gap_after(month, campaign_id="c", credential_id="a", at=at) == 28 * 86400
        assert pacing.gap_after(None, campaign_id="c", credential_id="a", at=at) is None

    def test_recorded_gap_is_never_shortened(self) -> None:
        """The next send waits for the recorded gap, or for a longer one drawn now."""
        short = _spread("10 seconds", "10 seconds")
        long = _spread("1 hour", "1 hour")
        ids = {"campaign_id": "c", "credential_id": "a"}
        assert pacing.next_send_at(short, **ids, last=NOW, recorded_gap_s=300) == NOW + timedelta(
            minutes=5
        )
        assert pacing.next_send_at(None, **ids, last=NOW, recorded_gap_s=300) == NOW + timedelta(
            minutes=5
        )
        assert pacing.next_send_at(long, **ids, last=NOW, recorded_gap_s=300) == NOW + timedelta(
            hours=1
        )
        assert pacing.next_send_at(None, **ids, last=NOW, recorded_gap_s=None) is None
        assert pacing.next_send_at(long, **ids, last=None, recorded_gap_s=None) is None

    def test_followup_jitter(self) -> None:
        """Follow-ups of leads sent together spread over [delay, delay + jitter]."""
        delay, jitter = parse_period("1 day"), parse_period("2 hours")
        dues = [
            pacing.followup_due(
                delay, jitter, campaign_id="c", email=f"lead{n}@example.net", step=2, sent_at=NOW
            )
            for n in range(20)
        ]
        assert all(NOW + DAY <= due <= NOW + DAY + timedelta(hours=2) for due in dues)
        assert len(set(dues)) == 20
        assert (
            pacing.followup_due(
                delay, None, campaign_id="c", email="lead0@example.net", step=2, sent_at=NOW
            )
            == NOW + DAY
        )
