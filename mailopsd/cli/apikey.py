"""``mailopsd apikey new``: make a key of the credentials API, shown once.

The key goes to stdout once and is written nowhere else; what goes into the config is
the entry with its sha256, for a person to paste under ``api_keys:``.
"""

from __future__ import annotations

import argparse
import sys

from mailopsd.cli.common import EXIT_OK, Commands
from mailopsd.config.scalars import ID_PATTERN
from mailopsd.http import apikeys

__all__ = ["add_apikey"]


def _id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid id {value!r}: use 1 to 63 lowercase letters, digits and dashes, "
            "starting with a letter or digit"
        )
    return value


def _new(args: argparse.Namespace) -> int:
    key = apikeys.generate_api_key()
    digest = apikeys.hash_api_key(key)
    name = args.name or f"key-{digest[:8]}"
    print("API key (shown only this once; give it to the client):", file=sys.stderr, flush=True)
    print(key, flush=True)
    print(
        "\nPaste this under api_keys: in a config file (it holds only the key's hash):",
        file=sys.stderr,
        flush=True,
    )
    scope = ", scope: write" if args.scope == "write" else ""
    entry = f'{{account: {args.account}, sha256: "{digest}"{scope}}}'
    print(f"api_keys:\n  {name}: {entry}", flush=True)
    return EXIT_OK


def add_apikey(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``apikey`` and its verb ``new``."""
    group = commands.add_parser(
        "apikey",
        help="make keys of the credentials API",
        description="Keys of the credentials API; the config holds only their sha256.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True, help="what to do")
    new = verbs.add_parser(
        "new",
        help="print a new random key once, and its api_keys entry (hash only)",
        description=(
            "Print a new random key on stdout, once, and the api_keys entry to paste into "
            "a config file: NAME with the account and the key's sha256. The key itself "
            "is stored nowhere; a lost key is replaced by a new one."
        ),
    )
    new.add_argument(
        "name", nargs="?", type=_id, help="the key's name in api_keys (default: key-<hash prefix>)"
    )
    new.add_argument(
        "--account", type=_id, default="default", help="account the key reaches (default: default)"
    )
    new.add_argument(
        "--scope",
        choices=("read", "write"),
        default="read",
        help="read: the key only reads; write: it may also change credentials, where "
        "api.write allows it (default: read)",
    )
    new.set_defaults(handler=_new)
