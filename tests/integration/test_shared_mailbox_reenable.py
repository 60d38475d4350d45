"""Re-enabling a mailbox shared by campaigns, as an operator does it after an auto-disable.

The mailbox is declared in ``conf/mailboxes.yaml`` and named by campaigns north and south
in ``conf/campaigns.yaml``; its ``reenabled_at`` goes into the mailbox's entry, which
re-enables it in both.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd.state.statefile import CredentialState, StateFile, load_state, save_state
from tests.commands import run_cli
from tests.dispatch_setup import campaign_tree, credential, run_once, write_leads
from tests.printed import run_as_printed, suggested_commands
from tests.servers.smtp import SmtpServer

PLAIN = "--allow-plaintext-secrets"
DISABLED_AT = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)


def _write_directory(conf: Path, smtp: SmtpServer, *, south_leads: int = 4) -> None:
    """Mailbox ada in mailboxes.yaml; north (its first 4 leads bounce, threshold 50%) and
    south naming it in campaigns.yaml."""
    conf.mkdir()
    (conf / "mailboxes.yaml").write_text(
        "# the team's mailboxes\n"
        + yaml.safe_dump({"mailboxes": {"ada": credential(smtp, "ada")}}, sort_keys=False)
    )
    campaigns = {}
    for name, count in (("north", 4), ("south", south_leads)):
        write_leads(conf / f"{name}.csv", [f"{name}{i}@example.net,Lead{i}" for i in range(count)])
        campaigns[name] = campaign_tree(
            {"shared": {"mailbox": "ada"}},
            leads=f"{name}.csv",
            name=name,
            steps=1,
            bounce_threshold="50%",
            bounce_min_sends=4,
        )
    (conf / "campaigns.yaml").write_text(yaml.safe_dump({"campaigns": campaigns}, sort_keys=False))


def _mailbox(conf: Path) -> dict[str, Any]:
    return yaml.safe_load((conf / "mailboxes.yaml").read_text())["mailboxes"]["ada"]  # type: ignore[no-any-return]


def test_the_command_of_the_disable_log_reenables_the_mailbox_in_every_campaign(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """north's bounces disable ada; the reenable command its log line names, run as
    printed, writes reenabled_at into mailboxes.ada (one line), says which campaigns it
    re-enables, and the next run sends from ada again for both."""
    for i in range(4):
        smtp_server.handler.rules[f"north{i}@example.net"] = ("RCPT", "550 5.1.1 No such user")
    conf = tmp_path / "conf"
    _write_directory(conf, smtp_server, south_leads=0)
    state = tmp_path / "state"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    capsys.readouterr()
    assert run_once(conf, state, start.isoformat()) == 0
    (line,) = [e for e in capsys.readouterr().err.splitlines() if "credential disabled" in e]
    (command,) = suggested_commands(line.replace("reenabled_at in its YAML (", ""))
    assert shlex.split(command)[:4] == ["mailopsd", "reenable", "north", "shared"]
    mailboxes, campaigns = (
        (conf / name).read_text() for name in ("mailboxes.yaml", "campaigns.yaml")
    )
    home = tmp_path / "home"
    home.mkdir()
    result = run_as_printed(command, cwd=home, home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{conf / 'mailboxes.yaml'}: set reenabled_at for shared mailbox ada; commit this "
        "change; it re-enables the mailbox in every campaign that names it: north/shared, "
        "south/shared\n"
    )
    added = set((conf / "mailboxes.yaml").read_text().splitlines()) - set(mailboxes.splitlines())
    assert [text.split(":")[0] for text in added] == ["    reenabled_at"]
    assert (conf / "campaigns.yaml").read_text() == campaigns

    write_leads(conf / "south.csv", [f"south{i}@example.net,Lead{i}" for i in range(2)])
    smtp_server.handler.messages.clear()
    assert run_once(conf, state, (start + timedelta(hours=2)).isoformat()) == 0
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.messages) == [
        "south0@example.net",
        "south1@example.net",
    ]
    entries = load_state(state)
    assert entries.credential("north/shared").disabled_at is None
    assert entries.credential("south/shared").disabled_at is None


@pytest.fixture
def disabled(
    tmp_path: Path,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """conf/ and st/ in the working directory; only north's use of ada is disabled in st/
    (south named ada after the disable). Returns the config directory."""
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "conf"
    _write_directory(conf, smtp_server)
    Path("st").mkdir(mode=0o700)
    entry = CredentialState(disabled_at=DISABLED_AT, disabled_reason="bounce rate 100.0% (4/4)")
    save_state(Path("st"), StateFile(credentials={"north/shared": entry}))
    return conf


class TestReenableCommand:
    def test_by_mailbox_id_with_the_state(
        self, disabled: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """reenable --mailbox ada --state-dir st: refuses a time before the disable of any
        use, then writes one that ends it, naming both campaigns."""
        given = ["--config", "conf", "--state-dir", "st"]
        early = run_cli(
            capsys, "reenable", "--mailbox", "ada", *given, "--now", "2026-11-22T08:00:00Z"
        )
        assert early[0] == 1
        assert "before shared mailbox ada's disabled_at 2026-11-22T08:30:00Z" in early[2]
        assert "reenabled_at" not in _mailbox(disabled)
        code, out, err = run_cli(
            capsys, "reenable", "--mailbox", "ada", *given, "--now", "2026-11-22T09:00:00Z"
        )
        assert (code, err) == (0, "")
        assert out == (
            "conf/mailboxes.yaml: set reenabled_at for shared mailbox ada (disabled since "
            "2026-11-22T08:30:00Z); commit this change; it re-enables the mailbox in every "
            "campaign that names it: north/shared, south/shared\n"
        )
        assert _mailbox(disabled)["reenabled_at"] == datetime(2026, 11, 22, 9, tzinfo=UTC)

    def test_a_use_not_disabled_is_disabled_through_its_mailbox(
        self, disabled: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """reenable south shared --state-dir st: south's own entry is not disabled, but its
        mailbox is (in north): it writes the mailbox's reenabled_at."""
        code, out, _ = run_cli(
            capsys, "reenable", "south", "shared", "--config", "conf", "--state-dir", "st"
        )
        assert code == 0
        assert "set reenabled_at for shared mailbox ada (disabled since" in out
        assert "reenabled_at" in _mailbox(disabled)

    def test_unknown_mailbox_and_wrong_arguments(
        self, disabled: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown mailbox id is an error with a suggestion; naming both a credential and
        a mailbox, or neither, is a usage error; nothing is written."""
        before = (disabled / "mailboxes.yaml").read_text()
        code, _, err = run_cli(capsys, "reenable", "--mailbox", "adaa", "--config", "conf")
        assert (code, err) == (
            1,
            "error: no shared mailbox adaa in the config (top-level mailboxes:); did you mean "
            "ada? (mailboxes: ada)\n",
        )
        both = run_cli(
            capsys, "reenable", "north", "shared", "--mailbox", "ada", "--config", "conf"
        )
        assert both[0] == 2
        assert both[2].endswith(
            "mailopsd reenable: error: give CAMPAIGN CREDENTIAL or --mailbox ID, not both\n"
        )
        assert run_cli(capsys, "reenable", "--config", "conf")[0] == 2
        assert (disabled / "mailboxes.yaml").read_text() == before


def test_a_reenabled_at_with_no_effect_is_said_once_at_the_mailbox(
    disabled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """mailboxes.ada has a reenabled_at before the disable of both uses: plan warns once, at
    the field in mailboxes.yaml, with a reenable --mailbox command that, run as printed,
    ends it in both."""
    entry = load_state(Path("st")).credential("north/shared")
    save_state(Path("st"), StateFile(credentials={"north/shared": entry, "south/shared": entry}))
    text = (disabled / "mailboxes.yaml").read_text()
    (disabled / "mailboxes.yaml").write_text(text + "    reenabled_at: 2026-11-21T12:00:00Z\n")
    code, _, err = run_cli(capsys, "plan", "--config", "conf", "--state-dir", "st", PLAIN)
    assert code == 2  # the campaigns are new to this state
    (warning,) = err.splitlines()
    line = len(text.splitlines()) + 1
    assert warning == (
        f"warning: conf/mailboxes.yaml:{line}:19: mailboxes.ada.reenabled_at: "
        "2026-11-21T12:00:00Z is before the mailbox's disabled_at 2026-11-22T08:30:00Z (it "
        "was auto-disabled after that time), so it has no effect and the mailbox stays "
        "disabled; to re-enable it, run: mailopsd reenable --mailbox ada --config conf "
        "--state-dir st"
    )
    (command,) = suggested_commands(warning.split("run: ")[1])
    result = run_as_printed(command, cwd=Path.cwd(), home=disabled.parent)
    assert result.returncode == 0, result.stderr
    code, out, err = run_cli(capsys, "plan", "--config", "conf", "--state-dir", "st", PLAIN)
    assert err == ""
    assert "  ^ re-enable north/shared" in out
    assert "  ^ re-enable south/shared" in out
