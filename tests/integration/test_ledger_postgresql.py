"""``run --ledger``: a state directory whose ledger is a PostgreSQL database.

The address is remembered in the state directory; every command on it (``run``,
``status``, ``preview``) then uses that ledger. Its password never goes on the command
line, and nothing of it is printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailopsd.daemon.leases import lease_key
from mailopsd.state import postgres
from mailopsd.state.ledger import LEDGER_FILE, Ledger
from mailopsd.state.place import LEDGER_POINTER
from mailopsd.state.statefile import load_state
from tests.commands import run_cli, status_json
from tests.dispatch_setup import bouncing_mailbox, credential, run_once, write_campaign
from tests.servers.smtp import SmtpServer
from tests.servers.tlsca import TestCA

PLAIN = "--allow-plaintext-secrets"
CANARY = "canary-pg-Zq8v1x"
DAY = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pools_closed() -> Iterator[None]:
    """Close this process's ledger pools after each test (their threads with them)."""
    yield
    postgres.close_pools()


def _run(
    capsys: pytest.CaptureFixture[str],
    path: Path,
    state: Path,
    *extra: str,
    now: str = "2026-11-23T10:00:00Z",
) -> tuple[int, str, str]:
    """``run --once --now NOW`` on ``state``, with ``extra`` arguments."""
    return run_cli(
        capsys,
        *("run", "--config", str(path), "--state-dir", str(state), PLAIN),
        *("--once", "--now", now, *extra),
    )


def test_run_sends_into_the_postgresql_ledger_and_status_reads_it(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The daemon's sends are in the database; the state directory keeps no ledger file,
    and a later command without --ledger reads the same ledger."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=3)
    state = tmp_path / "state"
    code, out, err = _run(capsys, path, state, "--ledger", postgres_dsn)
    assert code == 0, err
    assert "sent 3" in out
    assert len(smtp_server.handler.messages) == 3
    assert (state / LEDGER_POINTER).read_text().strip() == postgres_dsn
    assert not (state / LEDGER_FILE).exists()
    report = status_json(capsys, state, "2026-11-23T10:00:00Z")
    [campaign] = report["campaigns"]
    assert campaign["sends"]["total"] == 3
    assert report["ledger"] == {
        "engine": "postgresql",
        "address": postgres_dsn,
        "leases": 0,  # the run is over
        "daemons": [],  # a run --once stands by for nothing: it writes no row
    }
    code, out, _ = run_cli(capsys, "status", "--state-dir", str(state))
    assert code == 0
    assert f"ledger {postgres_dsn} (PostgreSQL): no campaign is held by a daemon now" in out
    ledger = Ledger.connect(postgres_dsn)
    try:
        assert ledger.sends.since("camp", DAY) == {"a": 3}
    finally:
        ledger.close()
    # A second run (no --ledger) sends nothing twice: the database remembers.
    assert run_once(path, state, "2026-11-23T10:05:00Z") == 0
    assert len(smtp_server.handler.messages) == 3


def test_a_password_on_the_command_line_is_refused_unprinted(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The address with a password is refused before anything runs (exit 2), the message
    says where the password goes, and the password is printed nowhere."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=1)
    state = tmp_path / "state"
    address = f"postgresql://mailopsd:{CANARY}@127.0.0.1:1/mailopsd"
    code, out, err = _run(capsys, path, state, "--ledger", address)
    assert code == 2
    assert "passfile" in err
    assert "~/.pgpass" in err
    assert CANARY not in out + err
    assert not state.exists()
    assert smtp_server.handler.messages == []


def test_a_state_directory_with_its_own_ledger_is_not_repointed(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A state directory that already keeps a SQLite ledger keeps it: the run stops,
    says why and what to do, and sends nothing."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    state = tmp_path / "state"
    assert run_once(path, state, "2026-11-23T10:00:00Z") == 0
    smtp_server.handler.messages.clear()
    code, _, err = _run(capsys, path, state, "--ledger", postgres_dsn)
    assert code == 1
    assert "keeps its own ledger (ledger.sqlite3)" in err
    assert "new state directory" in err
    assert not (state / LEDGER_POINTER).exists()
    assert smtp_server.handler.messages == []


def test_an_unreachable_server_is_named_with_its_cause(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """status on a state directory whose ledger's server does not answer (the pointer
    moved to a port where nothing listens) says which ledger it could not reach, and
    why, as the server's client said it."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=1)
    state = tmp_path / "state"
    assert _run(capsys, path, state, "--ledger", postgres_dsn)[0] == 0
    (state / LEDGER_POINTER).write_text("postgresql://postgres@127.0.0.1:1/nowhere\n")
    code, out, err = run_cli(capsys, "status", "--state-dir", str(state))
    assert code == 1
    assert "postgresql://postgres@127.0.0.1:1/nowhere cannot be reached" in err
    assert "Connection refused" in err
    assert out == ""


def test_preview_forecasts_from_a_copy_of_the_postgresql_ledger(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """preview copies the database's ledger into a private SQLite one: what was sent
    counts (the cap is used up today), and the database is left as it was."""
    path = write_campaign(
        tmp_path, {"a": credential(smtp_server, "ada", daily_limit=2)}, leads=5, steps=1
    )
    state = tmp_path / "state"
    code, _, err = _run(capsys, path, state, "--ledger", postgres_dsn)
    assert code == 0, err
    code, out, err = run_cli(
        capsys,
        *("preview", "camp", "--config", str(path), "--state-dir", str(state), PLAIN),
        *("--now", "2026-11-23T11:00:00Z", "--days", "2", "--every", "1 hour", "--json"),
    )
    assert code == 0, err
    sends = {row["day"]: row["step1"] for row in json.loads(out)["forecast"]["sends"]}
    # Today's 2 are spent (the copy holds them): 2 more tomorrow, the last lead after.
    assert sends == {"2026-11-24": 2, "2026-11-25": 1}
    ledger = Ledger.connect(postgres_dsn)
    try:
        assert ledger.sends.since("camp", DAY) == {"a": 2}
    finally:
        ledger.close()


def test_a_mailbox_disabled_by_one_daemon_stays_disabled_for_the_next(
    tmp_path: Path, test_ca: TestCA, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One daemon disables a bouncing mailbox; another daemon, with its own state
    directory, takes over the shared ledger the next day: it takes the mailbox's state
    from the ledger (and the rates it counts there agree) before it sends anything."""
    with bouncing_mailbox(tmp_path, test_ca) as (path, server):
        first, second = tmp_path / "first", tmp_path / "second"
        code, _, err = _run(capsys, path, first, "--ledger", postgres_dsn)
        assert code == 0, err
        assert load_state(first).credentials["camp/a"].disabled_at is not None
        sent = len(server.handler.messages)
        assert sent == 3  # of 6 tried: every other lead was refused
        code, _, err = _run(
            capsys, path, second, "--ledger", postgres_dsn, now="2026-11-24T10:00:00Z"
        )
        assert code == 0, err
        assert len(server.handler.messages) == sent  # nothing from the bouncing mailbox
        entry = load_state(second).credentials["camp/a"]
        assert entry.disabled_reason is not None
        assert entry.disabled_reason.startswith("bounce rate 50.0% (3/6) > 20%")


def test_a_reenable_one_daemon_applied_holds_for_the_next(
    tmp_path: Path, test_ca: TestCA, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mailbox a daemon disabled, the operator re-enables; that daemon applies it and
    sends the rest. The next daemon to work, with a state directory of its own, goes on
    from the same mailbox state: re-enabled then, its bounces counted from then."""
    with bouncing_mailbox(tmp_path, test_ca) as (path, server):
        first, second = tmp_path / "first", tmp_path / "second"
        assert _run(capsys, path, first, "--ledger", postgres_dsn)[0] == 0
        assert load_state(first).credentials["camp/a"].disabled_at is not None
        server.handler.rules.clear()  # the bad addresses are gone from the list
        reenabled = credential(server, "ada", reenabled_at="2026-11-23T11:00:00Z")
        write_campaign(
            tmp_path,
            {"a": reenabled},
            leads=20,
            steps=1,
            bounce_threshold="20%",
            bounce_min_sends=5,
        )
        code, _, err = _run(capsys, path, first, now="2026-11-23T11:30:00Z")
        assert code == 0, err
        assert len(server.handler.messages) == 3 + 14  # the rest went after the re-enable
        code, _, err = _run(
            capsys, path, second, "--ledger", postgres_dsn, now="2026-11-24T10:00:00Z"
        )
        assert code == 0, err
    entry = load_state(second).credentials["camp/a"]
    assert entry == load_state(first).credentials["camp/a"]
    assert entry.reenabled_at is not None
    assert not entry.is_disabled(entry.reenabled_at)
    assert entry.bounce_window_start is not None


def test_a_once_run_leaves_the_campaigns_another_daemon_holds(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another daemon holds the campaign's lease: ``run --once`` does not wait for it,
    sends nothing for that campaign and says it left it; once the lease is free, the
    same run sends."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    working = Ledger.connect(postgres_dsn, leases=True)
    try:
        assert working.take_leases([lease_key("camp")]) == {lease_key("camp")}
        code, _, err = _run(capsys, path, tmp_path / "state", "--ledger", postgres_dsn)
    finally:
        working.close()
    assert code == 0, err
    assert "left to the daemons that hold them campaigns=camp" in err
    assert smtp_server.handler.messages == []
    code, _, err = _run(capsys, path, tmp_path / "state")
    assert code == 0, err
    assert len(smtp_server.handler.messages) == 2


def test_a_state_directory_on_postgresql_is_not_taken_back_to_a_file(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--ledger sqlite`` on a state directory whose ledger is PostgreSQL's is refused:
    a new ledger file would have every lead new again. Nothing is sent twice, and the
    state directory keeps its ledger."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    state = tmp_path / "state"
    assert _run(capsys, path, state, "--ledger", postgres_dsn)[0] == 0
    code, _, err = _run(capsys, path, state, "--ledger", "sqlite", now="2026-11-24T10:00:00Z")
    assert code == 1
    assert "a ledger.sqlite3 made now would hold none of its history" in err
    assert "new state directory" in err
    assert len(smtp_server.handler.messages) == 2
    assert (state / LEDGER_POINTER).read_text().strip() == postgres_dsn
    assert not (state / LEDGER_FILE).exists()


def test_daemons_of_one_ledger_agree_on_the_secrets_fingerprints(
    tmp_path: Path,
    smtp_server: SmtpServer,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second daemon (its own state directory) on the same config finds no credential
    changed: the ledger's fingerprint key is theirs, not each state directory's. A
    password changed in the config is still seen as changed."""
    path = write_campaign(tmp_path, {"a": credential(smtp_server, "ada")}, leads=2)
    code, _, err = _run(capsys, path, tmp_path / "first", "--ledger", postgres_dsn)
    assert code == 0, err
    assert "applied + credential camp/a" in err
    code, _, err = _run(capsys, path, tmp_path / "second", "--ledger", postgres_dsn)
    assert code == 0, err
    assert "credential camp/a" not in err  # nothing to apply
    changed = credential(smtp_server, "ada", smtp_password=CANARY)
    write_campaign(tmp_path, {"a": changed}, leads=2)
    code, _, err = _run(capsys, path, tmp_path / "first")
    assert "applied ~ credential camp/a" in err
    assert "smtp_password (changed)" in err
    assert CANARY not in err
