"""The daemon's send-token key: made once, kept in the state directory, read at start.

It signs the token each send carries in its envelope sender and its ``X-Mailopsd-Send``
header (:mod:`mailopsd.sendtokens`), so a delivery report can be matched to the exact
send. It lives in a file of the state directory, not in the config, because it is the
daemon's own secret: nobody needs to know or set it, the config has no such key unless
``http.signing_key`` is set (and that one may be rotated by a person for other reasons),
and it must stay the same as long as the ledger whose sends it signed. The file holds 32
random bytes as hex, mode 0600, written atomically; it is never logged nor shown.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from mailopsd.atomicfile import write_atomically
from mailopsd.errors import StateError

__all__ = ["SEND_KEY_FILE", "load_send_key"]

SEND_KEY_FILE = "send-token.key"
_KEY_BYTES = 32
_HEX_KEY = re.compile(rf"[0-9a-f]{{{2 * _KEY_BYTES}}}\n?")


def load_send_key(state_dir: Path) -> bytes:
    """Read the send-token key of ``state_dir``, making it first if there is none.

    Args:
        state_dir: The daemon's state directory (it exists).

    Returns:
        The 32-byte key.

    Raises:
        StateError: The file cannot be read or written, or holds no key; the message
            names the file, never its content.
    """
    path = state_dir / SEND_KEY_FILE
    try:
        if not path.exists():
            write_atomically(path, secrets.token_hex(_KEY_BYTES) + "\n", mode=0o600)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else "not text"
        raise StateError(f"cannot use the send-token key {path}: {why}") from err
    if not _HEX_KEY.fullmatch(text):
        raise StateError(
            f"{path} holds no send-token key ({2 * _KEY_BYTES} hex digits); restore it from "
            "a backup of the state directory, or remove it to make a new one (delivery "
            "reports of messages sent before then will count for nothing)"
        )
    return bytes.fromhex(text.strip())
