"""Ten days of two campaigns, against a real SMTP server on loopback, read from its record.

1,000 leads in two campaigns, each with two variants of step 1 and a follow-up; both name
one shared mailbox with a warm-up ramp and a drawn min_interval, and one of them also has
its own mailbox. The daemon ticks every minute of simulated time inside the send
window, and is a new process each day. What the server received must show, every day,
the ramp's cap of step-1 sends from the shared mailbox (both campaigns together) and the
own mailbox's cap, gaps between two sends of a mailbox never under its min_interval, each
lead's follow-up in the thread of the variant it was sent, and no step sent twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from mailopsd.config.loader import LoadOptions
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.notify import Notifier
from tests.dispatch_setup import credential, parsed, write_config, write_leads
from tests.servers.smtp import Received, SmtpServer

DAY1 = datetime(2026, 11, 23, tzinfo=UTC)
DAYS = 10
TICK = timedelta(minutes=1)
OPEN, CLOSE = 8, 20  # the send window, UTC hours
RAMP = {"start": 10, "step": 10, "every": "1 day"}
SHARED_LIMIT, OWN_LIMIT = 40, 15
SHARED_GAP, OWN_GAP = timedelta(minutes=2), timedelta(minutes=3)


def _campaign(name: str, credentials: dict[str, Any], delay: str) -> dict[str, Any]:
    title = name.capitalize()
    return {
        "name": title,
        "leads": f"{name}.csv",
        "send_window": {
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": f"{OPEN:02d}:00",
            "end": f"{CLOSE:02d}:00",
        },
        "sequence": [
            {
                "subject": f"{title} hello {{{{ first_name }}}}",
                "body": "Hi {{ first_name }}.",
                "variants": {
                    "short": {"subject": f"{title} short {{{{ first_name }}}}", "weight": 1},
                    "long": {"subject": f"{title} long note {{{{ first_name }}}}", "weight": 2},
                },
            },
            {"delay": delay, "body": "Hi again {{ first_name }}."},
        ],
        "delay_jitter": "3 hours",
        "smtp_credentials": credentials,
    }


def _config(directory: Path, server: SmtpServer) -> Path:
    for name in ("north", "south"):
        write_leads(
            directory / f"{name}.csv", [f"{name}{i:03d}@example.net,Lead{i}" for i in range(500)]
        )
    spread = {"min": "2 minutes", "max": "4 minutes"}
    ada = credential(server, "ada", daily_limit=SHARED_LIMIT, ramp=RAMP, min_interval=spread)
    own = credential(server, "box2", daily_limit=OWN_LIMIT, min_interval="3 minutes")
    campaigns = {
        "north": _campaign("north", {"shared": {"mailbox": "ada"}, "own": own}, "2 days"),
        "south": _campaign("south", {"shared": {"mailbox": "ada"}}, "1 day"),
    }
    return write_config(directory, campaigns, mailboxes={"ada": ada})


def _run_days(path: Path, state: Path) -> None:
    """A new daemon each day, dispatching every TICK inside the window."""
    moment = [DAY1]
    for day in range(DAYS):
        moment[0] = DAY1 + timedelta(days=day, hours=OPEN)
        settings = DaemonSettings(
            config_path=path,
            state_dir=state,
            load_options=LoadOptions(allow_plaintext_secrets=True),
            clock=lambda: moment[0],
        )
        daemon = Daemon(settings, Notifier({}))
        try:
            daemon.start()
            while moment[0].hour < CLOSE:
                daemon.dispatch()
                moment[0] += TICK
        finally:
            daemon.close()


def _sent_at(message: Received) -> datetime:
    return parsedate_to_datetime(str(parsed(message)["Date"]))


def _is_followup(message: Received) -> bool:
    return str(parsed(message)["Subject"]).startswith("Re: ")


def test_ten_days_of_a_shared_mailbox_with_a_ramp_and_variants(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    path = _config(tmp_path, smtp_server)
    _run_days(path, tmp_path / "state")
    messages = smtp_server.handler.messages

    # Caps: the ramp's cap of the day for the shared mailbox, both campaigns together.
    step1: Counter[tuple[str | None, int]] = Counter()
    for message in messages:
        if not _is_followup(message):
            step1[message.login, (_sent_at(message) - DAY1).days] += 1
    ramp = [min(RAMP["start"] + day * RAMP["step"], SHARED_LIMIT) for day in range(DAYS)]
    assert [step1["ada", day] for day in range(DAYS)] == ramp
    assert [step1["box2", day] for day in range(DAYS)] == [OWN_LIMIT] * DAYS
    by_campaign = Counter(
        m.rcpt_tos[0][:5] for m in messages if m.login == "ada" and not _is_followup(m)
    )
    assert min(by_campaign.values()) > sum(ramp) / 3  # both campaigns got the mailbox

    # Gaps: never under the mailbox's min_interval, across both campaigns.
    for login, gap in (("ada", SHARED_GAP), ("box2", OWN_GAP)):
        times = sorted(_sent_at(m) for m in messages if m.login == login)
        assert min(later - earlier for earlier, later in pairwise(times)) >= gap

    # Variants kept: each follow-up answers the step-1 subject its lead was sent.
    first: dict[str, str] = {}
    sends: Counter[tuple[str, bool]] = Counter()
    followups: dict[str, str] = {}
    for message in messages:
        lead, subject = message.rcpt_tos[0], str(parsed(message)["Subject"])
        sends[lead, _is_followup(message)] += 1
        if _is_followup(message):
            followups[lead] = subject.removeprefix("Re: ")
        else:
            first[lead] = subject
    assert followups, "no follow-up went out"
    assert all(followups[lead] == first[lead] for lead in followups)
    versions: dict[str, Counter[str]] = defaultdict(Counter)
    for lead, subject in first.items():
        versions[lead[:5]][subject.split()[1]] += 1
    for campaign in ("north", "south"):
        assert set(versions[campaign]) == {"short", "long"}
        assert versions[campaign]["long"] > versions[campaign]["short"]  # weight 2 against 1

    # No step sent twice to anyone.
    assert max(sends.values()) == 1
