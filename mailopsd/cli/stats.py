"""``mailopsd stats CAMPAIGN``: sends, replies, bounces and unsubscribes by step and variant.

Read from the daemon's ledger (read-only, as ``status`` does); each rate is shown with
the numbers behind it.
"""

from __future__ import annotations

import argparse
import json
import sys

from mailopsd.cli.common import EXIT_FAILURE, EXIT_OK, Commands, add_state_option, state_dir
from mailopsd.state.ledger import Ledger
from mailopsd.status.report import require_state
from mailopsd.status.steps import step_lines, step_report

__all__ = ["add_stats"]


def _stats(args: argparse.Namespace) -> int:
    directory = state_dir(args)
    require_state(directory)
    ledger = Ledger.open_readonly(directory)
    try:
        campaigns = ledger.campaigns.active() if ledger is not None else {}
        if ledger is None or args.campaign not in campaigns:
            known = ", ".join(sorted(campaigns)) or "none yet"
            print(
                f"error: no campaign {args.campaign} in the daemon state in {directory} "
                f"(campaigns: {known})",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        steps = step_report(ledger, args.campaign)
    finally:
        if ledger is not None:
            ledger.close()
    name = campaigns[args.campaign].get("name")
    if args.json:
        print(json.dumps({"campaign": args.campaign, "name": name, "steps": steps}, indent=2))
        return EXIT_OK
    print(f"campaign {args.campaign} {name!r}: sends and answers by step and variant")
    print("\n".join(step_lines(steps)))
    return EXIT_OK


def add_stats(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``stats``."""
    stats = commands.add_parser(
        "stats",
        help="show sends, reply, bounce and unsubscribe rates by step and variant",
        description=(
            "Show, for each step of a campaign and each variant of a step, the sends and "
            "the replies, hard bounces and unsubscribes they brought, each rate with the "
            "numbers behind it. An answer counts for the last step the lead was sent, in "
            "the variant the lead was given."
        ),
    )
    stats.add_argument("campaign", help="the campaign's id")
    add_state_option(stats)
    stats.add_argument("--json", action="store_true", help="the stable JSON form")
    stats.set_defaults(handler=_stats)
