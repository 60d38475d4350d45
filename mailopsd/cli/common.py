"""What every command shares: exit codes, the environment's defaults, keys, error output."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from mailopsd import secrets
from mailopsd.config import loader
from mailopsd.errors import ConfigError, SecretError

__all__ = [
    "EXIT_CHANGES",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "Commands",
    "add_config_options",
    "add_key_option",
    "add_state_option",
    "default_config_path",
    "identities",
    "load_options",
    "parse_now",
    "print_issues",
    "state_dir",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CHANGES = 2

Commands = argparse._SubParsersAction


def default_config_path() -> Path:
    """``$MAILOPSD_CONFIG``, then ``./config``."""
    return Path(os.environ.get("MAILOPSD_CONFIG") or "config")


def state_dir(args: argparse.Namespace) -> Path:
    """``--state-dir``, then ``$MAILOPSD_STATE_DIR``, ``$STATE_DIRECTORY``, ``./state``."""
    if args.state_dir is not None:
        return Path(args.state_dir)
    chosen = os.environ.get("MAILOPSD_STATE_DIR") or os.environ.get("STATE_DIRECTORY")
    return Path(chosen.split(":")[0]) if chosen else Path("state")


def identities(args: argparse.Namespace) -> secrets.IdentitySet:
    """The age identities, found in the documented order.

    Raises:
        SecretError: None is found, or the one found is unusable; for a command that
            can do without (``validate --no-decrypt``), the message says so.
    """
    try:
        return secrets.find_identities(
            key_file=args.age_key_file, environ=os.environ, home=Path.home()
        )
    except SecretError as err:
        if getattr(args, "no_decrypt", None) is False:
            raise SecretError(f"{err} (or add --no-decrypt to check all but the secrets)") from err
        raise


def load_options(args: argparse.Namespace) -> loader.LoadOptions:
    """How to load the config, from the common options."""
    return loader.LoadOptions(
        identities=functools.cache(lambda: identities(args)),
        decrypt=not getattr(args, "no_decrypt", False),
        allow_plaintext_secrets=args.allow_plaintext_secrets,
        earlier_versions=secrets.earlier_versions,
    )


def parse_now(text: str | None) -> datetime:
    """``--now`` as an aware time (UTC when no zone is given), or the current time.

    Raises:
        argparse.ArgumentTypeError: The text is not an ISO 8601 time.
    """
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--now {text!r} is not an ISO 8601 time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def print_issues(err: ConfigError, output_format: str = "text") -> None:
    """Print config errors: one per line on stderr and a count, or a JSON list on stdout."""
    if output_format == "json":
        print(json.dumps([issue.as_dict() for issue in err.issues], indent=2))
        return
    for issue in err.issues:
        print(issue, file=sys.stderr)
    count = len(err.issues)
    print(f"invalid: {count} error{'s' if count != 1 else ''}", file=sys.stderr)


def add_key_option(parser: argparse.ArgumentParser) -> None:
    """``--age-key-file``."""
    parser.add_argument(
        "--age-key-file",
        type=Path,
        help="age identity file (default: $MAILOPSD_AGE_KEY_FILE, "
        "$CREDENTIALS_DIRECTORY/age-key, $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, "
        "~/.config/sops/age/keys.txt)",
    )


def add_state_option(parser: argparse.ArgumentParser) -> None:
    """``--state-dir``."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="state directory (default: $MAILOPSD_STATE_DIR, $STATE_DIRECTORY, ./state)",
    )


def add_config_options(parser: argparse.ArgumentParser, *, state: bool = True) -> None:
    """``--config``, ``--state-dir``, ``--age-key-file``, ``--allow-plaintext-secrets``."""
    parser.add_argument(
        "--config",
        type=Path,
        help="config file or directory (default: $MAILOPSD_CONFIG, then ./config)",
    )
    if state:
        add_state_option(parser)
    add_key_option(parser)
    parser.add_argument(
        "--allow-plaintext-secrets",
        action="store_true",
        help="accept secret fields stored in clear text (local sandbox demos only)",
    )
