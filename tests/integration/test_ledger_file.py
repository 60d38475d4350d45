"""``run --ledger FILE``: the shared ledger's address and password in a ledger file, the
password encrypted as the config's secrets are.

The database's role logs in with its password only (scram-sha-256), so a run that
sends proves the password was read; the password (a canary) is looked for everywhere a
person or another program could see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from mailopsd import tokens
from mailopsd.state import place, postgres
from mailopsd.state.ledger import Ledger
from mailopsd.state.place import LEDGER_POINTER
from tests.commands import run_cli
from tests.dispatch_setup import credential, write_campaign
from tests.integration.test_http import KEY, LEAD, _daemon
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer

PLAIN = "--allow-plaintext-secrets"
CANARY = "canary-ledger-Wq3n8z"
NOW = "2026-11-23T10:00:00Z"


@pytest.fixture(autouse=True)
def _pools_closed() -> Iterator[None]:
    yield
    postgres.close_pools()


@pytest.fixture
def protected(postgres_server: PostgresServer, postgres_dsn: str) -> str:
    """The test's database, owned by a role that needs its password (CANARY)."""
    return postgres_server.owned_by_password_role(postgres_dsn, CANARY)


def _key(capsys: pytest.CaptureFixture[str], directory: Path) -> tuple[Path, str]:
    """A new age key file, and its recipient."""
    key = directory / "age-key.txt"
    code, out, err = run_cli(capsys, "secrets", "keygen", "-o", str(key))
    assert code == 0, err
    return key, out.strip()


def _ledger_file(directory: Path, address: str, password: str) -> Path:
    path = directory / "ledger.yaml"
    path.write_text(f"ledger: {address}\nledger_password: {password}\n")
    return path


def _encrypted(
    capsys: pytest.CaptureFixture[str], directory: Path, address: str, password: str
) -> tuple[Path, Path]:
    """A ledger file encrypted with ``secrets encrypt`` for a new key: the file, the key."""
    key, recipient = _key(capsys, directory)
    path = _ledger_file(directory, address, password)
    encrypt = ("secrets", "encrypt", "--in-place", "--age", recipient, str(path))
    code, _, err = run_cli(capsys, *encrypt)
    assert code == 0, err
    return path, key


def _run(
    capsys: pytest.CaptureFixture[str], path: Path, state: Path, *extra: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys,
        *("run", "--config", str(path), "--state-dir", str(state), PLAIN, "--once"),
        *("--now", NOW, *extra),
    )


def test_the_password_comes_from_the_encrypted_ledger_file(
    tmp_path: Path,
    protected: str,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Encrypted with ``secrets encrypt``, the file gives the daemon its ledger; status
    reads the same ledger with the key found as the config's is; the password is in no
    file of the state directory, no output."""
    ledger_file, key = _encrypted(capsys, tmp_path, protected, CANARY)
    assert CANARY not in ledger_file.read_text()
    assert f"ledger: {protected}" in ledger_file.read_text()  # the address stays readable
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    state = tmp_path / "state"
    code, out, err = _run(
        capsys, path, state, "--ledger", str(ledger_file), "--age-key-file", str(key)
    )
    assert code == 0, err
    assert "sent 2" in out
    assert len(smtp_server.handler.messages) == 2
    assert (state / LEDGER_POINTER).read_text().strip() == str(ledger_file)
    monkeypatch.setenv("MAILOPSD_AGE_KEY_FILE", str(key))
    code, shown, err = run_cli(capsys, "status", "--state-dir", str(state), "--now", NOW)
    assert code == 0, err
    assert f"ledger {protected} (PostgreSQL)" in shown
    seen = (
        out
        + err
        + shown
        + "".join(p.read_text(errors="replace") for p in state.rglob("*") if p.is_file())
    )
    assert CANARY not in seen


def test_a_password_in_clear_is_refused_with_the_command_that_encrypts_it(
    tmp_path: Path, protected: str, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file as a person first writes it: refused, nothing sent, the password not
    repeated; the command the error gives encrypts it, and the run then works."""
    key, recipient = _key(capsys, tmp_path)
    ledger_file = _ledger_file(tmp_path, protected, CANARY)
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    state = tmp_path / "state"
    given = ("--ledger", str(ledger_file), "--age-key-file", str(key))
    code, _, err = _run(capsys, path, state, *given)
    assert code == 1
    advice = f"mailopsd secrets encrypt --in-place {ledger_file}"
    assert (
        f"error: ledger file {ledger_file}: ledger_password is in clear; encrypt it: {advice}"
        in err
    )
    assert CANARY not in err
    assert smtp_server.handler.messages == []
    assert not (state / LEDGER_POINTER).exists()
    command = [*advice.split()[1:], "--age", recipient]
    assert run_cli(capsys, *command)[0] == 0
    assert _run(capsys, path, state, *given)[0] == 0
    assert len(smtp_server.handler.messages) == 2


def test_a_wrong_password_or_key_is_named_and_nothing_is_sent(
    tmp_path: Path, protected: str, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password the server refuses: the server's words and what to check, at once (it
    does not pass by waiting), not the password. A key that does not open the file: said
    so. Nothing is sent either way."""
    wrong = "not-the-" + CANARY
    ledger_file, key = _encrypted(capsys, tmp_path, protected, wrong)
    (tmp_path / "other").mkdir()
    other_key, _ = _key(capsys, tmp_path / "other")
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    given = ("--ledger", str(ledger_file), "--age-key-file")
    code, _, err = _run(capsys, path, tmp_path / "s1", *given, str(key))
    assert code == 1
    assert f"error: ledger {protected} refused this client: " in err, err
    assert 'password authentication failed for user "mailopsd_pw"' in err
    assert "check the user, the database and the password" in err
    assert wrong not in err
    code, _, err = _run(capsys, path, tmp_path / "s2", *given, str(other_key))
    assert code == 1
    assert f"error: ledger file {ledger_file}: " in err, err
    assert smtp_server.handler.messages == []


def test_the_http_process_reads_the_ledger_the_file_names_without_the_key(
    tmp_path: Path,
    protected: str,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HTTP process has no age key: the daemon hands it the address, password
    included, over their private channel. A one-click unsubscribe reaches the shared
    ledger; neither its environment nor its command line holds the password."""
    ledger_file, key = _encrypted(capsys, tmp_path, protected, CANARY)
    monkeypatch.setenv("MAILOPSD_AGE_KEY_FILE", str(key))
    place.point(tmp_path / "state", str(ledger_file))
    with _daemon(tmp_path, smtp_server) as started:
        assert started.daemon.dispatch() == 3
        pid = started.daemon.http_pid
        assert pid is not None
        path = "/u/" + tokens.sign(KEY.encode(), tokens.UNSUBSCRIBE, "camp", LEAD)
        assert started.request("POST", path, b"List-Unsubscribe=One-Click").status == 200
        seen = Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
        assert CANARY.encode() not in seen
    ledger = Ledger.connect(make_conninfo(protected, password=CANARY))
    try:
        assert ledger.leads.get("camp", LEAD).state == "stopped"
    finally:
        ledger.close()
