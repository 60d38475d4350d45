"""A canary password in every secret field, through a whole daemon's life: it never leaks.

The config's SMTP and IMAP passwords and its links' signing key hold the canary
(SOPS-encrypted with age), and the servers really log in with it. The daemon sends, its
HTTP server answers every link of a message, it is refused a login, reads its mailbox,
fails to read another, rejects a tampered push, reloads a good one; ``status``, ``plan``
and ``validate`` run beside it. Afterwards the canary (and its base64 forms, as an AUTH
exchange would carry it) is in no log record at any level, no command output, no
exception text, no ``repr`` of any mailopsd object still alive, and no file under the
state directory. State files are 0600 in a 0700 directory, and a key file that others
can read is warned about.
"""

from __future__ import annotations

import base64
import gc
import http.client
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailopsd import cli
from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.notify import Notifier
from tests import inbox_mail
from tests.configs import CANARY
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    imap_fields,
    parsed,
    write_config,
    write_leads,
)
from tests.logs import LogLines, captured
from tests.servers.imap import Dovecot
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA
from tests.sops_tools import AgeKey, make_key

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SIGNING_KEY = f"{CANARY}-signs-links-{CANARY}"


def _forms(secret: str) -> list[bytes]:
    """The canary as text, and as base64 would carry it in AUTH PLAIN or LOGIN."""
    raw = secret.encode()
    plain = [b"\0user\0" + raw, b"\0" + raw]
    return [raw, base64.b64encode(raw), *(base64.b64encode(p)[8:] for p in plain)]


@pytest.fixture
def every_log() -> Iterator[LogLines]:
    """Every record of every logger but the test SMTP server's (it sees the AUTH exchange)."""
    with captured(skip=frozenset({"mail.log"})) as handler:
        yield handler


def _box(server: SmtpServer, login: str, **extra: Any) -> dict[str, Any]:
    """A credential whose password is the canary."""
    return credential(server, login, smtp_password=CANARY, **extra)


def _encrypted_config(
    directory: Path, smtp: SmtpServer, imap: Dovecot, key: AgeKey
) -> tuple[Path, Path]:
    """A config whose every secret is the canary, encrypted; the file and its folder."""
    config = directory / "config"
    config.mkdir()
    write_leads(config / "leads.csv", [f"lead{i}@example.net,L{i}" for i in range(6)])
    boxes = {
        # logs in with the canary, and reads a mailbox with it
        "good": _box(smtp, "good", **imap_fields(imap, "canary", imap_password=CANARY)),
        # refused: the server knows another password for this login
        "refused": _box(smtp, "refused"),
        # reads a mailbox whose password is wrong
        "blind": _box(smtp, "good", **imap_fields(imap, "user1", imap_password=CANARY)),
    }
    canary = campaign_tree(
        boxes,
        name="Canary",
        tracking={"open": True, "click": True},
        unsubscribe={
            "footer_html": '<a href="https://example.com/about">About</a> '
            '<a href="%%UNSUBSCRIBE%%">Unsubscribe</a>'
        },
    )
    path = write_config(
        config,
        {"camp": canary},
        file_name="campaigns.yaml",
        # the links' signing key is the canary too
        http={
            "listen": "127.0.0.1:0",
            "public_base_url": "https://mail.example.com",
            "signing_key": SIGNING_KEY,
        },
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailopsd",
            "secrets",
            "encrypt",
            "--age",
            key.recipient,
            "--in-place",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert CANARY not in path.read_text()
    return path, config


def _visit_links(smtp: SmtpServer, daemon: Daemon) -> Iterator[str]:
    """Follow every link of the first message to the daemon's HTTP server, as a reader
    would (the unsubscribe page, its button, the pixel, a click); yield what came back."""
    listen = daemon.http_listen
    assert listen is not None
    message = parsed(smtp.handler.messages[0])
    html_part = message.get_body(("html",))
    assert html_part is not None
    links = re.findall(
        r'(?:href|src)="https://mail\.example\.com(/[^"]+)"', html_part.get_content()
    )
    assert {link[:3] for link in links} == {"/c/", "/u/", "/o/"}, links
    for path in links:
        for method, body in (("GET", None), ("POST", b"List-Unsubscribe=One-Click")):
            if method == "POST" and not path.startswith("/u/"):
                continue
            connection = http.client.HTTPConnection(*listen.rsplit(":", 1), timeout=10)
            try:
                connection.request(method, path, body=body)
                response = connection.getresponse()
                yield f"{response.status} {response.getheaders()} {response.read()!r}"
            finally:
                connection.close()


def _repr_of_live_objects() -> Iterator[str]:
    """``repr`` and ``str`` of every live object whose class is mailopsd's."""
    for thing in gc.get_objects():
        module = getattr(type(thing), "__module__", None)
        if not isinstance(module, str) or not module.startswith("mailopsd"):
            continue
        for show in (repr, str):
            try:
                yield show(thing)
            except Exception as err:
                yield f"{type(thing).__name__}: {show.__name__} failed: {err}"


def _around(text: str, part: str) -> str:
    at = text.index(part)
    return text[max(0, at - 120) : at + len(part) + 20]


def _files(directory: Path) -> Iterator[Path]:
    for root, _, names in os.walk(directory):
        for name in names:
            yield Path(root) / name


def test_canary_leaks_nowhere(
    tmp_path: Path,
    test_ca: TestCA,
    own_dovecot: Dovecot,
    every_log: LogLines,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sends, refusals, polls, a tampered push, status, plan: the canary is nowhere."""
    own_dovecot.stop()  # a user whose password is the canary
    own_dovecot.users["canary"] = CANARY
    with (own_dovecot.directory / "users").open("a") as users:
        users.write(f"canary:{{PLAIN}}{CANARY}::::::\n")
    own_dovecot.start()
    smtp = start_smtp(test_ca, {"good": CANARY, "refused": "another-password"})
    key = make_key(tmp_path)
    path, config = _encrypted_config(tmp_path, smtp, own_dovecot, key)
    state = tmp_path / "state"
    clock = [START]
    outputs: list[str] = []
    errors: list[str] = []
    settings = DaemonSettings(
        config_path=config,
        state_dir=state,
        load_options=LoadOptions(identities=key.identities),
        clock=lambda: clock[0],
        imap_timeout_s=5.0,
        imap_retry_s=0.2,
    )
    daemon = Daemon(settings, Notifier({}))
    try:
        daemon.start()
        daemon.start_http()
        daemon.dispatch()
        outputs.extend(_visit_links(smtp, daemon))
        sent = {m.rcpt_tos[0]: str(parsed(m)["Message-ID"]) for m in smtp.handler.messages}
        assert sent, "nothing was sent with the canary login"
        to, message_id = next(iter(sent.items()))
        own_dovecot.append("canary", inbox_mail.reply(to, "good@sender.example.com", message_id))
        daemon.poll_inbox()
        assert daemon.state.credential("camp/refused").auth_failures >= 1
        assert daemon.state.credential("camp/blind").inbox_error is not None

        tampered = path.read_text().replace("ENC[AES256_GCM,data:", "ENC[AES256_GCM,data:AA", 1)
        good = path.read_text()
        path.write_text(tampered)
        daemon._reload_now(notify=False)
        condition = daemon.state.condition("ConfigError")
        assert condition is not None
        assert condition.status == "True"
        errors.extend(condition.errors)
        path.write_text(good)
        daemon._reload_now(notify=False)
        clock[0] += timedelta(days=1, minutes=1)
        daemon.dispatch()
        outputs.append(daemon.status_line())
        outputs.extend(_repr_of_live_objects())
    finally:
        daemon.close()
        smtp.controller.stop()
    key_args = ["--age-key-file", str(key.path)]
    for args in (
        ["status", "--state-dir", str(state)],
        ["status", "--state-dir", str(state), "--json"],
        ["plan", "--config", str(config), "--state-dir", str(state), *key_args],
        ["validate", str(config), *key_args],
    ):
        cli.main(args)
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    key.path.chmod(0o644)
    cli.main(["validate", str(config), *key_args])
    outputs += list(capsys.readouterr())
    assert any("age key file readable by others" in line for line in every_log.lines)

    texts = [*every_log.lines, *outputs, *errors]
    assert any("SecretStr('**********')" in text for text in outputs)  # models were seen
    levels = {line.split()[1] for line in every_log.lines}
    assert {"INFO", "WARNING", "ERROR"} <= levels, every_log.lines
    for form in _forms(CANARY):
        shown = form.decode()
        leaked = [_around(text, shown) for text in texts if shown in text]
        assert not leaked, f"{form!r} leaked: {leaked[:3]}"
        files = [p.name for p in _files(state) if form in p.read_bytes()]
        assert not files, f"{form!r} written to {files}"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("state.yaml", "ledger.sqlite3", "fingerprint.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
