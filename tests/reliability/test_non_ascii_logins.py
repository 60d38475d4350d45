"""Usernames and passwords beyond ASCII: they log in where the server can take them.

Where it cannot, or where a server misbehaves during the login, only that mailbox stops
and says why; ``mailopsd run`` goes on with the others and exits 0. No part of such a
password (its characters, their escapes, the position an encoding error would name) is
in any log line, output or state file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailopsd import cli
from mailopsd.inbox.imap import ImapError, MailboxAccess, connect
from mailopsd.state.statefile import load_state
from tests.configs import CANARY_NON_ASCII, traces_in
from tests.dispatch_setup import credential, imap_fields, run_once, write_campaign
from tests.ledger_setup import read_ledger
from tests.logs import LogLines, captured
from tests.servers.imap import Dovecot, agreeable_imap
from tests.servers.smtp import BadChallengeHandler, SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

NOW = "2026-11-23T10:00:00Z"


@pytest.fixture
def records() -> Iterator[LogLines]:
    """Every record of mailopsd's loggers.

    On mailopsd's logger, not the root: ``mailopsd run`` replaces the root's handlers.
    """
    with captured("mailopsd") as handler:
        yield handler


@pytest.fixture
def canary_imap(own_dovecot: Dovecot) -> Dovecot:
    """A dovecot whose user ``canary`` has the non-ASCII password."""
    own_dovecot.stop()  # dovecot reads its users once
    own_dovecot.users["canary"] = CANARY_NON_ASCII
    with (own_dovecot.directory / "users").open("a", encoding="utf-8") as users:
        users.write(f"canary:{{PLAIN}}{CANARY_NON_ASCII}::::::\n")
    own_dovecot.start()
    return own_dovecot


def _logins(server: SmtpServer) -> set[str | None]:
    return {message.login for message in server.handler.messages}


def _files(directory: Path) -> Iterator[Path]:
    return (path for path in directory.rglob("*") if path.is_file())


def test_one_mailbox_cannot_log_in_the_others_send_and_nothing_leaks(
    tmp_path: Path,
    test_ca: TestCA,
    canary_imap: Dovecot,
    records: LogLines,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Non-ASCII passwords log in over AUTH PLAIN and IMAP; a LOGIN-only server, a refused
    password and a broken AUTH challenge each stop only their own mailbox, with a reason,
    while ``run`` exits 0 and no trace of the password is shown or stored."""
    plain = start_smtp(
        test_ca,
        {"ascii": "pw-ascii", "utf8": CANARY_NON_ASCII, "wrong": "another-pässword"},
    )
    login_only = start_smtp(test_ca, {"nonplain": CANARY_NON_ASCII}, without_auth=("PLAIN",))
    odd = start_smtp(test_ca, {"odd": "pw-odd"}, handler_class=BadChallengeHandler)
    boxes = {
        # sends; its mailbox refuses the non-ASCII password
        "ascii": credential(
            plain, "ascii", **imap_fields(canary_imap, "user1", imap_password=CANARY_NON_ASCII)
        ),
        # sends and reads its mailbox, both with the non-ASCII password
        "utf8": credential(
            plain,
            "utf8",
            smtp_password=CANARY_NON_ASCII,
            **imap_fields(canary_imap, "canary", imap_password=CANARY_NON_ASCII),
        ),
        # refused: the server knows another password
        "wrong": credential(plain, "wrong", smtp_password=CANARY_NON_ASCII),
        # the server offers AUTH LOGIN only
        "nonplain": credential(login_only, "nonplain", smtp_password=CANARY_NON_ASCII),
        # the server's AUTH challenge is not base64
        "odd": credential(odd, "odd"),
    }
    path = write_campaign(tmp_path, boxes, leads=20, steps=1)
    state = tmp_path / "state"
    try:
        codes = [run_once(path, state, NOW) for _ in range(2)]  # the second reads mailboxes
        run_out, run_err = capsys.readouterr()
    finally:
        for server in (plain, login_only, odd):
            server.controller.stop()
    assert codes == [0, 0], run_err
    assert _logins(plain) == {"ascii", "utf8"}
    assert login_only.handler.messages == odd.handler.messages == []

    with read_ledger(state) as ledger:
        polled = {cursor.credential_id: cursor.last_result or "" for cursor in ledger.inbox.polls()}
    assert polled["utf8"].startswith("ok: "), polled
    saved = load_state(state)
    assert saved.credential("camp/utf8").inbox_error is None
    assert (
        saved.credential("camp/ascii").inbox_error
        == "login: [AUTHENTICATIONFAILED] Authentication failed."
    )
    assert saved.credential("camp/wrong").auth_failures >= 1
    assert saved.credential("camp/nonplain").auth_failures >= 1
    odd_error = saved.credential("camp/odd").smtp_error
    assert odd_error is not None
    assert odd_error.startswith("smtp unavailable: unexpected binascii.Error at base64.py:")
    assert (
        "smtp auth failed campaign=camp credential=nonplain failures=1 reply=None "
        "the SMTP username or password has non-ASCII characters, which mailopsd sends only "
        "with AUTH PLAIN (UTF-8, RFC 4616), and this server offers AUTH LOGIN; use an ASCII "
        "password for this mailbox, or a server that offers AUTH PLAIN"
    ) in run_err

    assert cli.main(["status", "--state-dir", str(state), "--now", NOW]) == 0
    status_out, status_err = capsys.readouterr()
    assert cli.main(["validate", str(path), "--allow-plaintext-secrets"]) == 0
    validate_out, validate_err = capsys.readouterr()
    # The test SMTP server's own log sees the AUTH exchange: it is not mailopsd's.
    shown = [line for line in run_err.splitlines() if " mail.log: " not in line]
    texts = [*records.lines, *shown, run_out, status_out, status_err, validate_out, validate_err]
    assert not traces_in(CANARY_NON_ASCII, texts)
    stored = [p.read_bytes().decode("utf-8", "replace") for p in _files(state)]
    assert not traces_in(CANARY_NON_ASCII, stored)


def _access(server: Dovecot, user: str, password: str) -> MailboxAccess:
    return MailboxAccess(
        campaign_id="camp",
        credential_id="a",
        host=server.host,
        port=server.port,
        username=SecretStr(user),
        password=SecretStr(password),
        tls="starttls",
        ca_file=server.ca.ca_file,
        folders=("INBOX",),
        timeout_s=5.0,
    )


def test_imap_non_ascii_password_logs_in(canary_imap: Dovecot) -> None:
    """A non-ASCII IMAP password logs in (AUTHENTICATE PLAIN in UTF-8) and reads."""
    client = connect(_access(canary_imap, "canary", CANARY_NON_ASCII))
    try:
        status, _ = client.select("INBOX", readonly=True)
    finally:
        client.logout()
    assert status == "OK"


def test_imap_wrong_non_ascii_password_is_a_login_error(dovecot: Dovecot) -> None:
    """A refused non-ASCII IMAP password is a one-line login error without the password."""
    user, _ = dovecot.add_user()
    with pytest.raises(ImapError) as caught:
        connect(_access(dovecot, user, CANARY_NON_ASCII))
    assert caught.value.stage == "login"
    assert str(caught.value) == "login: [AUTHENTICATIONFAILED] Authentication failed."
    assert not traces_in(CANARY_NON_ASCII, [str(caught.value), repr(caught.value)])


def test_imap_non_ascii_username_logs_in_nowhere_without_leaking(dovecot: Dovecot) -> None:
    """A non-ASCII IMAP username unknown to the server is refused like any other login."""
    with pytest.raises(ImapError, match=r"^login: \[AUTHENTICATIONFAILED\]"):
        connect(_access(dovecot, "adä", "pw-ascii"))


@pytest.fixture
def login_only_imap() -> Iterator[list[bytes]]:
    """An IMAP server on loopback offering AUTH=LOGIN only; item 0 is its port, then every
    line it received."""
    with agreeable_imap(b"IMAP4rev1 AUTH=LOGIN", "login-only-imap") as seen:
        yield seen


def test_imap_server_without_auth_plain_never_sees_a_non_ascii_password(
    login_only_imap: list[bytes],
) -> None:
    """A server that does not offer AUTH=PLAIN is sent nothing of a non-ASCII password, and
    the login error says why and what to do."""
    access = MailboxAccess(
        campaign_id="camp",
        credential_id="a",
        host="127.0.0.1",
        port=int(login_only_imap[0]),
        username=SecretStr("ada"),
        password=SecretStr(CANARY_NON_ASCII),
        tls="none",
        ca_file=None,
        folders=("INBOX",),
        timeout_s=5.0,
    )
    with pytest.raises(ImapError) as caught:
        connect(access)
    assert str(caught.value) == (
        "login: non-ASCII username or password, sent only with AUTHENTICATE PLAIN (UTF-8, "
        "RFC 4616), which this server does not offer; use an ASCII password, or a server "
        "with AUTH=PLAIN"
    )
    commands = [line.split(b" ")[1].strip().upper() for line in login_only_imap[1:]]
    assert commands == [b"CAPABILITY", b"LOGOUT"]
