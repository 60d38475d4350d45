"""Configs for tests against loopback servers: campaigns whose credentials send through a
test SMTP server and read a test IMAP mailbox, their leads files, an optional http section.

``write_campaign`` writes the usual one: campaign ``camp`` in ``c.yaml``, its leads in
``leads.csv``. For more campaigns, build each with ``campaign_tree`` and write them with
``write_leads`` and ``write_config``.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from mailopsd import cli
from tests.servers.imap import Dovecot
from tests.servers.smtp import Received, SmtpServer, start_smtp
from tests.servers.tlsca import TestCA

# The address credential(server, "ada") sends from.
ADA = "ada@sender.example.com"


def credential(server: SmtpServer, login: str, **overrides: Any) -> dict[str, Any]:
    """A credential that logs in to ``server`` as ``login`` (password ``pw-<login>``).

    It trusts the server's test CA, unless ``tls="none"``: then it names no CA file.
    """
    fields = {
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
    if fields["tls"] == "none" and "tls_ca_file" not in overrides:
        del fields["tls_ca_file"]  # the config refuses a CA file without TLS
    return fields


def imap_fields(server: Dovecot, user: str, **overrides: Any) -> dict[str, Any]:
    """The imap_* fields of a credential that reads ``user``'s mailbox over STARTTLS."""
    return {
        "imap_host": server.host,
        "imap_port": server.port,
        "imap_username": user,
        "imap_password": server.users[user],
        "imap_tls": "starttls",
        "imap_tls_ca_file": str(server.ca.ca_file),
        **overrides,
    }


def campaign_tree(
    credentials: Mapping[str, Mapping[str, Any]],
    *,
    steps: int = 2,
    delay: str = "1 day",
    **fields: Any,
) -> dict[str, Any]:
    """A campaign "Test campaign" of ``steps`` steps ``delay`` apart, its leads in leads.csv.

    ``fields`` add to the campaign or replace these (``name``, ``leads``...).
    """
    sequence: list[dict[str, Any]] = [
        {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}, step 1."}
    ]
    sequence += [
        {"delay": delay, "body": f"Hi again {{{{ first_name }}}}, step {n}."}
        for n in range(2, steps + 1)
    ]
    return {
        "name": "Test campaign",
        "leads": "leads.csv",
        "sequence": sequence,
        "smtp_credentials": {name: dict(value) for name, value in credentials.items()},
        **fields,
    }


def write_leads(path: Path, leads: int | list[str]) -> None:
    """Write a leads file: ``leads`` rows ``email,first_name`` (a number: leadNNNN@example.net)."""
    rows = (
        leads
        if isinstance(leads, list)
        else [f"lead{i:04d}@example.net,Lead{i}" for i in range(leads)]
    )
    path.write_text("email,first_name\n" + "".join(f"{row}\n" for row in rows))


def write_config(
    directory: Path,
    campaigns: Mapping[str, Mapping[str, Any]],
    *,
    file_name: str = "c.yaml",
    **sections: Any,
) -> Path:
    """Write ``campaigns`` and other top-level ``sections`` (``http``...) as ``file_name``.

    Returns:
        The config file's path.
    """
    config = {"campaigns": {name: dict(value) for name, value in campaigns.items()}, **sections}
    path = directory / file_name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_campaign(
    directory: Path,
    credentials: Mapping[str, Mapping[str, Any]],
    *,
    leads: int | list[str] = 5,
    steps: int = 2,
    delay: str = "1 day",
    http: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Path:
    """Write ``c.yaml`` and ``leads.csv`` for one campaign ``camp``; return the config path.

    ``http`` is the config's http section (none: no http section); ``fields`` go to the
    campaign (see ``campaign_tree``).
    """
    write_leads(directory / "leads.csv", leads)
    sections = {} if http is None else {"http": dict(http)}
    built = campaign_tree(credentials, steps=steps, delay=delay, **fields)
    return write_config(directory, {"camp": built}, **sections)


@contextmanager
def bouncing_mailbox(directory: Path, ca: TestCA) -> Iterator[tuple[Path, SmtpServer]]:
    """A one-step campaign of 20 leads over one mailbox (``a``, login ada) that is
    disabled over a 20% bounce rate (from 5 sends), and its server, which refuses every
    other lead with ``550 5.1.1`` (stopped when the block ends): the config's path and
    the server."""
    leads = [f"lead{i:04d}@example.net" for i in range(20)]
    rules: dict[str, tuple[str, str | None]] = {
        address: ("RCPT", "550 5.1.1 No such user") for address in leads[1::2]
    }
    server = start_smtp(ca, {"ada": "pw-ada"}, rules=rules)
    try:
        path = write_campaign(
            directory,
            {"a": credential(server, "ada")},
            leads=20,
            steps=1,
            bounce_threshold="20%",
            bounce_min_sends=5,
        )
        yield path, server
    finally:
        server.controller.stop()


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


def sent_ids(server: SmtpServer) -> dict[str, str]:
    """The Message-ID of the last message ``server`` received for each recipient."""
    return {m.rcpt_tos[0]: str(parsed(m)["Message-ID"]) for m in server.handler.messages}
