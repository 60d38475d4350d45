"""``mailopsd reenable``: ``reenabled_at`` written for a person, one line changed.

``reenable CAMPAIGN CREDENTIAL`` writes ``reenabled_at`` into the YAML that declares the
credential; for one that names a shared mailbox, into the mailbox's entry under the
top-level ``mailboxes`` (``reenable --mailbox ID`` says so directly), which re-enables
it in every campaign that names it.
"""

from __future__ import annotations

import argparse
import functools
import sys
from datetime import datetime
from pathlib import Path

from mailopsd import secrets
from mailopsd.atomicfile import write_atomically
from mailopsd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    add_config_options,
    default_config_path,
    identities,
    parse_now,
)
from mailopsd.config import loader
from mailopsd.config.reenable import (
    Target,
    credential_target,
    mailbox_target,
    set_reenabled_at,
    unknown_credential,
    unknown_mailbox,
)
from mailopsd.secrets.edit import edit_sops_file
from mailopsd.state.mailboxes import mailbox_entry
from mailopsd.state.statefile import format_time, load_state
from mailopsd.status.report import require_state

__all__ = ["add_reenable"]


def _needs_key(text: str, where: str, path: tuple[str, ...]) -> bool:
    """Tell whether changing a clear value of this SOPS file needs its key."""
    meta = secrets.read_metadata(text, where)
    return not meta.mac_only_encrypted or meta.rule.is_comment_rule or meta.rule.encrypts(path)


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with how the arguments name the target, if anything."""
    if args.mailbox is not None and args.campaign is not None:
        return "give CAMPAIGN CREDENTIAL or --mailbox ID, not both"
    if args.mailbox is None and args.credential is None:
        return "give CAMPAIGN CREDENTIAL (the credential is missing), or --mailbox ID"
    return None


def _target(args: argparse.Namespace, loaded: loader.LoadedConfig) -> Target | None:
    """What the arguments name, or ``None`` after saying that the config has no such thing."""
    if args.mailbox is not None:
        unknown = unknown_mailbox(loaded.config, args.mailbox)
        if unknown is None:
            return mailbox_target(loaded, args.mailbox)
    else:
        unknown = unknown_credential(loaded.config, args.campaign, args.credential)
        if unknown is None:
            return credential_target(loaded, args.campaign, args.credential)
    print(f"error: {unknown}", file=sys.stderr)
    return None


def _write(args: argparse.Namespace, target: Target, moment: datetime) -> None:
    """Write ``reenabled_at`` into the target's file, sealed again if its rule needs it."""
    path = target.path
    text = path.read_text(encoding="utf-8")
    where = str(path)
    field = (*target.place, "reenabled_at")

    def change(plain: str) -> str:
        return set_reenabled_at(plain, target.place, moment, where)

    if "\nsops:" in text and _needs_key(text, where, field):
        text = edit_sops_file(text, identities(args), where, change, now=moment)
    else:
        text = change(text)
    write_atomically(path, text)


def _reenable(args: argparse.Namespace, *, parser: argparse.ArgumentParser) -> int:
    wrong = _usage_error(args)
    if wrong is not None:  # as argparse says a usage error
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {wrong}", file=sys.stderr)
        return EXIT_USAGE
    options = loader.LoadOptions(decrypt=False, allow_plaintext_secrets=True)
    loaded = loader.load_config(args.config or default_config_path(), options)
    target = _target(args, loaded)
    if target is None:
        return EXIT_FAILURE
    moment: datetime = parse_now(args.now)
    disabled_at = None
    if args.state_dir is not None:
        require_state(args.state_dir)
        state = load_state(args.state_dir)
        # A shared mailbox's: the latest disable of any use, which the re-enable must end.
        uses = target.uses
        disabled_at = mailbox_entry(state, uses[0], uses).disabled_at if uses else None
        refusal = _reenable_refusal(args, target, moment, disabled_at)
        if refusal is not None:
            return refusal
    _write(args, target, moment)
    since = f" (disabled since {format_time(disabled_at)})" if disabled_at else ""
    line = f"{target.path}: set reenabled_at for {target.name}{since}; commit this change"
    if target.mailbox is not None:
        line += f"; it re-enables the mailbox in every campaign that names it: {target.uses_text}"
    print(line)
    return EXIT_OK


def _reenable_refusal(
    args: argparse.Namespace, target: Target, moment: datetime, disabled_at: datetime | None
) -> int | None:
    """Why ``reenable`` writes nothing, per the daemon's state (printed), or ``None``."""
    name = target.name
    if disabled_at is None:
        print(
            f"{name} is not disabled in the daemon state in {args.state_dir}: nothing to "
            "re-enable, nothing written"
        )
        return EXIT_OK
    if moment.replace(microsecond=0) < disabled_at:
        print(
            f"error: {format_time(moment)} is before {name}'s disabled_at "
            f"{format_time(disabled_at)}: a reenabled_at before it would have no effect; "
            "give --now at or after it, or leave --now out; nothing written",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return None


def add_reenable(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``reenable``."""
    reenable = commands.add_parser(
        "reenable",
        help="write reenabled_at: now into the YAML that defines a credential",
        description=(
            "Set reenabled_at for CAMPAIGN/CREDENTIAL in its YAML file, keeping everything "
            "else byte for byte; for a credential that names a shared mailbox, or with "
            "--mailbox, in the mailbox's entry under mailboxes:, which re-enables it in "
            "every campaign that names it. Commit the change; the daemon applies it on reload."
        ),
    )
    reenable.add_argument("campaign", nargs="?", help="the campaign's id")
    reenable.add_argument("credential", nargs="?", help="the credential's id in that campaign")
    reenable.add_argument(
        "--mailbox",
        metavar="ID",
        help="a shared mailbox's id (top-level mailboxes:), instead of CAMPAIGN CREDENTIAL",
    )
    add_config_options(reenable, state=False)
    reenable.add_argument(
        "--state-dir",
        type=Path,
        help="the daemon's state directory: write only if the credential is disabled there, "
        "and only a time at or after its disabled_at; default: no state is read",
    )
    reenable.add_argument("--now", help="the time to write (ISO 8601; default: now)")
    reenable.set_defaults(handler=functools.partial(_reenable, parser=reenable))
