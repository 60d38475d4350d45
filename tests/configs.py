"""A small valid config to break one line at a time, and ways to read its errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailopsd.config import LoadedConfig, load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.errors import ConfigError

CANARY = "canary-Pw-9f3e2d1c"

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
