"""``mailopsd report``: the dashboard's pages in one HTML file that needs nothing to open."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailopsd.atomicfile import write_atomically
from mailopsd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    add_state_option,
    parse_now,
    state_dir,
)
from mailopsd.config import loader
from mailopsd.config.reenable import reenable_hint
from mailopsd.pages.model import DEFAULT_DAYS
from mailopsd.pages.report import build_report
from mailopsd.pages.views import Hint

__all__ = ["add_report"]

_MAX_DAYS = 366


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= _MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be a number of days from 1 to {_MAX_DAYS}")
    return days


def _hint(args: argparse.Namespace) -> Hint | None:
    """Re-enable lines from the config, when ``--config`` names it."""
    if args.config is None:
        return None
    options = loader.LoadOptions(decrypt=False, allow_plaintext_secrets=True)
    loaded = loader.load_config(args.config, options)
    moment = parse_now(args.now)
    return lambda campaign, credential: reenable_hint(loaded, campaign, credential, moment)


def _report(args: argparse.Namespace) -> int:
    directory = state_dir(args)
    now = parse_now(args.now)
    try:
        text, shown = build_report(
            directory, now, days=args.days, campaign=args.campaign, hint=_hint(args)
        )
    except KeyError:
        print(
            f"error: no campaign {args.campaign} in the daemon state in {directory}; "
            f"mailopsd status --state-dir {directory} lists them",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    write_atomically(args.output, text)
    campaigns = "campaign" if shown == 1 else "campaigns"
    print(f"wrote {args.output}: {shown} {campaigns}, charts of {args.days} days to {now:%Y-%m-%d}")
    return EXIT_OK


def add_report(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``report``."""
    report = commands.add_parser(
        "report",
        help="write the dashboard's pages into one HTML file",
        description=(
            "Write an HTML file with the overview of the campaigns and, for each, its "
            "mailboxes with their sends per day and bounce rate charts, and its steps and "
            "versions: the figures of status, read from the state directory. The file needs "
            "no network to open: attach it to a ticket, or read it where the HTTP server is "
            "not exposed."
        ),
    )
    report.add_argument("--campaign", help="only this campaign (default: every campaign)")
    report.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        help=f"days the charts cover, today included (default: {DEFAULT_DAYS})",
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        help="the file to write (default: report.html)",
    )
    report.add_argument(
        "--config",
        type=Path,
        help="the config, for the exact line that re-enables a disabled mailbox "
        "(default: the command only)",
    )
    report.add_argument("--now", help="the report's time (ISO 8601; default: now)")
    add_state_option(report)
    report.set_defaults(handler=_report)
