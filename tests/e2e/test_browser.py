"""The unsubscribe page in a real browser: headless Chromium opens it and presses the button.

The daemon runs in this process with its HTTP server on a free loopback port and sends
step 1 to an in-process SMTP server. The page's address is the ``List-Unsubscribe``
link of the message received, its public base swapped for the server's real address.
Chromium and chromedriver are Debian's (``scripts/test`` installs them); selenium is
given both paths, so it fetches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from mailopsd.daemon import Daemon
from mailopsd.state.ledger import Ledger
from tests.daemons import in_process
from tests.dispatch_setup import credential, parsed, write_campaign
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KEY = "test-signing-key-0123456789abcdefghijklmnop"
BASE_URL = "https://mail.example.com"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LEAD = "lead0000@example.net"
WAIT_S = 30
_UNSUBSCRIBE = re.compile(r"<(" + re.escape(BASE_URL) + r"/u/[A-Za-z0-9_-]+)>")
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def _daemon(tmp_path: Path, smtp: SmtpServer) -> Iterator[Daemon]:
    """A daemon in this process, its HTTP server on, that sent step 1 to two leads."""
    path = write_campaign(
        tmp_path,
        {"a": credential(smtp, "ada")},
        leads=2,
        steps=2,
        http={"listen": "127.0.0.1:0", "public_base_url": BASE_URL, "signing_key": KEY},
        unsubscribe={"footer_html": '<p><a href="%%UNSUBSCRIBE%%">Stop</a></p>'},
    )
    with in_process(path, tmp_path / "state", [START]) as daemon:
        daemon.start_http()
        assert daemon.dispatch() == 2
        yield daemon


@contextmanager
def _chromium(
    profile: Path, *, logging: bool = False, flags: tuple[str, ...] = ()
) -> Iterator[webdriver.Chrome]:
    """Headless Chromium driven by chromedriver; both stopped on the way out.

    With ``logging``, the page's console is kept for ``get_log("browser")``; ``flags``
    are further command-line flags.
    """
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(bash scripts/test does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*_FLAGS, *flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if logging:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()
        driver.service.process.wait(WAIT_S)  # chromedriver, which stopped Chromium


def _state(daemon: Daemon, email: str) -> tuple[str, str | None]:
    ledger = Ledger.open(daemon.settings.state_dir)
    try:
        lead = ledger.leads.get("camp", email)
        assert lead is not None
        return lead.state, ledger.suppressions.reason("default", email)
    finally:
        ledger.close()


def test_the_button_unsubscribes(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Open the message's unsubscribe link, see the button, press it, see it done."""
    with _daemon(tmp_path, smtp_server) as daemon:
        message = next(m for m in smtp_server.handler.messages if m.rcpt_tos == [LEAD])
        found = _UNSUBSCRIBE.search(str(parsed(message)["List-Unsubscribe"]))
        assert found is not None, parsed(message)["List-Unsubscribe"]
        assert daemon.http_listen is not None
        url = found[1].replace(BASE_URL, f"http://{daemon.http_listen}", 1)
        with _chromium(tmp_path / "chromium-profile") as browser:
            browser.get(url)
            button = browser.find_element(By.CSS_SELECTOR, "form button[type=submit]")
            assert button.text == "Unsubscribe"
            assert LEAD in browser.find_element(By.TAG_NAME, "body").text
            browser.save_screenshot(str(tmp_path / "page.png"))
            assert _state(daemon, LEAD) == ("waiting", None)
            button.click()
            WebDriverWait(browser, WAIT_S).until(
                expected_conditions.text_to_be_present_in_element(
                    (By.TAG_NAME, "h1"), "Unsubscribed"
                )
            )
            body = browser.find_element(By.TAG_NAME, "body").text
            assert f"{LEAD} will receive no more of these messages." in body
            browser.save_screenshot(str(tmp_path / "done.png"))
        assert _state(daemon, LEAD) == ("stopped", "unsubscribed (one-click)")
        assert _state(daemon, "lead0001@example.net") == ("waiting", None)
    assert _processes_of(tmp_path / "chromium-profile") == []


def _processes_of(profile: Path) -> list[int]:
    """The pids of Chromium processes still running on ``profile`` (none should be)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if f"--user-data-dir={profile}".encode() in arguments:
            pids.append(int(cmdline.parent.name))
    return pids
