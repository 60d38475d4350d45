"""The config and daemon commands: validate, run, plan, status (and reenable, from its module)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mailopsd import reconcile
from mailopsd.cli import summary
from mailopsd.cli.bars import bars_on_stderr
from mailopsd.cli.common import (
    EXIT_CHANGES,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    add_config_options,
    add_key_option,
    add_state_option,
    default_config_path,
    load_options,
    parse_now,
    print_issues,
    state_dir,
)
from mailopsd.cli.follow import add_git_options, git_follow
from mailopsd.cli.planjson import plan_as_json
from mailopsd.cli.reenable import add_reenable
from mailopsd.config import clear_passwords, loader, zones
from mailopsd.config.leads import LeadsRead, read_leads
from mailopsd.config.models import Campaign
from mailopsd.config.reenable import ignored_issues
from mailopsd.config.zones import zone_of_row
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.daemon.cluster import LIVE_S
from mailopsd.errors import ConfigError, ConfigIssue
from mailopsd.inbox.classify import classify
from mailopsd.logformat import JournalFormatter, JsonFormatter, TextFormatter
from mailopsd.notify import Notifier
from mailopsd.secrets import strength
from mailopsd.state import place
from mailopsd.state.apply import Reconciler
from mailopsd.state.ledger import Ledger
from mailopsd.state.observe import observe
from mailopsd.state.statefile import load_state
from mailopsd.status.report import build_status, require_state

__all__ = ["add_commands"]


def _validate(args: argparse.Namespace) -> int:
    path: Path = args.path or default_config_path()
    for weak in _weak_clear_passwords(path, args):
        print(f"warning: {weak}", file=sys.stderr)
    try:
        loaded = loader.load_config(path, load_options(args))
    except ConfigError as err:
        print_issues(err, args.format)
        return EXIT_FAILURE
    if args.state_dir is not None:
        for issue in _state_issues(loaded, args):
            print(f"warning: {issue}", file=sys.stderr)
    if args.format == "json":
        print("[]")
        return EXIT_OK
    for note in loaded.notes:
        print(f"warning: {note}", file=sys.stderr)
    for campaign_id, campaign in loaded.config.campaigns.items():
        path = loaded.leads_path(campaign_id)
        with bars_on_stderr() as bars:
            read = read_leads(path, str(path), progress=bars.progress, root=loaded.root)
        for problem in read.problems:
            print(f"warning: {problem}", file=sys.stderr)
        fallbacks = _zone_fallbacks(campaign, read, str(path))
        if fallbacks is not None:
            print(f"warning: {fallbacks}", file=sys.stderr)
    print(f"ok: {loaded.summary()}")
    return EXIT_OK


def _weak_clear_passwords(path: Path, args: argparse.Namespace) -> list[ConfigIssue]:
    """The weak passwords in clear in the config files, which ``secrets encrypt`` would seal.

    With ``--allow-plaintext-secrets`` (a sandbox demo) the clear passwords stay clear,
    and are not estimated; nor are they for ``--format json``, which prints errors only.
    """
    if args.allow_plaintext_secrets or args.format == "json":
        return []
    return clear_passwords.read_weak_clear_passwords(path)


def _zone_fallbacks(campaign: Campaign, read: LeadsRead, name: str) -> str | None:
    """With per-lead time zones, the leads that use the campaign's zone (``None``: none)."""
    column = campaign.send_window.zone_column if campaign.send_window else None
    if column is None:
        return None
    lines = sorted(
        row.line for row in read.rows.values() if zone_of_row(row.fields, column) is None
    )
    if not lines:
        return None
    return zones.fallback_note(
        name, column, campaign.timezone, count=len(lines), total=len(read.rows), lines=lines
    )


def _ignored_issues(
    loaded: loader.LoadedConfig,
    ignored: Iterable[reconcile.ReenableIgnored],
    *,
    config: Path | None,
    state_dir: Path | None,
    key_file: Path | None,
) -> list[ConfigIssue]:
    """Each ``reenabled_at`` that has no effect, at its field, with the command that helps.

    ``config``, ``state_dir`` and ``key_file`` are the options the person gave, repeated
    in the command.
    """
    options = {"--config": config, "--state-dir": state_dir, "--age-key-file": key_file}
    given = [part for name, value in options.items() if value for part in (name, str(value))]
    return ignored_issues(loaded, ignored, given=given)


def _state_issues(loaded: loader.LoadedConfig, args: argparse.Namespace) -> list[ConfigIssue]:
    """What the daemon's state says of the config: ``reenabled_at`` values with no effect.

    Raises:
        StateError: ``--state-dir`` holds no daemon state, or it cannot be read.
    """
    directory: Path = args.state_dir
    require_state(directory)
    states = observe(None, load_state(directory)).credential_states
    written = {
        (campaign_id, credential_id): credential.reenabled_at
        for campaign_id, campaign in loaded.config.campaigns.items()
        for credential_id, credential in campaign.smtp_credentials.items()
    }
    ignored = reconcile.ignored_reenables(written, states)
    return _ignored_issues(
        loaded, ignored, config=args.path, state_dir=directory, key_file=args.age_key_file
    )


def _configure_daemon_logging(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # The bounce parser's last resort narrates every detector it runs, and logs a
    # traceback for mail it cannot read; the classifier reports what matters.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


def _run(args: argparse.Namespace) -> int:
    if args.now is not None and not args.once:
        print("error: --now is only for --once runs", file=sys.stderr)
        return EXIT_FAILURE
    git = git_follow(args, os.environ)
    _configure_daemon_logging(args.log_format)
    fixed = parse_now(args.now) if args.now else None
    directory = state_dir(args)
    if args.ledger is not None:
        try:
            place.point(directory, None if args.ledger == "sqlite" else args.ledger)
        except place.LedgerAddressError as err:
            print(f"error: --ledger: {err}", file=sys.stderr)
            return EXIT_USAGE
    bars = bars_on_stderr()
    settings = DaemonSettings(
        config_path=directory / "git" / "tree" if git else args.config or default_config_path(),
        state_dir=directory,
        load_options=load_options(args),
        clock=(lambda: fixed) if fixed else (lambda: parse_now(None)),
        progress=bars.progress,
        wall_clock=fixed is None,
        git=git,
        stand_by=not args.once,
    )
    notifier = Notifier(os.environ)
    daemon = Daemon(settings, notifier)
    lines: list[str] = []
    try:
        if args.once:
            daemon.start()
            daemon.poll_inbox()
            daemon.dispatch()
            lines = _once_summary(daemon)
        else:
            daemon.install_signals()  # a stop while standing by is a stop too
            daemon.start()
            daemon.serve()
        while daemon.stepped_down is not None:  # outvoted on a shared ledger: stand by again
            daemon.close()
            daemon = Daemon(settings, notifier)
            daemon.install_signals()
            daemon.start()
            daemon.serve()
        paused = daemon.storage_problem
    finally:
        bars.close()
        daemon.close()
    if paused is not None:
        print(f"error: work paused, state directory not writable: {paused}", file=sys.stderr)
        return EXIT_FAILURE
    print("\n".join(lines), end="\n" if lines else "")
    return EXIT_OK


def _once_summary(daemon: Daemon) -> list[str]:
    """What a ``run --once`` did and what comes next, read while the daemon's ledger is open.

    The daemon's connection then closes last, and takes the write-ahead log files with
    it, as after any run.
    """
    if daemon.storage_problem is not None:
        return []
    settings = daemon.settings
    now = settings.clock()
    report = build_status(settings.state_dir, now)
    return summary.run_lines(report, daemon.work_done, state_dir=settings.state_dir, now=now)


def _plan(args: argparse.Namespace) -> int:
    loaded = loader.load_config(args.config or default_config_path(), load_options(args))
    directory = state_dir(args)
    state = load_state(directory)
    ledger = Ledger.open_readonly(directory)
    try:
        with bars_on_stderr() as bars:
            reconciler = Reconciler(directory, ledger, {}, create_key=False, progress=bars.progress)
            plan = reconciler.plan(loaded, state)
    finally:
        if ledger is not None:
            ledger.close()
    for issue in _ignored_issues(
        loaded,
        plan.ignored,
        config=args.config,
        state_dir=args.state_dir,
        key_file=args.age_key_file,
    ):
        print(f"warning: {issue}", file=sys.stderr)
    if args.json:
        print(json.dumps(plan_as_json(plan), indent=2, ensure_ascii=False))
        return EXIT_OK if plan.is_empty else EXIT_CHANGES
    if plan.is_empty:
        print(f"no changes (revision {plan.revision})")
        return EXIT_OK
    print(f"plan for revision {plan.revision}:")
    for line in plan.lines():
        print(f"  {line}")
    return EXIT_CHANGES


def _credential_text(c: dict[str, Any]) -> list[str]:
    """The status lines of one credential."""
    lines: list[str] = []
    rate = f"{c['bounce_rate']:.1%}" if c["bounce_rate"] is not None else "-"
    state = c["state"] + (f" since {c['disabled_at']}" if c["disabled_at"] else "")
    lines.append(
        f"  {c['id']}: {state}; {c['from_email']} via {c['smtp_host']}:{c['smtp_port']}; "
        f"sent today {c['sent_today']}/{c['daily_cap']}, "
        f"follow-ups {c['followups_today']}; "
        f"bounces {c['bounces_in_window']}/{c['sends_in_window']} ({rate}) since "
        f"{c['bounce_window_start']}; last poll {c['last_poll_at'] or 'never'}"
    )
    lines.extend(summary.reason_lines(c))
    lines.extend(summary.mailbox_lines(c))
    lines.extend(summary.pace_lines(c))
    if c["disabled_reason"]:
        lines.append(f"    disabled: {c['disabled_reason']}")
    if c["inbox_error"]:
        lines.append(f"    inbox: {c['inbox_error']} (since {c['inbox_error_since']})")
    if c["smtp_error"]:
        lines.append(f"    smtp: {c['smtp_error']} (since {c['smtp_error_since']})")
    if c["unconfirmed_bounces_in_window"]:
        lines.append(
            f"    unconfirmed bounce reports: {c['unconfirmed_bounces_in_window']} "
            "(they name leads of this mailbox but quote none of its messages: not "
            "counted, nothing stopped or suppressed; read them in the mailbox)"
        )
    if c["unknown_outcomes"]:
        lines.append(
            f"    unknown outcomes: {c['unknown_outcomes']} (counted as sent, "
            "never sent again; the provider's logs tell whether they went)"
        )
    return lines


def _git_text(git: object) -> list[str]:
    """The followed remote's lines of ``status``: applied, fetched, refused, fetch error."""
    if not isinstance(git, dict):
        return []

    def short(commit: object) -> str:
        return str(commit)[:12] if commit else "none"

    path = f" ({git['path']}/)" if git["path"] else ""
    lines = [
        f"git: following {git['remote']} branch {git['branch']}{path}: applied commit "
        f"{short(git['applied_commit'])} at {git['applied_at'] or 'never'}, fetched "
        f"{short(git['fetched_commit'])} at {git['fetched_at'] or 'never'}"
    ]
    if git["refused_commit"]:
        lines.append(
            f"  not applied: commit {short(git['refused_commit'])}: {git['refused_reason']}"
        )
    if git["fetch_error"]:
        lines.append(f"  fetch failing since {git['fetch_error_since']}: {git['fetch_error']}")
    return lines


def _ledger_text(ledger: object) -> list[str]:
    """The lines of a shared ledger: where it is, how much of it is held, and its daemons."""
    if not isinstance(ledger, dict) or ledger.get("engine") != "postgresql":
        return []  # the state directory's own file: nothing to say
    leases = int(ledger.get("leases") or 0)
    held = (
        f"{leases} campaign lease{'' if leases == 1 else 's'} held now"
        if leases
        else "no campaign is held by a daemon now"
    )
    lines = [f"ledger {ledger['address']} (PostgreSQL): {held}"]
    daemons = ledger.get("daemons") or []
    assert isinstance(daemons, list)  # noqa: S101 - describe()'s shape
    return lines + [f"  {_daemon_text(row)}" for row in daemons]


def _daemon_text(row: dict[str, object]) -> str:
    """One daemon of a shared ledger: who, what it does, on which revision, last heard."""
    role, age = str(row["role"]), float(row["heartbeat_age_s"])  # type: ignore[arg-type]
    if role == "stopped":
        doing = f"stopped at {row['heartbeat_at']}"
    elif age > LIVE_S:  # killed, cut off or gone with its machine: it said nothing since
        doing = f"not heard from in {age:.0f} s ({role} when last heard from)"
    else:
        doing = f"{role}, heartbeat {age:.0f} s ago"
    holds = row.get("holds") or []
    assert isinstance(holds, list)  # noqa: S101 - describe()'s shape
    if role == "working" and age <= LIVE_S:
        doing += (
            f", holds {', '.join(map(str, holds))}"
            if holds
            else ", holds no campaign now (it takes over those of a daemon that stops)"
        )
    what = row["note"] if role == "behind" and row["note"] else f"revision {row['revision']}"
    return f"daemon {row['id']} ({row['host']}, pid {row['pid']}): {doing}; {what}"


def _status_text(report: dict[str, object]) -> list[str]:
    lines = [
        f"revision {report['revision']} applied {report['applied_at']} "
        f"(last reload: {report['last_reload'] or 'none'})"
    ]
    lines.extend(_git_text(report.get("git")))
    lines.extend(_ledger_text(report.get("ledger")))
    storage = report["state_dir"]
    if not storage["writable"]:  # type: ignore[index]
        lines.append(
            f"state directory {storage['path']} not writable: {storage['problem']}; "  # type: ignore[index]
            "the daemon sends nothing until it is"
        )
    for condition in report["conditions"]:  # type: ignore[attr-defined]
        lines.append(
            f"{condition['type']}={condition['status']} {condition['reason']}: "
            f"{condition['message']} (since {condition['last_transition']})"
        )
        lines.extend(f"  {error}" for error in condition["errors"])
    lines.extend(summary.list_lines(report))
    for campaign in report["campaigns"]:  # type: ignore[attr-defined]
        lines.append(
            f"campaign {campaign['id']} {campaign['name']!r} (account {campaign['account']}, "
            f"{campaign['leads']} leads)"
        )
        lines.extend(summary.campaign_lines(campaign))
        tracked = campaign["tracking"]
        if tracked["opens"] or tracked["clicks"]:
            lines.append(
                f"  tracking: {tracked['leads_opened']} leads opened ({tracked['opens']} opens), "
                f"{tracked['leads_clicked']} clicked ({tracked['clicks']} clicks)"
            )
        for c in campaign["smtp_credentials"]:
            lines.extend(_credential_text(c))
    return lines


def _status(args: argparse.Namespace) -> int:
    report = build_status(state_dir(args), parse_now(args.now))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_status_text(report)))
    return EXIT_OK


def _classify(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            result = classify(Path(path).read_bytes())
        except OSError as err:
            print(f"error: cannot read {path}: {err.strerror}", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        record = {
            "file": str(path),
            "class": result.kind,
            "recipients": [
                {"address": r.address, "status": r.status, "class": r.kind, "reason": r.reason}
                for r in result.recipients
            ],
            "refers_to": list(result.references),
        }
        print(json.dumps(record, ensure_ascii=False))
    return status


def _add_validate(commands: Commands[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser(
        "validate",
        help="check the config files and print every error found",
        description=(
            "Check a config file or directory: YAML syntax, schema, secrets, leads files "
            "and templates. Prints a one-line summary and exits 0 when valid; prints every "
            "error as file:line:col: path: message and exits 1 otherwise. A password in "
            f"clear text with under {strength.MIN_PASSWORD_BITS} bits of estimated entropy "
            "is a warning (not with --allow-plaintext-secrets)."
        ),
    )
    validate.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="config file or directory (default: $MAILOPSD_CONFIG, then ./config)",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json prints the errors as a list of {file, line, column, path, message}",
    )
    add_key_option(validate)
    validate.add_argument(
        "--no-decrypt",
        action="store_true",
        help="check everything but the secrets' contents (for CI without the key)",
    )
    validate.add_argument(
        "--allow-plaintext-secrets",
        action="store_true",
        help="accept secret fields stored in clear text (local sandbox demos only)",
    )
    validate.add_argument(
        "--state-dir",
        type=Path,
        help="the daemon's state directory: also warn of a reenabled_at that has no effect "
        "there (before its credential's disabled_at); default: no state is read",
    )
    validate.set_defaults(handler=_validate)


def _add_run(commands: Commands[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run the daemon (or, with --once, do what is due now and exit)",
        description=(
            "Start on a valid config, reconcile it into the state directory, then watch the "
            "config files and reload on change or SIGHUP. SIGTERM stops it cleanly."
        ),
    )
    add_config_options(run)
    run.add_argument("--once", action="store_true", help="reconcile, do the work due now, exit")
    run.add_argument("--now", help="the time for a --once run (ISO 8601; UTC if no zone)")
    add_git_options(run)
    run.add_argument(
        "--ledger",
        metavar="ADDRESS|FILE",
        help="keep the ledger in PostgreSQL, shared by several daemons (which share its "
        "campaigns): "
        "postgresql://USER@HOST[:PORT]/DATABASE, its password in a file (?passfile=PATH) "
        "or ~/.pgpass, never here; or a ledger file (YAML: 'ledger: ADDRESS' and "
        "'ledger_password:' encrypted by 'mailopsd secrets encrypt'); 'sqlite' (the "
        "default) for the state directory's own file. The state directory remembers it, "
        "and is never moved from one to the other",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines (with <N> priorities under systemd) or one JSON object per line",
    )
    run.set_defaults(handler=_run)


def add_commands(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add validate, run, plan, status and reenable."""
    _add_validate(commands)
    _add_run(commands)
    plan = commands.add_parser(
        "plan",
        help="show what a reconcile would do (exit 0: nothing, 2: changes, 1: errors)",
    )
    add_config_options(plan)
    plan.add_argument(
        "--json", action="store_true", help="the stable JSON form (see README: Running)"
    )
    plan.set_defaults(handler=_plan)
    status = commands.add_parser(
        "status", help="show campaigns, credentials, counters and conditions (no secrets)"
    )
    add_state_option(status)
    status.add_argument("--json", action="store_true", help="the stable JSON form")
    status.add_argument("--now", help="evaluate windows and counters at this time (ISO 8601)")
    status.set_defaults(handler=_status)
    add_reenable(commands)
    classify_command = commands.add_parser(
        "classify",
        help="print what each message file is (bounce class, recipients, Message-IDs)",
        description=(
            "One JSON line per file: class (hard, soft, block, auto_reply, feedback, reply, "
            "unsubscribe, delivered, other), failed recipients with status codes, class and "
            "reason (userunknown, mailboxfull, spamdetected, ...: the words bounce_reasons "
            "and block_reasons take), and the Message-IDs the message refers to."
        ),
    )
    classify_command.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="a message as a file (RFC 5322)"
    )
    classify_command.set_defaults(handler=_classify)
