"""Configs for dispatch tests: a campaign whose credentials point at a test SMTP server."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from mailopsd import cli
from tests.servers.smtp import Received, SmtpServer


def credential(server: SmtpServer, login: str, **overrides: Any) -> dict[str, Any]:
    """A credential that logs in to ``server`` as ``login`` (password ``pw-<login>``)."""
    return {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_username": login,
        "smtp_password": f"pw-{login}",
        "from_name": login.capitalize(),
        "from_email": f"{login}@sender.example.com",
        "daily_limit": 100,
        "tls": "starttls",
        "tls_ca_file": str(server.ca.ca_file),
        **overrides,
    }


def write_campaign(
    directory: Path,
    credentials: Mapping[str, Mapping[str, Any]],
    *,
    leads: int | list[str] = 5,
    steps: int = 2,
    delay: str = "1 day",
    **campaign: Any,
) -> Path:
    """Write ``c.yaml`` and ``leads.csv`` for one campaign ``camp``; return the config path."""
    rows = (
        leads
        if isinstance(leads, list)
        else [f"lead{i:04d}@example.net,Lead{i}" for i in range(leads)]
    )
    (directory / "leads.csv").write_text("email,first_name\n" + "".join(f"{row}\n" for row in rows))
    sequence: list[dict[str, Any]] = [
        {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}, step 1."}
    ]
    sequence += [
        {"delay": delay, "body": f"Hi again {{{{ first_name }}}}, step {n}."}
        for n in range(2, steps + 1)
    ]
    config = {
        "campaigns": {
            "camp": {
                "name": "Test campaign",
                "leads": "leads.csv",
                "sequence": sequence,
                "smtp_credentials": {name: dict(value) for name, value in credentials.items()},
                **campaign,
            }
        }
    }
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_once(path: Path, state: Path, now: str) -> int:
    """``mailopsd run --once --now NOW`` in this process."""
    return cli.main(
        [
            "run",
            "--config",
            str(path),
            "--state-dir",
            str(state),
            "--once",
            "--now",
            now,
            "--allow-plaintext-secrets",
        ]
    )


def parsed(message: Received) -> EmailMessage:
    """The message as the server received it."""
    return email.message_from_bytes(message.data, policy=email.policy.default)  # type: ignore[return-value]
