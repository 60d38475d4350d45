"""What a person reads when a name in the config, or given to a command, is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.commands import run_cli
from tests.configs import BASE, LEADS, Writer

PLAIN = "--allow-plaintext-secrets"
PERIOD_SYNTAX = (
    'a period is "<count> <unit> [hh:mm:ss]" or "hh:mm:ss", unit one of second(s), '
    'minute(s), hour(s), day(s), week(s), month(s): "1 hour", "2 days", "0:30:00", '
    '"4 months 5:00:00"'
)


def _validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "validate", str(path), PLAIN)
    return code, out + err


class TestDidYouMean:
    """An unknown name gets the closest known ones."""

    def test_template_variable(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A misspelt template variable names the leads column it most likely means."""
        path = write_config(replace=('"Hi {{ first_name }}"', '"Hi {{ frist_name }}"'))
        assert _validate(capsys, path) == (
            1,
            "c.yaml:7:15: campaigns.acme-q4.sequence.0.body: step 1 uses {{ frist_name }} but "
            "leads.csv has no frist_name column; did you mean first_name? "
            "(columns: email, first_name, company)\ninvalid: 1 error\n",
        )

    @pytest.mark.parametrize(
        ("written", "meant"),
        [
            ("Europe/Pari", "Europe/Paris"),
            ("europe/paris", "Europe/Paris"),
            ("Paris", "Europe/Paris"),
            ("America/New York", "America/New_York"),
        ],
    )
    def test_time_zone(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str], written: str, meant: str
    ) -> None:
        """An unknown time zone names the closest IANA zone."""
        path = write_config(
            BASE.replace(
                "    leads: leads.csv\n", f"    leads: leads.csv\n    timezone: {written}\n"
            )
        )
        code, said = _validate(capsys, path)
        assert code == 1
        assert said.splitlines()[0] == (
            "c.yaml:5:15: campaigns.acme-q4.timezone: must be an IANA time zone such as "
            f'Europe/Paris or UTC (got "{written}"); did you mean {meant}?'
        )

    def test_no_suggestion_when_nothing_is_close(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A name like no known one gets no guess."""
        path = write_config(
            BASE.replace(
                "    leads: leads.csv\n", "    leads: leads.csv\n    timezone: Mars/Olympus\n"
            )
        )
        assert _validate(capsys, path)[1].splitlines()[0] == (
            "c.yaml:5:15: campaigns.acme-q4.timezone: must be an IANA time zone such as "
            'Europe/Paris or UTC (got "Mars/Olympus")'
        )

    @pytest.mark.parametrize(
        ("campaign", "credential", "message"),
        [
            (
                "acme-q5",
                "primary",
                "error: no campaign acme-q5 in the config; did you mean acme-q4? "
                "(campaigns: acme-q4)",
            ),
            (
                "acme-q4",
                "primry",
                "error: no credential acme-q4/primry in the config; did you mean primary? "
                "(credentials of acme-q4: primary)",
            ),
        ],
    )
    def test_reenable_ids(
        self,
        write_config: Writer,
        capsys: pytest.CaptureFixture[str],
        campaign: str,
        credential: str,
        message: str,
    ) -> None:
        """``reenable`` with a misspelt campaign or credential names the id it most likely means."""
        path = write_config()
        code, _, err = run_cli(capsys, "reenable", campaign, credential, "--config", str(path))
        assert (code, err) == (1, message + "\n")
        assert path.read_text() == BASE


class TestPeriodSyntax:
    """A period that does not parse shows the syntax periods are written in."""

    @pytest.mark.parametrize(
        ("written", "reason"),
        [
            ("3 dyas", 'unknown unit "dyas", did you mean "days"? (got "3 dyas")'),
            ("3 fortnights", 'unknown unit "fortnights" (got "3 fortnights")'),
            ("three days", 'the count "three" must be a whole number ≥ 0 (got "three days")'),
            ("3", 'a number needs a unit, e.g. "3 minutes" (got 3)'),
            ("1 hour 30", '"30" is not a time of the form hh:mm:ss (got "1 hour 30")'),
            ("[3, days]", "must be a period written as text (got a list)"),
        ],
    )
    def test_delay(
        self, write_config: Writer, capsys: pytest.CaptureFixture[str], written: str, reason: str
    ) -> None:
        """Each kind of mistake says what is wrong, then the accepted syntax."""
        path = write_config(replace=("delay: 3 days", f"delay: {written}"))
        code, said = _validate(capsys, path)
        assert code == 1
        assert said.splitlines()[0] == (
            f"c.yaml:8:16: campaigns.acme-q4.sequence.1.delay: {reason}; {PERIOD_SYNTAX}"
        )


RESERVED = ["example.test", "printer.local", "box.localhost", "x.invalid", "hidden.onion"]


@pytest.mark.parametrize("domain", RESERVED)
def test_reserved_domains_are_refused_alike_for_leads_and_from_email(
    write_config: Writer, capsys: pytest.CaptureFixture[str], domain: str
) -> None:
    """A reserved domain is refused in a lead and in from_email, for the same stated reason."""
    path = write_config()
    Path("leads.csv").write_text(LEADS + f"grace@{domain},Grace,Navy\n")
    code, said = _validate(capsys, path)
    assert code == 0
    lead = re.search(rf"leads\.csv:3: has no valid email \('grace@{domain}': (.*)\); skipped", said)
    assert lead, said
    write_config(replace=("from_email: ada@example.com", f"from_email: ada@{domain}"))
    code, said = _validate(capsys, path)
    assert code == 1
    sender = re.search(rf'from_email: must be an email address \(got "ada@{domain}"\): (.*)', said)
    assert sender, said
    assert lead.group(1) == sender.group(1)
    assert lead.group(1) == (
        "the part after the @-sign is a special-use or reserved name that cannot be used with email"
    )
