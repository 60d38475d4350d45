"""``GET /metrics`` over real HTTP to a running daemon, parsed as Prometheus text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mailopsd.state.statefile import CredentialState, StateFile, save_state
from tests.integration.test_http import (
    KEY,
    LEAD,
    OFFER,
    ONE_CLICK,
    OTHER,
    START,
    Running,
    _daemon,
    _links,
    _write_config,
)
from tests.servers.smtp import SmtpServer
from tests.waiting import poll_until

BOUNCED = "lead0002@example.net"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def scraped(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Running]:
    """A daemon that sent step 1 to three leads, one refused at RCPT with a 5xx."""
    smtp_server.handler.rules[BOUNCED] = ("RCPT", "550 5.1.1 no such user")
    with _daemon(tmp_path, smtp_server) as started:
        assert started.daemon.dispatch() == 3
        yield started


def _scrape(run: Running) -> Samples:
    reply = run.request("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=")
    shown = reply.body.decode("utf-8") + repr(reply.headers)
    for secret in (KEY, "pw-ada", '"ada"', "@example.net", "@sender.example.com", OFFER):
        assert secret not in shown  # no secret, login, address or link in a scrape
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _credential(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"campaign": "camp", "credential": "a", **extra}.items()))


class TestMetrics:
    def test_totals_after_sends_bounce_unsubscribe_open_and_click(
        self, scraped: Running, smtp_server: SmtpServer
    ) -> None:
        """Sends, bounces, replies, suppressions, opens and clicks add up the ledger exactly."""
        unsubscribe = _links(smtp_server, LEAD)["u"]
        assert scraped.request("POST", unsubscribe, b"List-Unsubscribe=One-Click", ONE_CLICK).status
        links = _links(smtp_server, OTHER)
        for _ in range(2):
            assert scraped.request("GET", links["o"]).status == 200
        assert scraped.request("GET", links["c"]).status == 302
        campaign = (("campaign", "camp"),)
        samples = poll_until(  # opens and clicks are written a moment after their response
            lambda: (s := _scrape(scraped)).get(("mailopsd_clicks_total", campaign)) and s,
            timeout_s=10,
            what="the click counted (it comes last)",
        )
        assert samples[("mailopsd_sends_total", _credential(outcome="sent"))] == 2
        assert samples[("mailopsd_sends_total", _credential(outcome="bounced"))] == 1
        assert samples[("mailopsd_bounces_total", _credential(kind="hard"))] == 1
        replies = (("campaign", "camp"), ("kind", "unsubscribe"))
        assert samples[("mailopsd_replies_total", replies)] == 1
        assert samples[("mailopsd_suppressed_addresses", (("account", "default"),))] == 2
        assert samples[("mailopsd_opens_total", campaign)] == 2
        assert samples[("mailopsd_clicks_total", campaign)] == 1
        assert samples[("mailopsd_credential_disabled", _credential())] == 0
        assert samples[("mailopsd_credential_daily_cap", _credential())] == 100  # no ramp
        assert samples[("mailopsd_credential_daily_headroom", _credential())] == 97
        assert samples[("mailopsd_ledger_readable", ())] == 1
        step1 = (("campaign", "camp"), ("step", "1"), ("variant", ""))  # a step without variants
        assert samples[("mailopsd_step_sends_total", step1)] == 3  # the bounce was sent too
        assert samples[("mailopsd_step_bounces_total", step1)] == 1
        assert samples[("mailopsd_step_unsubscribes_total", step1)] == 1
        assert samples[("mailopsd_step_replies_total", step1)] == 0
        names = {name for name, _ in samples}
        assert not any(name.startswith("mailopsd_imap") for name in names)  # no mailbox set

    def test_bounced_addresses_by_reason(self, tmp_path: Path, smtp_server: SmtpServer) -> None:
        """Each mailbox's bounced addresses in the window, by class and reason, as status
        counts them: one series per reason found, with the reason's fixed word."""
        smtp_server.handler.rules[BOUNCED] = ("RCPT", "550 5.1.1 no such user")
        smtp_server.handler.rules[OTHER] = ("DATA", "550 5.7.1 Message rejected as spam")
        with _daemon(tmp_path, smtp_server) as started:
            assert started.daemon.dispatch() == 3
            samples = _scrape(started)
        found = {
            labels: value
            for (name, labels), value in samples.items()
            if name == "mailopsd_credential_bounced_addresses"
        }
        assert found == {
            _credential(kind="hard", reason="userunknown"): 1,
            _credential(kind="block", reason="spamdetected"): 1,
        }
        assert samples[("mailopsd_bounces_total", _credential(kind="block"))] == 1

    def test_reloads_and_the_applied_revision(self, scraped: Running) -> None:
        """Reload results are counted, and the applied revision is an info label."""
        before = _scrape(scraped)
        scraped.daemon._reload_now(notify=False)
        scraped.path.write_text(scraped.path.read_text() + "\nnot: [valid\n")
        scraped.daemon._reload_now(notify=False)
        after = _scrape(scraped)
        for result, added in (("ok", 1), ("error", 1)):
            key = ("mailopsd_reloads_total", (("result", result),))
            assert after[key] == before[key] + added
        revision = scraped.daemon.state.daemon.applied_revision
        assert revision is not None
        assert after[("mailopsd_config_info", (("revision", revision),))] == 1

    def test_read_only_and_open(self, scraped: Running) -> None:
        """GET and HEAD need no API key; other methods get 405."""
        head = scraped.request("HEAD", "/metrics")
        assert (head.status, head.body) == (200, b"")
        for method in ("POST", "PUT", "DELETE"):
            reply = scraped.request(method, "/metrics")
            assert (reply.status, reply.headers["Allow"]) == (405, "GET, HEAD")


def test_disabled_credential_and_mailbox_error(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """A disabled credential and an unreadable mailbox show as 1, from the state file."""
    path = _write_config(tmp_path, smtp_server)
    config = yaml.safe_load(path.read_text())
    mailbox = {"imap_host": "127.0.0.1", "imap_port": 1, "imap_username": "ada"}
    mailbox["imap_password"] = "pw-imap"  # noqa: S105 - a test credential for a closed port
    config["campaigns"]["camp"]["smtp_credentials"]["a"].update(mailbox)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    since = START - timedelta(hours=1)
    entry = CredentialState(disabled_at=since, inbox_error="login refused", inbox_error_since=since)
    (tmp_path / "state").mkdir(mode=0o700)
    save_state(tmp_path / "state", StateFile(credentials={"camp/a": entry}))
    with _daemon(tmp_path, smtp_server, rewrite=False) as started:
        samples = _scrape(started)
    assert samples[("mailopsd_credential_disabled", _credential())] == 1
    assert samples[("mailopsd_imap_error", _credential())] == 1
    assert samples[("mailopsd_credential_daily_headroom", _credential())] == 100
    assert not any(name == "mailopsd_sends_total" for name, _ in samples)


def test_mailbox_polls_are_counted_and_timed(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Each poll of a mailbox counts by result, with its time; a refused one is an error."""
    path = _write_config(tmp_path, smtp_server)
    config = yaml.safe_load(path.read_text())
    mailbox = {"imap_host": "127.0.0.1", "imap_port": 1, "imap_username": "ada"}
    mailbox["imap_password"] = "pw-imap"  # noqa: S105 - a test credential for a closed port
    mailbox["imap_tls"] = "none"
    config["campaigns"]["camp"]["smtp_credentials"]["a"].update(mailbox)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with _daemon(tmp_path, smtp_server, rewrite=False) as started:
        assert started.daemon.dispatch() == 3
        before = _scrape(started)
        started.daemon.poll_inbox()
        after = _scrape(started)
    assert ("mailopsd_imap_polls_total", _credential(result="error")) not in before
    assert after[("mailopsd_imap_polls_total", _credential(result="error"))] == 1
    assert after[("mailopsd_imap_polls_total", _credential(result="ok"))] == 0
    took = after[("mailopsd_imap_last_poll_duration_seconds", _credential())]
    assert 0 < took == after[("mailopsd_imap_poll_seconds_total", _credential())]
    assert after[("mailopsd_imap_error", _credential())] == 1


def test_daily_cap_follows_the_ramp(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """A mailbox on a ramp shows its effective daily cap, and headroom under that cap."""
    path = _write_config(tmp_path, smtp_server, leads=5)
    config = yaml.safe_load(path.read_text())
    config["campaigns"]["camp"]["smtp_credentials"]["a"]["ramp"] = {
        "start": 2,
        "step": 2,
        "every": "1 day",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with _daemon(tmp_path, smtp_server, rewrite=False) as started:
        assert started.daemon.dispatch() == 2  # the ramp's first day: 2, not daily_limit 100
        today = _scrape(started)
        started.clock[0] = START + timedelta(days=1)
        tomorrow = _scrape(started)
    assert today[("mailopsd_credential_daily_cap", _credential())] == 2
    assert today[("mailopsd_credential_daily_headroom", _credential())] == 0
    assert tomorrow[("mailopsd_credential_daily_cap", _credential())] == 4
    assert tomorrow[("mailopsd_credential_daily_headroom", _credential())] == 4
