"""The demo key: its private half is public, so it may encrypt the demo campaign file only.

``config/demo-age-key.txt`` ships with mailopsd so that the example runs out of the box:
whoever has mailopsd has that key, and can read anything encrypted for its recipient.
mailopsd knows the recipient as a constant (a test checks it against the shipped key), so
the check holds wherever the files were copied and whatever a ``.sops.yaml`` says: no file
but the demo campaign file (``campaigns.example.yaml``) is encrypted for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "DEMO_FILE_NAME",
    "DEMO_KEY_FILE",
    "DEMO_RECIPIENT",
    "demo_refusal",
    "has_demo_recipient",
    "is_demo_file",
]

DEMO_RECIPIENT = "age1rpqjlz68revfglnpsk0z9a7jg5600l32yc4xu5yvh0r2vzpfm3cs0v3nma"
DEMO_KEY_FILE = "config/demo-age-key.txt"
DEMO_FILE_NAME = "campaigns.example.yaml"


def is_demo_file(path: Path) -> bool:
    """Tell whether ``path`` is the demo campaign file, the one file the demo key may encrypt."""
    return path.name == DEMO_FILE_NAME


def has_demo_recipient(recipients: Iterable[str]) -> bool:
    """Tell whether the demo key's recipient is among ``recipients``."""
    return any(recipient.strip() == DEMO_RECIPIENT for recipient in recipients)


def demo_refusal(source: str = "") -> str:
    """Say why encrypting for the demo key is refused; ``source`` names where it came from."""
    return (
        f"refusing to encrypt for the demo key {DEMO_RECIPIENT}{source}: its private key "
        f"ships with mailopsd ({DEMO_KEY_FILE}), so anyone could read these secrets"
    )
