"""A small valid config to break one line at a time, and ways to read its errors."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from mailopsd.config import LoadedConfig, load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import Campaign
from mailopsd.errors import ConfigError

CANARY = "canary-Pw-9f3e2d1c"
# A password as a person may choose it: letters beyond ASCII, at several positions.
CANARY_NON_ASCII = "canary-Pä-9f3é2d€1c"

# Line numbers matter: tests assert them. Line 1 is "campaigns:".
BASE = f"""\
campaigns:
  acme-q4:
    name: ACME Q4 outreach
    leads: leads.csv
    sequence:
      - subject: "Quick question, {{{{ first_name }}}}"
        body: "Hi {{{{ first_name }}}}"
      - delay: 3 days
        body: "Following up"
    smtp_credentials:
      primary:
        smtp_host: smtp.example.com
        smtp_port: 587
        smtp_username: user@example.com
        smtp_password: {CANARY}
        from_name: Ada
        from_email: ada@example.com
        daily_limit: 100
"""

LEADS = "email,first_name,company\ngrace@example.com,Grace,Navy\n"

Writer = Callable[..., Path]

# The schema tests use plaintext secrets; refusing them is tested on its own.
PLAINTEXT_OK = LoadOptions(allow_plaintext_secrets=True)


def errors_of(path: Path) -> list[str]:
    """Load ``path`` and return its errors as printed (none: the test fails)."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, PLAINTEXT_OK)
    return [str(issue) for issue in caught.value.issues]


def loads(path: Path) -> LoadedConfig:
    """Load ``path``, which must be valid."""
    return load_config(path, PLAINTEXT_OK)


def secret_traces(secret: str) -> list[str]:
    """What of ``secret`` must never be shown.

    The secret, each of its non-ASCII characters and the ways Python prints them
    (``'é'``, ``\\xe9``, ``\\u20ac``, UTF-8 bytes as ``\\xc3\\xa9``), the words of a
    ``UnicodeEncodeError`` (which name the character's position), and the base64 an AUTH
    exchange would carry.
    """
    traces = [secret, "in position", "codec can't"]
    for char in sorted({c for c in secret if not c.isascii()}):
        traces += [char, ascii(char).strip("'"), repr(char.encode()).strip("b'")]
    for shift in range(3):  # each alignment of the secret in a base64 stream
        traces.append(base64.b64encode(b"\0" * shift + secret.encode()).decode()[4:-4])
    return traces


def traces_in(secret: str, texts: Iterable[str]) -> list[str]:
    """Each trace of ``secret`` (see ``secret_traces``) found in ``texts``, in context."""
    found = []
    for text in texts:
        for trace in secret_traces(secret):
            if trace in text:
                at = text.index(trace)
                found.append(f"{trace!r} in ...{text[max(0, at - 100) : at + 40]}...")
    return found


def campaign_model(*, credential: Mapping[str, Any] | None = None, **fields: Any) -> Campaign:
    """A valid campaign built in memory: a one-step sequence and one credential ``a``.

    ``fields`` add to the campaign or replace its fields (``sequence``...); ``credential``
    adds to the credential's.
    """
    box = {
        "smtp_host": "h.example.com",
        "smtp_port": 587,
        "smtp_username": "u",
        "smtp_password": "p",
        "from_name": "A",
        "from_email": "a@h.example.com",
        "daily_limit": 100,
        **(credential or {}),
    }
    return Campaign.model_validate(
        {
            "name": "x",
            "leads": "l.csv",
            "sequence": [{"subject": "s", "body": "b"}],
            "smtp_credentials": {"a": box},
            **fields,
        }
    )
