"""The daemon's log as an operator reads it: JSON fields, and why mail was not sent."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mailopsd import cli
from tests.dispatch_setup import credential, write_campaign
from tests.servers.smtp import start_smtp
from tests.servers.tlsca import TestCA

NOW = "2026-11-23T10:00:00Z"


def _run_once(path: Path, state: Path, *extra: str) -> int:
    argv = ["run", "--config", str(path), "--state-dir", str(state), "--once", "--now", NOW]
    return cli.main([*argv, "--allow-plaintext-secrets", *extra])


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_json_lines_carry_campaign_credential_and_lead_as_fields(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --log-format json, a line about a lead has campaign, credential and lead fields."""
    refused = "lead0001@example.net"
    server = start_smtp(
        test_ca, {"ada": "pw-ada"}, rules={refused: ("RCPT", "501 5.1.3 Bad address syntax")}
    )
    try:
        path = write_campaign(tmp_path, {"a": credential(server, "ada")}, leads=3, steps=1)
        capsys.readouterr()
        assert _run_once(path, tmp_path / "state", "--log-format", "json") == 0
    finally:
        server.controller.stop()
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (malformed,) = [r for r in records if r["message"].startswith("lead address refused")]
    assert (malformed["campaign"], malformed["credential"], malformed["lead"]) == (
        "camp",
        "a",
        refused,
    )
    assert malformed["code"] == 501
    (dispatched,) = [r for r in records if r["message"].startswith("dispatched ")]
    assert (dispatched["sent"], dispatched["invalid"]) == (2, 1)
    applied = [r for r in records if r["message"].startswith("applied + credential")]
    assert [(r["campaign"], r["credential"]) for r in applied] == [("camp", "a")]


def test_dispatched_line_says_why_mail_was_not_sent(
    tmp_path: Path, test_ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mailbox whose server is down: ``dispatched`` counts what was not sent by reason."""
    down = {
        "smtp_host": "127.0.0.1",
        "smtp_port": _closed_port(),
        "smtp_username": "ada",
        "smtp_password": "pw-ada",
        "from_name": "Ada",
        "from_email": "ada@sender.example.com",
        "daily_limit": 100,
        "tls_ca_file": str(test_ca.ca_file),
    }
    path = write_campaign(tmp_path, {"a": down}, leads=3, steps=1)
    capsys.readouterr()
    assert _run_once(path, tmp_path / "state") == 0
    lines = capsys.readouterr().err.splitlines()
    (dispatched,) = [line for line in lines if " dispatched " in line]
    assert dispatched.endswith(
        "dispatched not_sent=3 not_sent_smtp_unavailable=1 not_sent_after_failure=2"
    ), dispatched
    (warning,) = [line for line in lines if "smtp unavailable campaign=camp credential=a" in line]
    assert "WARNING" in warning
