"""The shipped example teaches the whole format: it is valid and uses every field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import (
    ApiKey,
    Campaign,
    Config,
    Credential,
    Http,
    Ramp,
    RateLimit,
    SendWindow,
    Spread,
    Step,
    Tracking,
    Unsubscribe,
    Variant,
)
from mailopsd.config.sequence import LeadZones
from mailopsd.secrets import parse_identities

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "campaigns.example.yaml"
DEMO_KEY = EXAMPLE.parent / "demo-age-key.txt"


def test_example_is_valid() -> None:
    """The example decrypts with the demo key and loads, with its leads file and template."""
    identities = parse_identities(DEMO_KEY.read_text(), str(DEMO_KEY))
    loaded = load_config(EXAMPLE, LoadOptions(identities=lambda: identities))
    assert loaded.summary() == (
        "1 campaign, 3 credentials (1 with reply detection), 1 shared mailbox, "
        "1 suppression list for 1 "
        "account; http on 127.0.0.1:8025 for https://mail.example.com, 1 API key"
    )
    assert loaded.leads_path("demo-welcome").name == "demo.csv"
    http = loaded.config.http
    assert http is not None
    assert len(http.signing_key.get_secret_value()) >= 32


@pytest.mark.parametrize(
    "model",
    [
        ApiKey,
        Campaign,
        Config,
        Credential,
        Http,
        LeadZones,
        Ramp,
        RateLimit,
        SendWindow,
        Spread,
        Step,
        Tracking,
        Unsubscribe,
        Variant,
    ],
)
def test_example_uses_every_field(model: type[BaseModel]) -> None:
    """Every field of the schema appears in the example, so a newcomer sees it."""
    text = EXAMPLE.read_text()
    names = [field.alias or name for name, field in model.model_fields.items()]
    missing = [name for name in names if not re.search(rf"\b{name}:", text)]
    assert missing == []
