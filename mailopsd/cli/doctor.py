"""``mailopsd doctor``: the sending domains' DNS and the campaigns' unsubscribe, checked.

Exit codes: 0 when no finding fails (warnings allowed), 1 when one does, 2 for a usage
error or a config that does not load. The config is loaded without decrypting it:
doctor reads no secret, so it needs no age key and cannot print a password.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mailopsd import doctor
from mailopsd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    default_config_path,
    print_issues,
)
from mailopsd.config import loader, suggest
from mailopsd.doctor.resolver import DEFAULT_TIMEOUT_S, Nameserver, Resolver, parse_nameserver
from mailopsd.errors import ConfigError, MailopsError

__all__ = ["add_doctor"]

_MAX_TIMEOUT_S = 60.0
_INDENT = " " * 21  # under a finding's message: 2 + severity 5 + 1 + check 12 + 1


def _nameserver(text: str) -> Nameserver:
    try:
        return parse_nameserver(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= _MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(
            f"--timeout must be a number of seconds above 0 and at most {_MAX_TIMEOUT_S:g} "
            f"(got {text!r})"
        )
    return seconds


def _finding_lines(finding: doctor.Finding) -> list[str]:
    lines = [f"  {finding.severity:<5} {finding.check:<12} {finding.message}"]
    lines.extend(f"{_INDENT}publish: {record}" for record in finding.publish)
    if finding.change is not None:
        lines.append(f"{_INDENT}config:")
        lines.extend(f"{_INDENT}  {line}" for line in finding.change.splitlines())
    return lines


def _text_lines(report: doctor.Report) -> list[str]:
    """The report as printed: by domain, then by campaign, then the counts."""
    lines = [
        f"checked {len(report.domains)} domain(s) and {len(report.campaigns)} campaign(s); "
        f"DNS from {report.server}"
    ]
    for domain in report.domains:
        lines.append(f"{domain.domain} ({domain.role} of {', '.join(domain.used_by)})")
        for finding in domain.findings:
            lines.extend(_finding_lines(finding))
    for campaign in report.campaigns:
        lines.append(f"campaign {campaign.campaign}")
        for finding in campaign.findings:
            lines.extend(_finding_lines(finding))
    counts = report.counts()
    verdict = "some checks fail" if report.has_failures else "no check fails"
    lines.append(
        f"result: {counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail: {verdict}"
    )
    return lines


def _campaigns(loaded: loader.LoadedConfig, chosen: str | None) -> list[str] | None:
    """The campaigns to check: the one chosen, or all; ``None`` (said why) if unknown."""
    known = list(loaded.config.campaigns)
    if chosen is None:
        return known
    if chosen in known:
        return [chosen]
    hint = suggest.did_you_mean(chosen, known)
    print(
        f"error: no campaign {chosen} in the config{f'; {hint}' if hint else ''} "
        f"(campaigns: {suggest.listed(known) or 'none'})",
        file=sys.stderr,
    )
    return None


def _doctor(args: argparse.Namespace) -> int:
    # Only clear fields are read (hosts, addresses, selectors, URLs): nothing is
    # decrypted, so no key is needed and no secret is in memory to be shown.
    options = loader.LoadOptions(decrypt=False, allow_plaintext_secrets=True)
    try:
        loaded = loader.load_config(args.config or default_config_path(), options)
    except ConfigError as err:
        print_issues(err)
        return EXIT_USAGE
    campaign_ids = _campaigns(loaded, args.campaign)
    if campaign_ids is None:
        return EXIT_USAGE
    try:
        resolver = Resolver(args.nameserver, timeout_s=args.timeout)
    except MailopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    report = doctor.diagnose(
        loaded.config, resolver, campaign_ids=campaign_ids, server=resolver.server
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(_text_lines(report)))
    return EXIT_FAILURE if report.has_failures else EXIT_OK


def add_doctor(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``doctor``."""
    command = commands.add_parser(
        "doctor",
        help="check the sending domains' DNS (MX, SPF, DKIM, DMARC) and one-click unsubscribe",
        description=(
            "For every from_email domain: MX, SPF (does it authorise the SMTP host's "
            "addresses?), DKIM keys, DMARC, and the Gmail/Yahoo bulk-sender rules; for "
            "every campaign: one-click unsubscribe and the unsubscribe footer. Each finding "
            "comes with the DNS record to publish or the config to change. Exit 0: no "
            "finding fails (warnings allowed); 1: one does; 2: usage or config error. "
            "Reads no secret: no age key is needed."
        ),
    )
    command.add_argument(
        "campaign", nargs="?", metavar="CAMPAIGN", help="check this campaign only (default: all)"
    )
    command.add_argument(
        "--config",
        type=Path,
        help="config file or directory (default: $MAILOPSD_CONFIG, then ./config)",
    )
    command.add_argument(
        "--nameserver",
        type=_nameserver,
        metavar="IP[:PORT]",
        help="ask this nameserver (a recursive resolver; [IPv6]:PORT with a port); "
        "default: the system's, from /etc/resolv.conf",
    )
    command.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"wait this long for each DNS answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    command.add_argument("--json", action="store_true", help="the findings as one JSON object")
    command.set_defaults(handler=_doctor)
