"""The dashboard in a real browser: sign in, the overview, a campaign's page, sign out.

The daemon runs in this process with its HTTP server on a free loopback port. It has
sent step 1 of two campaigns to a real SMTP server: one whose mailbox reads replies from
a real IMAP server (dovecot), and one whose every recipient is refused (550 at RCPT),
so its mailbox passes its bounce threshold and is disabled. A third campaign belongs to
another account. Headless Chromium (Debian's, with chromedriver) signs in with an API key
and reads the pages as a person would; its console must show no error and no
Content-Security-Policy violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from mailopsd import cli
from mailopsd.daemon import Daemon
from mailopsd.http.apikeys import hash_api_key
from mailopsd.status.report import build_status
from tests import inbox_mail
from tests.daemons import in_process
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    imap_fields,
    parsed,
    write_config,
    write_leads,
)
from tests.e2e.test_browser import WAIT_S, _chromium, _processes_of
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SIGNING_KEY = "dashboard-signing-key-0123456789abcdefghij"
KEY = "mk_dashboard-key-a-0123456789abcdefghijklmnopq"
OTHER_KEY = "mk_dashboard-key-b-0123456789abcdefghijklmnopq"
SECRETS = (SIGNING_KEY, KEY, OTHER_KEY, "pw-ada", "pw-box2", "pw-box3")
DAYS = 30


def _config(tmp_path: Path, smtp: SmtpServer, imap: Dovecot, user: str) -> Path:
    write_leads(tmp_path / "acme.csv", [f"lead{i}@example.net,Lead{i}" for i in range(6)])
    write_leads(tmp_path / "risky.csv", [f"gone{i}@example.org,Gone{i}" for i in range(6)])
    write_leads(tmp_path / "other.csv", ["someone@example.com,Some"])
    ada = credential(smtp, "ada", **imap_fields(imap, user))
    return write_config(
        tmp_path,
        {
            "acme": campaign_tree({"ada": ada}, name="ACME outreach", leads="acme.csv"),
            "risky": campaign_tree(
                {"bob": credential(smtp, "box2")},
                name="Risky list",
                leads="risky.csv",
                bounce_min_sends=3,
            ),
            "other": campaign_tree(
                {"eve": credential(smtp, "box3")},
                name="Other account",
                leads="other.csv",
                account="acct-b",
            ),
        },
        http={
            "listen": "127.0.0.1:0",
            "public_base_url": "https://mail.example.com",
            "signing_key": SIGNING_KEY,
            "dashboard": True,
        },
        api_keys={
            "ops": {"account": "default", "sha256": hash_api_key(KEY)},
            "partner": {"account": "acct-b", "sha256": hash_api_key(OTHER_KEY)},
        },
    )


@contextmanager
def _daemon(tmp_path: Path, smtp: SmtpServer, imap: Dovecot) -> Iterator[Daemon]:
    """A daemon that sent, read two replies, and disabled the risky campaign's mailbox."""
    user, _ = imap.add_user()
    for number in range(6):
        smtp.handler.rules[f"gone{number}@example.org"] = ("RCPT", "550 5.1.1 No such user")
    path = _config(tmp_path, smtp, imap, user)
    with in_process(path, tmp_path / "state", [START]) as daemon:
        daemon.start_http()
        daemon.dispatch()
        for number in (0, 1):
            lead = f"lead{number}@example.net"
            sent = next(m for m in smtp.handler.messages if m.rcpt_tos == [lead])
            message_id = str(parsed(sent)["Message-ID"])
            imap.append(user, inbox_mail.reply(lead, "ada@sender.example.com", message_id))
        daemon.poll_inbox()
        yield daemon


def _url(daemon: Daemon, path: str) -> str:
    assert daemon.http_listen is not None
    return f"http://{daemon.http_listen}{path}"


def _sign_in(browser: webdriver.Chrome, daemon: Daemon, key: str) -> None:
    browser.get(_url(daemon, "/dashboard"))
    assert browser.current_url.endswith("/dashboard/sign-in")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()
    _arrive(browser, "/dashboard")


def _arrive(browser: webdriver.Chrome, path: str) -> None:
    """Wait until the browser shows ``path`` (after a click)."""
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_matches(f"{path}$"))


def _console(browser: webdriver.Chrome, *expected: str) -> list[str]:
    """Errors and warnings the page's console showed (a CSP violation is one), but for
    the ``expected`` ones (a 404 the test asked for)."""
    entries = browser.get_log("browser")
    return [
        str(entry)
        for entry in entries
        if entry.get("level") in ("SEVERE", "WARNING")
        and not any(text in str(entry.get("message")) for text in expected)
    ]


def test_a_person_reads_the_dashboard(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    """Sign in, read the overview and a campaign's charts, see the disabled mailbox's
    reason and the line that re-enables it, fail to reach another account's campaign,
    sign out."""
    with (
        _daemon(tmp_path, smtp_server, dovecot) as daemon,
        _chromium(tmp_path / "chromium-profile", logging=True) as browser,
    ):
        _sign_in(browser, daemon, KEY)
        rows = browser.find_elements(By.CSS_SELECTOR, "table.overview tr[data-campaign]")
        assert [row.get_attribute("data-campaign") for row in rows] == ["acme", "risky"]
        acme, risky = (row.text for row in rows)
        assert "ACME outreach" in acme
        assert "replied 2" in acme
        assert "mailbox bob disabled: bounce rate" in risky
        assert "Other account" not in browser.find_element(By.TAG_NAME, "body").text

        browser.find_element(By.LINK_TEXT, "Risky list").click()
        _arrive(browser, "/dashboard/campaigns/risky")
        section = browser.find_element(By.CSS_SELECTOR, "section.mailbox[data-mailbox=bob]")
        charts = section.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 2
        assert len(charts[0].find_elements(By.CSS_SELECTOR, "g.day")) == DAYS
        assert len(charts[1].find_elements(By.CSS_SELECTOR, "circle.point")) == 1
        assert len(charts[1].find_elements(By.CSS_SELECTOR, "line.threshold")) == 1
        text = section.text
        assert "disabled at 2026-11-23T10:00:00Z: bounce rate" in text
        hint = section.find_element(By.CSS_SELECTOR, "pre.reenable").text
        assert "under campaigns.risky.smtp_credentials.bob, add the line" in hint
        assert "reenabled_at: 2026-11-23T10:00:00Z" in hint
        assert "mailopsd reenable risky bob --config c.yaml" in hint

        browser.get(_url(daemon, "/dashboard/campaigns/acme"))
        ada = browser.find_element(By.CSS_SELECTOR, "section.mailbox[data-mailbox=ada]")
        bars = ada.find_elements(By.CSS_SELECTOR, "svg.chart g.day")
        assert len(bars) == DAYS
        assert bars[-1].get_attribute("data-day") == "2026-11-23"
        steps = browser.find_element(By.CSS_SELECTOR, "table.steps").text
        assert "6 2 (33.3%)" in steps  # step 1: 6 sends, 2 replies

        browser.get(_url(daemon, "/dashboard/campaigns/other"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"

        browser.get(_url(daemon, "/dashboard"))
        browser.find_element(By.CSS_SELECTOR, "header form button[type=submit]").click()
        _arrive(browser, "/dashboard/sign-in")
        browser.get(_url(daemon, "/dashboard/campaigns/acme"))
        assert browser.current_url.endswith("/dashboard/sign-in")
        assert _console(browser, "/dashboard/campaigns/other - Failed to load resource") == []
        shown = browser.page_source
    for secret in SECRETS:
        assert secret not in shown
    assert _processes_of(tmp_path / "chromium-profile") == []


_OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9")


def _percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "\N{EN DASH}"


def test_the_report_file_opens_offline_with_the_status_figures(
    tmp_path: Path, smtp_server: SmtpServer, dovecot: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    """mailopsd report writes one file that Chromium opens with no network, showing the
    figures status --json shows."""
    with _daemon(tmp_path, smtp_server, dovecot) as daemon:
        state = daemon.settings.state_dir
    report = tmp_path / "report.html"
    code = cli.main(
        [
            *("report", "--state-dir", str(state), "-o", str(report)),
            *("--now", "2026-11-23T10:00:00Z", "--config", str(tmp_path / "c.yaml")),
        ]
    )
    assert code == 0
    assert (
        capsys.readouterr().out == f"wrote {report}: 3 campaigns, charts of 30 days to 2026-11-23\n"
    )
    assert cli.main(["report", "--state-dir", str(state), "--campaign", "nope"]) == 1
    assert capsys.readouterr().err == (
        f"error: no campaign nope in the daemon state in {state}; mailopsd status "
        f"--state-dir {state} lists them\n"
    )
    assert (
        cli.main(["report", "--state-dir", str(state), "-o", str(tmp_path / "no" / "r.html")]) == 1
    )
    assert "Traceback" not in capsys.readouterr().err
    text = report.read_text()
    assert re.findall(r'(?:src|href)="(?!#)[^"]*"', text) == []  # nothing to fetch
    status = build_status(state, START)
    with _chromium(tmp_path / "chromium-profile", logging=True, flags=_OFFLINE) as browser:
        browser.get(report.as_uri())
        for campaign in status["campaigns"]:  # type: ignore[union-attr]
            row = browser.find_element(
                By.CSS_SELECTOR, f"table.overview tr[data-campaign={campaign['id']}]"
            ).text
            assert f" {campaign['sends']['today']} " in f" {row} "
            section = browser.find_element(By.ID, f"campaign-{campaign['id']}")
            for credential in campaign["smtp_credentials"]:
                mailbox = section.find_element(
                    By.CSS_SELECTOR, f"section.mailbox[data-mailbox={credential['id']}]"
                ).text
                figures = (
                    f"bounce rate {_percent(credential['bounce_rate'])} "
                    f"({credential['bounces_in_window']}/{credential['sends_in_window']})"
                )
                assert figures in mailbox
                assert (
                    f"sent today {credential['sent_today']} / {credential['daily_cap']}" in mailbox
                )
            steps = section.find_element(By.CSS_SELECTOR, "table.steps").text.splitlines()
            for number, step in enumerate(campaign["steps"], start=1):
                assert steps[number].split()[:4] == [
                    str(step["step"]),
                    step["variant"] or "\N{EN DASH}",
                    str(step["sends"]),
                    str(step["replies"]),
                ]
        disabled = browser.find_element(By.CSS_SELECTOR, "section.mailbox[data-mailbox=bob]")
        assert "reenabled_at: 2026-11-23T10:00:00Z" in disabled.text
        assert _console(browser) == []
