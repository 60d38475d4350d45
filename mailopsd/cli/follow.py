"""``run --git``: the options that make the daemon follow a git remote, and their reading.

The remote's credentials come as the age key does under systemd: files in
``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``) named ``git-ssh-key``,
``git-known-hosts``, ``git-token`` and ``git-webhook-secret``, unless an option names
another file. Nothing of the remote
is read from the repository itself: a commit cannot change what is followed or whose
signatures are trusted.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from mailopsd.daemon.follow import GitFollow
from mailopsd.errors import MailopsError
from mailopsd.remote.repository import Source

__all__ = ["add_git_options", "git_follow"]


class GitOptionError(MailopsError):
    """The ``--git`` options cannot be used as given."""


def add_git_options(parser: argparse.ArgumentParser) -> None:
    """``--git`` and the options that go with it."""
    group = parser.add_argument_group(
        "following a git remote",
        "Instead of --config, clone URL into the state directory and run on the branch's "
        "head: fetched every --git-interval seconds and on POST /hooks/git; a commit that "
        "is not valid (or not signed, with --git-allowed-signers) is not applied.",
    )
    group.add_argument("--git", metavar="URL", help="the remote to follow (any URL git takes)")
    group.add_argument("--git-branch", default="main", help="the branch (default: main)")
    group.add_argument(
        "--git-path",
        default="",
        metavar="DIR",
        help="the config's directory in the repository (default: its root)",
    )
    group.add_argument(
        "--git-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between two fetches (default: 60)",
    )
    group.add_argument(
        "--git-allowed-signers",
        type=Path,
        metavar="FILE",
        help="apply only commits signed by a key of this ssh allowed_signers file",
    )
    for name, credential, what in (
        ("ssh-key", "git-ssh-key", "the SSH private key for the remote"),
        ("known-hosts", "git-known-hosts", "the remote's SSH host keys (ssh-keyscan's output)"),
        ("token-file", "git-token", "a file holding an HTTPS token for the remote"),
        ("webhook-secret-file", "git-webhook-secret", "the webhook's shared secret"),
    ):
        group.add_argument(
            f"--git-{name}",
            type=Path,
            metavar="FILE",
            help=f"{what} (default: $CREDENTIALS_DIRECTORY/{credential}, if present)",
        )


def git_follow(args: argparse.Namespace, environ: Mapping[str, str]) -> GitFollow | None:
    """What ``--git`` asks to follow, or ``None`` without it.

    Raises:
        GitOptionError: ``--config`` given too, a file named that cannot be read, or an
            empty webhook secret.
    """
    if args.git is None:
        return None
    if args.config is not None:
        raise GitOptionError("--config and --git exclude each other: the config comes from git")
    if args.git_interval <= 0:
        raise GitOptionError("--git-interval must be a number of seconds above 0")
    credentials = environ.get("CREDENTIALS_DIRECTORY")

    def credential(given: Path | None, name: str) -> Path | None:
        if given is not None:
            if not given.is_file():
                raise GitOptionError(f"{given}: no such file")
            return given
        found = Path(credentials, name) if credentials else None
        return found if found is not None and found.is_file() else None

    secret_file = credential(args.git_webhook_secret_file, "git-webhook-secret")
    secret = None
    if secret_file is not None:
        secret = secret_file.read_text(encoding="utf-8").strip()
        if not secret:
            raise GitOptionError(f"{secret_file}: the webhook secret is empty")
    return GitFollow(
        source=Source(
            url=args.git,
            branch=args.git_branch,
            path=args.git_path.strip("/"),
            allowed_signers=args.git_allowed_signers,
            ssh_key=credential(args.git_ssh_key, "git-ssh-key"),
            token_file=credential(args.git_token_file, "git-token"),
            known_hosts=credential(args.git_known_hosts, "git-known-hosts"),
        ),
        interval_s=args.git_interval,
        webhook_secret=SecretStr(secret) if secret is not None else None,
    )
