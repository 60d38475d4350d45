"""What an operator sees of a mailbox shared by campaigns: ``status``, ``/metrics``, the API.

Sends go to a real SMTP server on loopback (``run --once``, or a daemon in this process
serving HTTP); status is read as a person runs it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd.http.apikeys import hash_api_key
from mailopsd.state.statefile import CredentialState, StateFile, load_state, save_state
from tests.commands import run_cli, status_json
from tests.daemons import in_process
from tests.dispatch_setup import campaign_tree, credential, run_once, write_leads
from tests.integration.test_http import KEY, Running
from tests.integration.test_http_metrics import _scrape
from tests.integration.test_shared_mailboxes import (
    DAY,
    DAY1,
    _at,
    _by_sender_and_kind,
    _two_campaigns,
)
from tests.printed import run_as_printed, suggested_commands
from tests.servers.smtp import SmtpServer

API_KEY = "mk_shared-mailbox-key-0123456789abcdefghijklmn"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each credential row of a status report, by ``campaign/credential``."""
    return {
        f"{campaign['id']}/{row['id']}": row
        for campaign in report["campaigns"]
        for row in campaign["smtp_credentials"]
    }


def _only_north_has_leads(path: Path) -> dict[str, Any]:
    """Give south an empty leads file (its leads come later); return the config tree."""
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["campaigns"]["south"]["leads"] = "south-later.csv"
    write_leads(path.parent / "south-later.csv", [])
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


class TestStatus:
    def test_sent_today_and_cap_are_the_mailbox_across_campaigns(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """daily_limit 5 used up by both campaigns together: each use shows 5/5 and its own
        part, names the mailbox and the other use; new leads wait for the next day."""
        path = _two_campaigns(
            tmp_path,
            credential(smtp_server, "ada", daily_limit=5),
            leads=20,
            own=credential(smtp_server, "box2", daily_limit=2),
        )
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        report = status_json(capsys, state, _at(DAY1 + timedelta(hours=1)))
        rows = _rows(report)
        north, south = rows["north/shared"], rows["south/shared"]
        assert (north["mailbox"], north["shared_with"]) == ("ada", ["south/shared"])
        assert (south["mailbox"], south["shared_with"]) == ("ada", ["north/shared"])
        for row in (north, south):
            assert (row["sent_today"], row["daily_cap"], row["daily_limit"]) == (5, 5, 5)
        assert north["sent_today_here"] + south["sent_today_here"] == 5
        assert north["sent_today_here"] > 0
        assert south["sent_today_here"] > 0
        own = rows["south/own"]
        assert (own["mailbox"], own["shared_with"]) == (None, [])
        assert (own["sent_today"], own["sent_today_here"], own["daily_cap"]) == (2, 2, 2)
        north_next = report["campaigns"][0]["next"]["new_leads"]
        assert north_next["held_by"] == "daily_limits"  # the mailbox is at its cap

        code, out, _ = run_cli(
            capsys, "status", "--state-dir", str(state), "--now", _at(DAY1 + timedelta(hours=1))
        )
        assert code == 0
        here = north["sent_today_here"]
        assert "sent today 5/5, follow-ups 0;" in out
        assert (
            "    shared mailbox ada (also south/shared): sent today and the daily cap, ramp and "
            "min_interval are the mailbox's, across its campaigns; "
            f"{here} of today's 5 step-1 sends from this campaign"
        ) in out.splitlines()

    def test_a_ramp_counts_from_the_mailbox_first_send_in_any_campaign(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Only north sent on day 1: on day 2, south's use of the mailbox shows the ramp's
        day 2 and its cap, as the dispatcher counts them."""
        ramp = {"start": 2, "step": 2, "every": "1 day"}
        path = _two_campaigns(tmp_path, credential(smtp_server, "ada", daily_limit=10, ramp=ramp))
        _only_north_has_leads(path)
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        south = _rows(status_json(capsys, state, _at(DAY1 + DAY)))["south/shared"]
        assert south["ramp"]["counted_from"] == "first_send"
        assert south["ramp"]["day"] == 2
        assert south["ramp"]["day_one"] == "2026-11-23T00:00:00Z"
        assert (south["daily_cap"], south["sent_today"]) == (4, 0)

    def test_a_ramp_restarts_from_the_mailbox_reenable_for_every_use(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """ramp_restart_on_reenable: the re-enable applied is in south's entry only (north
        named ada after it); north's use shows the ramp counted from it too, and the
        dispatcher sends the restarted ramp's cap for both campaigns together."""
        ramp = {"start": 2, "step": 2, "every": "1 day"}
        ada = credential(
            smtp_server, "ada", daily_limit=10, ramp=ramp, ramp_restart_on_reenable=True
        )
        path = _two_campaigns(tmp_path, ada, leads=10)
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        reenabled = DAY1 + 2 * DAY
        entry = CredentialState(reenabled_at=reenabled, bounce_window_start=reenabled)
        save_state(
            state, load_state(state).model_copy(update={"credentials": {"south/shared": entry}})
        )
        later = DAY1 + 3 * DAY
        north = _rows(status_json(capsys, state, _at(later)))["north/shared"]
        assert (north["ramp"]["counted_from"], north["ramp"]["day"]) == ("reenabled_at", 2)
        assert north["daily_cap"] == 4
        smtp_server.handler.messages.clear()
        assert run_once(path, state, _at(later)) == 0
        counts = _by_sender_and_kind(smtp_server.handler.messages)
        assert counts["ada", "north", "step1"] + counts["ada", "south", "step1"] == 4

    def test_a_use_whose_mailbox_is_disabled_shows_disabled(
        self, tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Only north's entry says disabled (south named the mailbox after the disable): the
        dispatcher sends nothing from it in south, and status says south's use is disabled."""
        path = _two_campaigns(tmp_path, credential(smtp_server, "ada"))
        state = tmp_path / "state"
        assert run_once(path, state, _at(DAY1)) == 0
        disabled = CredentialState(
            disabled_at=DAY1 + timedelta(minutes=5), disabled_reason="bounce rate 40%"
        )
        entries = {"north/shared": disabled}
        save_state(state, load_state(state).model_copy(update={"credentials": entries}))
        south = _rows(status_json(capsys, state, _at(DAY1 + timedelta(hours=1))))["south/shared"]
        assert south["state"] == "disabled"
        assert south["disabled_at"] == "2026-11-23T10:05:00Z"
        assert south["disabled_reason"] == "bounce rate 40%"


def _write_directory(conf: Path, smtp: SmtpServer) -> None:
    """A config directory: mailbox ada (daily_limit 5) in mailboxes.yaml, named by north
    and south in campaigns.yaml; south also has its own box2; an http section, an API key."""
    conf.mkdir()
    (conf / "mailboxes.yaml").write_text(
        yaml.safe_dump({"mailboxes": {"ada": credential(smtp, "ada", daily_limit=5)}})
    )
    campaigns = {}
    for name in ("north", "south"):
        write_leads(conf / f"{name}.csv", [f"{name}{i}@example.net,Lead{i}" for i in range(10)])
        credentials: dict[str, Any] = {"shared": {"mailbox": "ada"}}
        if name == "south":
            credentials["own"] = credential(smtp, "box2", daily_limit=2)
        campaigns[name] = campaign_tree(credentials, leads=f"{name}.csv", name=name)
    tree = {
        "campaigns": campaigns,
        "http": {
            "listen": "127.0.0.1:0",
            "public_base_url": "https://mail.example.com",
            "signing_key": KEY,
        },
        "api_keys": {"ops": {"account": "default", "sha256": hash_api_key(API_KEY)}},
    }
    (conf / "campaigns.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))


@contextmanager
def _serving(
    tmp_path: Path, smtp: SmtpServer, entries: dict[str, CredentialState] | None = None
) -> Iterator[Running]:
    """A daemon serving HTTP on the config of ``_write_directory``, its state file holding
    ``entries`` when given."""
    conf = tmp_path / "conf"
    _write_directory(conf, smtp)
    state = tmp_path / "state"
    if entries is not None:
        state.mkdir(mode=0o700)
        save_state(state, StateFile(credentials=entries))
    clock = [DAY1]
    with in_process(conf, state, clock) as daemon:
        daemon.start_http()
        yield Running(daemon, clock, state, conf / "campaigns.yaml", [])


@pytest.fixture
def served(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Running]:
    """A daemon serving HTTP that sent step 1 from the shared mailbox for both campaigns."""
    with _serving(tmp_path, smtp_server) as running:
        assert running.daemon.dispatch() > 0
        yield running


def _sent_by(smtp_server: SmtpServer) -> Counter[str]:
    return Counter(str(message.login) for message in smtp_server.handler.messages)


class TestMetrics:
    def test_cap_and_headroom_are_the_mailbox(
        self, served: Running, smtp_server: SmtpServer
    ) -> None:
        """Each campaign's use of ada shows the mailbox's cap and what both campaigns left
        of it; south's own credential its own."""
        samples = _scrape(served)
        sent = _sent_by(smtp_server)
        assert sent["ada"] == 5  # both campaigns together, up to the mailbox's daily_limit
        for campaign in ("north", "south"):
            labels = (("campaign", campaign), ("credential", "shared"))
            assert samples[("mailopsd_credential_daily_cap", labels)] == 5
            assert samples[("mailopsd_credential_daily_headroom", labels)] == 0
        own = (("campaign", "south"), ("credential", "own"))
        assert samples[("mailopsd_credential_daily_cap", own)] == 2
        assert samples[("mailopsd_credential_daily_headroom", own)] == 2 - sent["box2"]

    def test_disabled_in_one_campaign_is_disabled_in_all(
        self, tmp_path: Path, smtp_server: SmtpServer
    ) -> None:
        """Only north's entry says disabled (south named ada after the disable): south's use
        of ada counts as disabled too, south's own credential does not."""
        disabled = CredentialState(disabled_at=DAY1, disabled_reason="bounce rate 40%")
        with _serving(tmp_path, smtp_server, {"north/shared": disabled}) as running:
            assert running.daemon.dispatch() == 2  # box2's, nothing from ada
            samples = _scrape(running)
        for campaign in ("north", "south"):
            labels = (("campaign", campaign), ("credential", "shared"))
            assert samples[("mailopsd_credential_disabled", labels)] == 1
        own = (("campaign", "south"), ("credential", "own"))
        assert samples[("mailopsd_credential_disabled", own)] == 0


class TestApi:
    def test_a_use_names_its_mailbox(self, served: Running) -> None:
        """GET of a credential that names ada says mailbox ada; one of its own says null."""
        reply = served.request("GET", "/campaigns/south/smtp_credentials", headers=AUTH)
        assert reply.status == 200
        rows = {row["id"]: row for row in json.loads(reply.body)["smtp_credentials"]}
        assert (rows["shared"]["mailbox"], rows["shared"]["daily_limit"]) == ("ada", 5)
        assert rows["own"]["mailbox"] is None
        for secret in ("pw-ada", "pw-box2", '"box2"'):
            assert secret.encode() not in reply.body

    def test_reenable_names_the_mailbox_and_a_command_that_works(
        self, served: Running, tmp_path: Path
    ) -> None:
        """POST .../reenable of a use of ada: 405 naming mailboxes.ada in mailboxes.yaml and
        the other campaign; the command it names, run where it says, writes the mailbox's
        reenabled_at and leaves the campaigns' file as it was."""
        reply = served.request(
            "POST", "/campaigns/north/smtp_credentials/shared/reenable", b"{}", AUTH
        )
        assert reply.status == 405
        message = json.loads(reply.body)["error"]["message"]
        assert (
            "edit mailboxes.yaml:2 (mailboxes.ada: the shared mailbox north/shared names, also "
            "used by south/shared) and commit it; mailopsd reenable north shared --config conf, "
            "run in the directory that holds conf/, writes reenabled_at for you"
        ) in message
        (command,) = suggested_commands(message)
        home = tmp_path / "home"
        home.mkdir()
        campaigns = (tmp_path / "conf" / "campaigns.yaml").read_text()
        result = run_as_printed(command, cwd=tmp_path, home=home)
        assert result.returncode == 0, result.stderr
        mailboxes = yaml.safe_load((tmp_path / "conf" / "mailboxes.yaml").read_text())
        assert "reenabled_at" in mailboxes["mailboxes"]["ada"]
        assert (tmp_path / "conf" / "campaigns.yaml").read_text() == campaigns
