"""``mailopsd preview CAMPAIGN``: a lead's messages as they would be sent, and a forecast.

The messages are composed by the dispatcher's own code for one lead (``--lead``, else the
first row of the leads file), in the variants that lead is (or would be) given, from the
mailbox that sent its step 1 (else the campaign's first); only the Message-IDs are
placeholders. The forecast (see :mod:`mailopsd.daemon.forecast`) runs the daemon's
dispatch on a copy of its state, tick after tick, and counts the sends per UTC day and
mailbox.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from mailopsd.cli.bars import bars_on_stderr
from mailopsd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    add_config_options,
    default_config_path,
    load_options,
    parse_now,
    state_dir,
)
from mailopsd.config import addresses, loader
from mailopsd.config.leads import iter_leads
from mailopsd.config.periods import parse_period
from mailopsd.daemon.forecast import Forecast, forecast
from mailopsd.dispatch import variants
from mailopsd.dispatch.compose import compose, link_settings
from mailopsd.smtp.message import ComposeError
from mailopsd.state.ledger import Ledger

__all__ = ["add_preview"]


def _lead(
    loaded: loader.LoadedConfig, campaign_id: str, wanted: str | None
) -> tuple[str, dict[str, str]] | None:
    """The lead's address and fields from the leads file (its first row by default)."""
    key = addresses.key_of(wanted) if wanted else None
    path = loaded.leads_path(campaign_id)
    with bars_on_stderr() as bars:
        for row in iter_leads(path, str(path), progress=bars.progress, root=loaded.root):
            if row.problem is None and (key is None or row.email == key):
                return row.email, dict(row.fields)
    return None


def _messages(
    loaded: loader.LoadedConfig,
    campaign_id: str,
    email: str,
    fields: dict[str, str],
    args: argparse.Namespace,
    now: datetime,
) -> list[dict[str, Any]]:
    """Every step of the campaign composed for one lead, in its variants."""
    campaign = loaded.config.campaigns[campaign_id]
    given: dict[str, str] = {}
    credential_id = next(iter(campaign.smtp_credentials))
    directory = state_dir(args)
    ledger = Ledger.open_readonly(directory) if directory.is_dir() else None
    if ledger is not None:
        try:
            known = ledger.leads.get(campaign_id, email)
        finally:
            ledger.close()
        if known is not None:
            given = dict(known.variants)
            if known.credential_id in campaign.smtp_credentials:
                credential_id = known.credential_id
    credential = campaign.smtp_credentials[credential_id]
    versions = variants.assigned(campaign_id, campaign, email, given, 0)
    links = link_settings(
        loaded.config.http, campaign_id=campaign_id, campaign=campaign, credential=credential
    )
    messages: list[dict[str, Any]] = []
    earlier: list[str] = []
    first_subject = None
    for index in range(len(campaign.sequence)):
        variant = versions.get(str(index + 1))
        outgoing = compose(
            campaign,
            credential,
            step_index=index,
            variant=variant,
            body_template=loaded.body(campaign_id, index, variant),
            email=email,
            fields=fields,
            first_subject=first_subject,
            earlier_ids=earlier,
            now=now,
            token=f"preview-step{index + 1}",
            links=links,
        )
        first_subject = first_subject or outgoing.subject
        earlier.append(outgoing.message_id)
        messages.append(
            {
                "step": index + 1,
                "variant": variant,
                "credential": credential_id,
                "message": outgoing.data.decode("ascii", "replace"),
            }
        )
    return messages


def _forecast_lines(result: Forecast) -> list[str]:
    lines = [
        f"forecast from {result.start:%Y-%m-%dT%H:%M:%SZ} for {result.days} days, a tick every "
        f"{int(result.every.total_seconds())} s, every send taken as sent and nobody answering:",
        f"{'day':<12}{'mailbox':<20}{'step 1':>8}{'follow-ups':>12}",
    ]
    for row in result.sends:
        lines.append(f"{row.day:<12}{row.credential_id:<20}{row.step1:>8}{row.followups:>12}")
    step1 = sum(row.step1 for row in result.sends)
    followups = sum(row.followups for row in result.sends)
    lines.append(f"{'total':<32}{step1:>8}{followups:>12}")
    return lines


def _every(text: str) -> timedelta:
    start = datetime(2000, 1, 1)
    try:
        step = parse_period(text).add_to(start) - start
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    if step <= timedelta(0) or step > timedelta(days=1):
        raise argparse.ArgumentTypeError("give a period from 1 second to 1 day")
    return step


def _days(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 366:
        raise argparse.ArgumentTypeError(f"give a number of days from 0 to 366 (got {text!r})")
    return int(text)


def _preview(args: argparse.Namespace) -> int:
    config_path = args.config or default_config_path()
    loaded = loader.load_config(config_path, load_options(args))
    if args.campaign not in loaded.config.campaigns:
        known = ", ".join(sorted(loaded.config.campaigns)) or "none"
        print(
            f"error: no campaign {args.campaign} in the config (campaigns: {known})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    now = parse_now(args.now)
    lead = _lead(loaded, args.campaign, args.lead)
    if lead is None:
        where = loaded.leads_path(args.campaign)
        what = f"no lead {args.lead}" if args.lead else "no usable lead"
        print(f"error: {what} in {where}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        messages = _messages(loaded, args.campaign, *lead, args, now)
    except ComposeError as err:
        print(f"error: {lead[0]} would fail: {err}", file=sys.stderr)
        return EXIT_FAILURE
    with bars_on_stderr() as bars:
        result = forecast(
            config_path,
            state_dir(args),
            load_options(args),
            campaign_id=args.campaign,
            start=now,
            days=args.days,
            every=args.every,
            progress=bars.progress,
        )
    if args.json:
        sends = [vars(row) for row in result.sends]
        report = {
            "campaign": args.campaign,
            "lead": lead[0],
            "messages": messages,
            "forecast": {
                "start": f"{now:%Y-%m-%dT%H:%M:%SZ}",
                "days": args.days,
                "every_s": int(args.every.total_seconds()),
                "sends": sends,
            },
        }
        print(json.dumps(report, indent=2))
        return EXIT_OK
    for message in messages:
        variant = f" (variant {message['variant']})" if message["variant"] else ""
        print(f"--- step {message['step']}{variant} for {lead[0]}, from {message['credential']}:")
        print(message["message"].replace("\r\n", "\n").rstrip("\n"))
    print("\n".join(_forecast_lines(result)))
    return EXIT_OK


def add_preview(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``preview``."""
    preview = commands.add_parser(
        "preview",
        help="show a lead's messages as they would be sent, and forecast the sends per day",
        description=(
            "Compose every step of CAMPAIGN for one lead as the dispatcher would, then run "
            "the daemon's dispatch on a private copy of its state at every --every for "
            "--days days, sending nothing, and print the sends per UTC day and mailbox."
        ),
    )
    preview.add_argument("campaign", help="the campaign's id")
    add_config_options(preview)
    preview.add_argument("--lead", help="the lead's address (default: the leads file's first)")
    preview.add_argument(
        "--days", type=_days, default=7, help="days to forecast from --now (default 7; 0: none)"
    )
    preview.add_argument(
        "--every",
        type=_every,
        default=timedelta(minutes=5),
        help='time between two forecast ticks, a period such as "10 minutes" (default 5 '
        "minutes; the daemon itself ticks every 10 seconds)",
    )
    preview.add_argument("--now", help="when the forecast starts (ISO 8601; default now)")
    preview.add_argument("--json", action="store_true", help="the stable JSON form")
    preview.set_defaults(handler=_preview)
